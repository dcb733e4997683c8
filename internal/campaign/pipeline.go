package campaign

import (
	"bytes"
	"context"
	"iter"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
	"github.com/batch-mailer/batch/internal/suppress"
)

// itemKind is what became of one row of the list on its way through a pass.
type itemKind int

const (
	// itemSkipped is a row not sent this run, as skip says; err, if any,
	// is the warning that names it (an address skipped).
	itemSkipped itemKind = iota
	// itemBroken is a broken row, err a *merge.RowError: it is reported,
	// and reading goes on.
	itemBroken
	// itemUnreadable ends a list that can't be read on: err says why.
	itemUnreadable
	// itemUnrendered is a row of a campaign that can't render: the list
	// is read for its own problems only.
	itemUnrendered
	// itemMessage is a row to render, and once rendered, m its message.
	itemMessage
	// itemFailed is a row whose message could not be rendered: err says
	// why.
	itemFailed
)

// item is one row of the list on its way.
type item struct {
	kind itemKind
	rec  *merge.Recipient
	skip skipKind        // why an itemSkipped is
	why  suppress.Reason // a skipSuppressed's reason
	m    *render.Message
	err  error
	done chan struct{} // an itemMessage's: closed once it is rendered
	// weight is the bytes of the row's values, taken from the budget
	// while the message is rendered and until it is written or sent.
	weight int64
}

// pipeline reads the list in one goroutine and renders the rows on every
// core, and gives the items back in list order, so that what is written or
// sent, and the journal, come out the same whatever the timing. At most a
// few items per core are in flight, so memory stays flat however long the
// list.
type pipeline struct {
	// read returns the next row's item, in list order; false at the end
	// of the list, or when ctx is done. An itemMessage is rendered; an
	// itemUnreadable is the last.
	read func(ctx context.Context) (*item, bool)
	// render renders an itemMessage, on a worker whose buffer body is: it
	// sets m (but for a check, which writes no bytes), or err and the
	// kind itemFailed.
	render func(it *item, body *bytes.Buffer)
}

// items yields every item in list order, each rendered by then. A loop
// over it that breaks off stops the reading and the rendering, and waits
// for them.
func (p pipeline) items(ctx context.Context) iter.Seq[*item] {
	return func(yield func(*item) bool) {
		ctx, cancel := context.WithCancel(ctx)
		out := p.start(ctx)
		defer func() {
			cancel()
			for range out { // let the reader and the renderers finish
			}
		}()
		for it := range out {
			if it.done != nil {
				<-it.done
			}
			if !yield(it) {
				return
			}
		}
	}
}

// start starts the reader and the renderers, 4 items for each core in
// flight at most, and returns the items as they are read; out is closed
// once every one is there and rendered, or ctx is done.
func (p pipeline) start(ctx context.Context) <-chan *item {
	workers := runtime.GOMAXPROCS(0)
	out := make(chan *item, 4*workers)
	jobs := make(chan *item, 4*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body bytes.Buffer
			for it := range jobs {
				p.render(it, &body)
				close(it.done)
			}
		}()
	}
	go func() {
		defer func() {
			close(jobs)
			wg.Wait()
			close(out)
		}()
		for ctx.Err() == nil {
			it, ok := p.read(ctx)
			if !ok {
				return
			}
			// Once a renderer has it, the item is the renderer's until done.
			last := it.kind == itemUnreadable
			if it.kind == itemMessage {
				it.done = make(chan struct{})
				select {
				case jobs <- it:
				case <-ctx.Done():
					return
				}
			}
			select {
			case out <- it:
			case <-ctx.Done():
				return
			}
			if last {
				return
			}
		}
	}()
	return out
}

// inFlight bounds the bytes of values whose messages are being rendered
// or wait to be written or sent. A message holds each value several times
// over (in the subject, the header fields, the HTML, the text, escaped
// and encoded for each, and the steps between): rows of large values go a
// few at a time, and a row larger than the bound alone. Rows of the usual
// size are bounded by their number in flight, a few per core, long before.
const inFlight = 1 << 20

// budget counts the bytes of values in flight. One goroutine takes from it,
// any gives back.
type budget struct {
	used  atomic.Int64
	freed chan struct{} // a token when some were given back; capacity 1
}

// take waits until n bytes fit under inFlight, or nothing is in flight,
// and takes them; false when ctx ends first.
func (b *budget) take(ctx context.Context, n int64) bool {
	for used := b.used.Load(); used > 0 && used+n > inFlight; used = b.used.Load() {
		select {
		case <-b.freed:
		case <-ctx.Done():
			return false
		}
	}
	b.used.Add(n)
	return true
}

// give gives n bytes back.
func (b *budget) give(n int64) {
	if n == 0 {
		return
	}
	b.used.Add(-n)
	select {
	case b.freed <- struct{}{}:
	default: // a token is there already: take looks again
	}
}

// valueBytes is the bytes of a row's values.
func valueBytes(rec *merge.Recipient) int64 {
	var n int64
	for _, v := range rec.Fields {
		n += int64(len(v))
	}
	return n
}
