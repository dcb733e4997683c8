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
	"slices"
	"sync"
	"time"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
)

// Options are the choices of one run.
type Options struct {
	Now  time.Time   // the Date of every message
	Warn func(error) // told of each skipped row; may be nil
	// Limit sends to the first Limit recipients not yet sent; 0 for all.
	Limit int
	// To, for a test send, takes every message's envelope instead of its
	// recipient; the headers stay as the recipient would see them.
	To string
	// Outcome is told of each message's final outcome, from any
	// goroutine; may be nil.
	Outcome func(m *render.Message, err error)

	// Journal records every outcome; nil for none (a dry run, a test
	// send). State is what it held before this run.
	Journal *deliver.Journal
	State   *deliver.State
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

	mu       sync.Mutex
	outcomes Outcomes
}

// Outcomes counts what became of the messages handed over.
type Outcomes struct {
	Sent     int
	Failed   int // refused for good, or out of retries
	Unknown  int // the connection broke after the message was handed over
	Deferred int // temporary failures, each tried again later
}

type outcome int

const (
	outcomeSent outcome = iota
	outcomeFailed
	outcomeUnknown
	outcomeDeferred
)

// Skipped is the number of rows left out for their address.
func (s *Summary) Skipped() int { return s.Invalid + s.Duplicates }

// Outcomes returns what became of the messages so far.
func (s *Summary) Outcomes() Outcomes {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outcomes
}

func (s *Summary) outcome(o outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch o {
	case outcomeSent:
		s.outcomes.Sent++
	case outcomeFailed:
		s.outcomes.Failed++
	case outcomeUnknown:
		s.outcomes.Unknown++
	case outcomeDeferred:
		s.outcomes.Deferred++
	}
}

// Check renders every recipient's message in memory and reports every
// problem that would stop the campaign, as Problems.
func (c *Campaign) Check(ctx context.Context, opts Options) (*Summary, error) {
	sum := &Summary{}
	return sum, c.run(ctx, opts, sum, nil)
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
	if err := c.run(ctx, opts, planned, nil); err != nil {
		return nil, err
	}
	if opts.Limit > 0 {
		planned.Messages = min(planned.Messages, opts.Limit)
	}
	s, err := open(planned)
	if err != nil {
		return nil, err
	}
	if opts.Journal != nil {
		opts.Journal.Append(deliver.Record{Kind: deliver.KindOpen, Campaign: c.Name, At: time.Now().Unix()})
	}
	opts.Warn = nil // told already
	sum := &Summary{}
	d := newDelivery(ctx, s, opts, sum)
	err = c.run(ctx, opts, sum, d.deliver)
	if ferr := d.finish(); err == nil {
		err = ferr
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.stopped()
	}
	if err == nil {
		err = ctx.Err()
	}
	return sum, err
}

// skip reports whether the journal's word on rec means it is not sent this
// run, and counts it.
func skip(rec *merge.Recipient, opts *Options, sum *Summary) bool {
	switch opts.State.Get(rec.Email).Status {
	case deliver.Sent:
		sum.AlreadySent++
		return true
	case deliver.Failed:
		if !opts.RetryFailed {
			sum.Held++
			return true
		}
	case deliver.Unknown:
		if !opts.ResendUnknown {
			sum.Held++
			return true
		}
	}
	return false
}

// run streams the list, renders each message and passes it to deliver
// (when not nil). It stops at the first delivery error; other problems are
// collected and returned together.
func (c *Campaign) run(ctx context.Context, opts Options, sum *Summary, deliverFn func(*render.Message) error) error {
	if c.incomplete && deliverFn != nil {
		return errors.New("the campaign file has problems: run batch check")
	}
	probs := &problems{seen: map[string]*aggregate{}}
	var r *render.Renderer
	if !c.incomplete {
		var err error
		r, err = c.renderer(opts)
		if err != nil {
			probs.add(err)
		}
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
	rd, err := merge.NewReader(c.Recipients, f, c.Columns)
	var herr *merge.HeaderError
	switch {
	case errors.As(err, &herr):
		for _, p := range herr.Problems {
			probs.add(p)
		}
		c.checkFields(herr.Columns, probs)
		return probs.err()
	case err != nil:
		probs.add(err)
		return probs.err()
	}
	// A field that is not a column is reported once; the rows are then
	// rendered with it empty, to find the problems that lie behind it.
	blank := c.checkFields(rd.Header(), probs)
	ready := r != nil && c.Body != nil && c.Subject != nil && len(probs.list) == len(blank)
	var body bytes.Buffer
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var rowErr *merge.RowError
		switch {
		case errors.Is(err, merge.ErrSkipped):
			if errors.Is(err, merge.ErrDuplicate) {
				sum.Duplicates++
			} else {
				sum.Invalid++
			}
			if opts.Warn != nil {
				opts.Warn(err)
			}
			continue
		case errors.As(err, &rowErr):
			probs.addRow(rowErr)
			continue
		case err != nil:
			probs.add(err)
			return probs.err()
		}
		if !ready {
			continue
		}
		if opts.State != nil && skip(rec, &opts, sum) {
			continue
		}
		for _, name := range blank {
			rec.Fields[name] = ""
		}
		m, err := c.message(r, rec, &body)
		if err != nil {
			if deliverFn != nil { // the list changed since it was checked
				return &messageError{rec: rec, list: c.Recipients, err: err}
			}
			list, ok := err.(render.Errors)
			if !ok {
				list = render.Errors{err}
			}
			for _, err := range list {
				probs.addMessage(&messageError{rec: rec, list: c.Recipients, err: err})
			}
			continue
		}
		if deliverFn != nil {
			if opts.To != "" {
				m.To = opts.To
			}
			if err := deliverFn(m); err != nil {
				var ce *deliver.ConnError
				if errors.As(err, &ce) || errors.Is(err, ErrTooManyFailures) || errors.Is(err, context.Canceled) {
					return err // the campaign's, not the recipient's
				}
				return fmt.Errorf("%s (row %d): %w", rec.Email, rec.Row, err)
			}
		}
		sum.Messages++
		if deliverFn != nil && opts.Limit > 0 && sum.Messages >= opts.Limit {
			break
		}
	}
	if err := probs.err(); err != nil {
		return err
	}
	if sum.Messages == 0 && ready && sum.AlreadySent+sum.Held == 0 {
		return fmt.Errorf("%s: no recipients to send to: the list has no valid rows", c.Recipients)
	}
	return nil
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
	template := ""
	if c.Body != nil {
		template = c.Body.Source()
	}
	return render.New(render.Options{
		Campaign:       c.Name,
		From:           c.From,
		ReplyTo:        c.ReplyTo,
		TemplateName:   c.BodyPath,
		TemplateSource: template,
		ImageDir:       filepath.Dir(c.BodyPath),
		LayoutName:     c.layoutName(),
		Layout:         c.Layout,
		Attachments:    c.Attachments,
		Date:           opts.Now,
	})
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
	return r.Render(in)
}

func (c *Campaign) layoutName() string {
	if c.LayoutPath == "" {
		return "built-in layout"
	}
	return c.LayoutPath
}
