package campaign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
)

// Options are the choices of one run.
type Options struct {
	Now time.Time // the Date of every message
	// Warn is told of each skipped row, and of each row sent with a
	// warning (merge.Recipient.Warning); may be nil.
	Warn func(error)
	// Limit sends to the first Limit recipients not yet sent; 0 for all.
	// A check with a Limit checks the whole list, and counts (Summary) and
	// warns of the rows that a send with it goes through.
	Limit int
	// To, for a test send, takes every message's envelope instead of its
	// recipient; the headers stay as the recipient would see them.
	To string
	// Outcome is told of each message's final outcome, as the journal
	// holds it (sent, failed or unknown), and why it failed, from any
	// goroutine; may be nil. The Summary counts the same outcomes.
	Outcome func(m *render.Message, st journal.Status, err error)

	// Journal records every outcome; nil for none (a dry run, a test
	// send). State is what it held before this run.
	Journal *journal.Journal
	State   *journal.State
	// Shard limits the run to a part of the list.
	Shard Shard
	// SinglePass renders each message once, handing it over as it goes,
	// instead of checking the whole list first: for a dry run, whose
	// sender can take back what it was given (a Discarder).
	SinglePass bool
	// RetryFailed sends again to recipients that failed for good before;
	// ResendUnknown to those whose outcome is unknown.
	RetryFailed, ResendUnknown bool
	// Retries is how many times a temporary failure is tried again in a
	// run, the first after RetryWait, then doubling. MaxErrors failures in
	// a row stop the campaign; 0 for no limit.
	Retries   int
	RetryWait time.Duration
	MaxErrors int
}

// Summary counts a run's recipients.
type Summary struct {
	Messages    int // rendered (check), or handed over for delivery (send)
	Invalid     int // rows skipped for an invalid address
	Duplicates  int // rows skipped for a repeated address
	AlreadySent int // recipients the journal says were sent
	Held        int // failed or unknown before, not tried again this run
	OtherShards int // recipients of the other shards
	Warned      int // rows rendered, and sent, with a warning (told to Options.Warn)

	mu       sync.Mutex
	outcomes Outcomes
}

// Outcomes counts what became of the messages handed over: each as the
// journal holds it.
type Outcomes struct {
	Sent     int
	Failed   int // refused for good, or out of retries
	Unknown  int // handed over, and the server's word on it never came or was not recorded
	Deferred int // temporary failures, each tried again later
}

// Skipped is the number of rows left out for their address.
func (s *Summary) Skipped() int { return s.Invalid + s.Duplicates }

// Outcomes returns what became of the messages so far.
func (s *Summary) Outcomes() Outcomes {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outcomes
}

// outcome counts a message's final outcome.
func (s *Summary) outcome(st journal.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case journal.Sent:
		s.outcomes.Sent++
	case journal.Failed:
		s.outcomes.Failed++
	case journal.Unknown:
		s.outcomes.Unknown++
	}
}

// deferred counts a temporary failure.
func (s *Summary) deferred() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcomes.Deferred++
}

// Check renders every recipient's message in memory and reports every
// problem that would stop the campaign, as Problems.
func (c *Campaign) Check(ctx context.Context, opts Options) (*Summary, error) {
	sum := &Summary{}
	r, rerr := c.newRenderer(opts)
	return sum, c.run(ctx, opts, sum, r, rerr, nil)
}

// Discarder is a sender that can take back what it was given: the files
// of a dry run that then found a problem.
type Discarder interface {
	Discard() error
}

// Opener opens the sender once the campaign has been checked; sum counts
// what is about to be sent. It is where the server is reached and the user
// asked to confirm: an error sends nothing.
type Opener func(sum *Summary) (deliver.Sender, error)

// Send checks the whole campaign first, so that a problem in row 9,000 stops
// it before the first message, then opens the sender, renders each message
// again and hands it over. Recipients the journal (opts.State) says were
// sent are skipped, and so are those that failed or whose outcome is
// unknown, unless opts says otherwise. Send closes the sender and returns
// when every outcome is in.
func (c *Campaign) Send(ctx context.Context, open Opener, opts Options) (*Summary, error) {
	planned := &Summary{}
	// One renderer for both passes: the layout, its styles, the images
	// and the attachments are read and encoded once.
	r, rerr := c.newRenderer(opts)
	if !opts.SinglePass {
		if err := c.run(ctx, opts, planned, r, rerr, nil); err != nil {
			return nil, err
		}
	}
	s, err := open(planned)
	if err != nil {
		return nil, err
	}
	if opts.Journal != nil {
		if c.SMTP != nil && c.SMTP.Connections > 2 {
			opts.Journal.GroupSyncs()
		}
		opts.Journal.Append(journal.Record{Kind: journal.KindOpen, Campaign: c.Name, At: time.Now().Unix()})
	}
	if !opts.SinglePass {
		opts.Warn = nil // told already
	}
	sum := &Summary{}
	d := newDelivery(ctx, s, opts, sum)
	err = c.run(ctx, opts, sum, r, rerr, d.deliver)
	if ferr := d.finish(); err == nil {
		err = ferr
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	var probs Problems
	if dis, ok := s.(Discarder); ok && errors.As(err, &probs) {
		if derr := dis.Discard(); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	if err == nil {
		err = d.stopped()
	}
	if err == nil {
		err = ctx.Err()
	}
	return sum, err
}

// journalSkip tells whether the journal's word on rec (none, without a
// journal) means it is not sent this run.
func journalSkip(rec *merge.Recipient, opts *Options) skipKind {
	switch opts.State.Get(rec.Email).Status {
	case journal.Sent:
		return skipSent
	case journal.Failed:
		if !opts.RetryFailed {
			return skipHeld
		}
	case journal.Unknown:
		if !opts.ResendUnknown {
			return skipHeld
		}
	}
	return skipNone
}

// newRenderer returns the campaign's renderer, or why there is none; a
// campaign file with problems has none, and says why itself.
func (c *Campaign) newRenderer(opts Options) (*render.Renderer, error) {
	if c.incomplete {
		return nil, nil
	}
	return c.renderer(opts)
}

// run streams the list, renders each message with r and passes it to
// deliver (when not nil). It stops at the first delivery error; other
// problems, rerr (why there is no r) first, are collected and returned
// together.
func (c *Campaign) run(ctx context.Context, opts Options, sum *Summary, r *render.Renderer, rerr error, deliverFn func(*render.Message) error) error {
	if c.incomplete && deliverFn != nil {
		return fmt.Errorf("%s has problems: batch check %s lists them", c.Path, c.Path)
	}
	probs := &problems{seen: map[string]*aggregate{}}
	if rerr != nil {
		probs.add(rerr)
	}
	if c.Recipients == "" {
		return probs.err()
	}
	f, err := os.Open(c.Recipients)
	if err != nil {
		if !c.incomplete { // else Load has said so
			probs.add(fmt.Errorf("%s: %w", c.Recipients, err))
		}
		return probs.err()
	}
	defer f.Close()
	rd, err := merge.NewReader(c.Recipients, f, c.Columns, c.listLimits())
	var herr *merge.HeaderError
	switch {
	case errors.As(err, &herr):
		for _, p := range herr.Problems {
			probs.add(p)
		}
		c.checkFields(herr.Columns, probs)
		return probs.err()
	case err != nil:
		probs.add(c.explainLimit(err))
		return probs.err()
	}
	// A field that is not a column is reported once; the rows are then
	// rendered with it empty, to find the problems that lie behind it.
	blank := c.checkFields(rd.Header(), probs)
	ready := r != nil && c.Body != nil && c.Subject != nil && len(probs.list) == len(blank)

	ctx, cancel := context.WithCancel(ctx)
	room := &budget{freed: make(chan struct{}, 1)}
	items := c.stream(ctx, rd, r, ready, blank, &opts, room)
	defer func() {
		cancel()
		for range items { // let the reader and the renderers finish
		}
	}()
	for it := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		if it.done != nil {
			<-it.done
		}
		// Past the limit, the list is still checked (a send takes none of
		// it if a row has a problem), but nothing more counted: a check
		// counts what its send will go through, so that the two agree.
		past := opts.Limit > 0 && sum.Messages >= opts.Limit
		if !past && it.skip == skipNone && it.rec != nil && it.rec.Warning != nil {
			sum.Warned++
			if opts.Warn != nil {
				opts.Warn(it.rec.Warning)
			}
		}
		var rowErr *merge.RowError
		switch {
		case it.skip != skipNone && past:
		case it.skip != skipNone:
			sum.count(it.skip)
			if it.err != nil && opts.Warn != nil {
				opts.Warn(it.err)
			}
		case errors.As(it.err, &rowErr):
			c.explainLimit(rowErr)
			probs.addRow(rowErr)
		case it.err != nil && it.rec == nil: // the list can't be read on
			probs.add(it.err)
			return probs.err()
		case it.err == nil && it.m == nil:
			// not rendered: the campaign is broken
		case it.err != nil:
			if deliverFn != nil && !opts.SinglePass { // the list changed since it was checked
				return &messageError{rec: it.rec, list: c.Recipients, err: it.err}
			}
			list, ok := it.err.(render.Errors)
			if !ok {
				list = render.Errors{it.err}
			}
			for _, err := range list {
				probs.addMessage(&messageError{rec: it.rec, list: c.Recipients, err: err})
			}
		case past:
		default:
			if deliverFn != nil && len(probs.list) == 0 {
				if opts.To != "" {
					it.m.To = opts.To
				}
				if err := deliverFn(it.m); err != nil {
					var ce *deliver.ConnError
					if errors.As(err, &ce) || errors.Is(err, ErrTooManyFailures) || errors.Is(err, errStopped) || errors.Is(err, context.Canceled) {
						return err // the campaign's, not the recipient's
					}
					return fmt.Errorf("%s (row %d): %w", it.rec.Email, it.rec.Row, err)
				}
			}
			sum.Messages++
			if deliverFn != nil && opts.Limit > 0 && sum.Messages >= opts.Limit {
				return probs.err()
			}
		}
		room.give(it.weight)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := probs.err(); err != nil {
		return err
	}
	if sum.Messages == 0 && ready && sum.AlreadySent+sum.Held+sum.OtherShards == 0 {
		return fmt.Errorf("%s: no recipients to send to: the list has no valid rows", c.Recipients)
	}
	return nil
}

// item is one row of the list on its way: skipped, broken, or rendered.
type item struct {
	rec  *merge.Recipient
	skip skipKind
	m    *render.Message
	err  error
	done chan struct{} // closed when m and err are set; nil when not rendered
	// weight is the bytes of the row's values, taken from the budget
	// while the message is rendered and until it is written or sent.
	weight int64
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

type skipKind int

const (
	skipNone      skipKind = iota
	skipInvalid            // an address batch can't send to
	skipDuplicate          // an address seen before in the list
	skipSent               // the journal says sent
	skipHeld               // failed or unknown before, not tried again
	skipShard              // another shard's
)

func (s *Summary) count(k skipKind) {
	switch k {
	case skipInvalid:
		s.Invalid++
	case skipDuplicate:
		s.Duplicates++
	case skipSent:
		s.AlreadySent++
	case skipHeld:
		s.Held++
	case skipShard:
		s.OtherShards++
	}
}

// stream reads the list in one goroutine and renders the rows on every
// core, and gives the items back in list order, so that what is written or
// sent, and the journal, come out the same whatever the timing. At most a
// few items per core are in flight, and values of at most inFlight bytes
// (room), so memory stays flat however long the list and however large
// its rows.
func (c *Campaign) stream(ctx context.Context, rd *merge.Reader, r *render.Renderer, ready bool, blank []string, opts *Options, room *budget) <-chan *item {
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
				it.weight = valueBytes(rec)
				if !room.take(ctx, it.weight) {
					return
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

// checkFields reports every field the templates name that is not one of
// columns, and returns their names.
func (c *Campaign) checkFields(columns []string, probs *problems) []string {
	var all []*merge.FieldError
	if c.Body != nil {
		all = append(all, c.Body.CheckFields(columns)...)
	}
	if c.Subject != nil {
		all = append(all, c.Subject.CheckFields(columns)...)
	}
	for _, h := range c.Headers {
		all = append(all, h.Value.CheckFields(columns)...)
	}
	if c.Preheader != nil {
		all = append(all, c.Preheader.CheckFields(columns)...)
	}
	if c.Unsubscribe != nil && c.Unsubscribe.URL != nil {
		all = append(all, c.Unsubscribe.URL.CheckFields(columns)...)
	}
	var names []string
	for _, e := range all {
		probs.add(e)
		if !slices.Contains(names, e.Field) {
			names = append(names, e.Field)
		}
	}
	return names
}

func (c *Campaign) renderer(opts Options) (*render.Renderer, error) {
	var template render.Lines
	source := ""
	if c.Body != nil {
		template, source = c.Body, c.Body.Source()
	}
	r, err := render.New(render.Options{
		Campaign:       c.Name,
		From:           c.From,
		ReplyTo:        c.ReplyTo,
		TemplateName:   c.BodyPath,
		TemplateSource: source,
		Template:       template,
		ImageDir:       filepath.Dir(c.BodyPath),
		LayoutName:     c.layoutName(),
		Layout:         c.Layout,
		Lang:           c.Lang,
		Attachments:    c.Attachments,
		Files:          c.files(),
		FileLimit:      c.Limits.Attachment,
		MessageLimit:   c.Limits.Message,
		Date:           opts.Now,
		TextFooter:     c.LayoutPath == "", // the built-in layout's footer
		DKIM:           c.DKIM,
		TestTo:         opts.To,
	})
	if err != nil {
		// The files New reads are the campaign-wide attachments: their
		// problems point at that key.
		list, ok := err.(render.Errors)
		if !ok {
			list = render.Errors{err}
		}
		out := make(render.Errors, len(list))
		for i, e := range list {
			var size *render.SizeError
			var file *render.FileError
			if errors.As(e, &size) || errors.As(e, &file) {
				e = fmt.Errorf("%s: %w", c.loc("attachments"), c.explain(e))
			}
			out[i] = e
		}
		return nil, out
	}
	return r, nil
}

// messageError is a problem met rendering one recipient's message: most
// often the template's, so it leads, and the row follows.
type messageError struct {
	rec  *merge.Recipient
	list string
	err  error
	more int // further messages with the same problem
}

func (e *messageError) Error() string {
	if e.more > 0 {
		return fmt.Sprintf("%v (in the messages to row %d, %s:%d, and %d more)", e.err, e.rec.Row, e.list, e.rec.Line, e.more)
	}
	return fmt.Sprintf("%v (in the message to row %d, %s:%d)", e.err, e.rec.Row, e.list, e.rec.Line)
}

func (e *messageError) Unwrap() error { return e.err }

// message merges one recipient's row and renders the message.
func (c *Campaign) message(r *render.Renderer, rec *merge.Recipient, body *bytes.Buffer) (*render.Message, error) {
	subject, err := c.Subject.Line(rec.Fields)
	if err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	body.Reset()
	if err := c.Body.Execute(body, rec.Fields); err != nil {
		return nil, err
	}
	in := &render.Input{
		Seq:      rec.Row,
		To:       mail.Address{Name: merge.OneLine(rec.Name), Address: rec.Email},
		Subject:  subject,
		Markdown: body.Bytes(),
		Fields:   rec.Fields,
	}
	for _, h := range c.Headers {
		v, err := h.Value.Line(rec.Fields)
		if err != nil {
			return nil, err
		}
		in.Headers = append(in.Headers, render.Field{Name: h.Name, Value: v})
	}
	if c.Preheader != nil {
		if in.Preheader, err = c.Preheader.Line(rec.Fields); err != nil {
			return nil, err
		}
	}
	if c.Unsubscribe != nil {
		if in.Unsubscribe, err = c.Unsubscribe.link(rec.Fields); err != nil {
			return nil, err
		}
		in.UnsubMailto = c.Unsubscribe.Mailto
	}
	if in.Attachments, err = c.recipientFiles(rec); err != nil {
		return nil, err
	}
	m, err := r.Render(in)
	if err != nil {
		return nil, c.explain(err)
	}
	return m, nil
}

func (c *Campaign) layoutName() string {
	if c.LayoutPath == "" {
		return "built-in layout"
	}
	return c.LayoutPath
}
