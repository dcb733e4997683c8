package campaign

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"sync"

	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
)

// item is one row of the list on its way: skipped, broken, or rendered.
type item struct {
	rec  *merge.Recipient
	skip skipKind
	m    *render.Message
	err  error
	done chan struct{} // closed when m and err are set; nil when not rendered
}

// stream reads the list in one goroutine and renders the rows on every
// core, and gives the items back in list order, so that what is written or
// sent, and the journal, come out the same whatever the timing. At most a
// few items per core are in flight, so memory stays flat however long the
// list.
func (c *Campaign) stream(ctx context.Context, rd *merge.Reader, r *render.Renderer, ready bool, blank []string, opts *Options) <-chan *item {
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
				it.m, it.err = c.message(r, it.rec, &body)
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
			rec, err := rd.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			it := &item{rec: rec, err: err}
			var rowErr *merge.RowError
			fatal := false
			switch {
			case errors.Is(err, merge.ErrDuplicate):
				it.skip = skipDuplicate
			case errors.Is(err, merge.ErrSkipped):
				it.skip = skipInvalid
			case errors.As(err, &rowErr):
				// a broken row: reported, and reading goes on
			case err != nil:
				fatal = true
			case !ready:
				// a broken campaign: the list is read for its own problems
			case !opts.Shard.Has(rec.Email):
				it.skip = skipShard
			default:
				if it.skip = journalSkip(rec, opts); it.skip != skipNone {
					break
				}
				for _, name := range blank {
					rec.Fields[name] = ""
				}
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
			if fatal {
				return
			}
		}
	}()
	return out
}
