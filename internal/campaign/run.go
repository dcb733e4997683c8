package campaign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
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
	// A check with a Limit checks the whole list, and counts (Summary) and
	// warns of the rows that a send with it goes through.
	Limit int
	// To, for a test send, takes every message's envelope instead of its
	// recipient; the headers stay as the recipient would see them.
	To string
	// Outcome is told of each message's final outcome, as the journal
	// holds it (sent, failed or unknown), and why it failed, from any
	// goroutine; may be nil. The Summary counts the same outcomes.
	Outcome func(m *render.Message, st deliver.Status, err error)

	// Journal records every outcome; nil for none (a dry run, a test
	// send). State is what it held before this run.
	Journal *deliver.Journal
	State   *deliver.State
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
		opts.Journal.Append(deliver.Record{Kind: deliver.KindOpen, Campaign: c.Name, At: time.Now().Unix()})
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
	case deliver.Sent:
		return skipSent
	case deliver.Failed:
		if !opts.RetryFailed {
			return skipHeld
		}
	case deliver.Unknown:
		if !opts.ResendUnknown {
			return skipHeld
		}
	}
	return skipNone
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

	ctx, cancel := context.WithCancel(ctx)
	items := c.stream(ctx, rd, r, ready, blank, &opts)
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
		var rowErr *merge.RowError
		switch {
		case it.skip != skipNone && past:
		case it.skip != skipNone:
			sum.count(it.skip)
			if it.err != nil && opts.Warn != nil {
				opts.Warn(it.err)
			}
		case errors.As(it.err, &rowErr):
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
