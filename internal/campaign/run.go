package campaign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
	"github.com/batch-mailer/batch/internal/suppress"
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
	// Quota, if set, limits the messages handed over in its window,
	// counted from every journal of the campaign: once spent, the send
	// stops with a *QuotaError (nothing failed), or, with QuotaWait,
	// sleeps until the window reopens, telling Waiting (may be nil)
	// first. Clock is the quota's; nil for the real one.
	Quota     *Quota
	QuotaWait bool
	Waiting   func(until time.Time)
	Clock     deliver.Clock
	// Early, if set, is called once by Send's check, as soon as it has
	// counted a first message to send with no problem met yet and the
	// quota not spent: so that the sender can start reaching its server
	// (connecting, TLS, logging in) while the rest of the list is
	// checked. Nothing may be sent before the Opener is called; when it
	// isn't (the check found a problem, or nothing to send), undoing
	// what Early started is the caller's.
	Early func()
}

// Check renders every recipient's message in memory (render.Renderer.Check:
// the bytes of the first one only) and reports every problem that would
// stop the campaign, as Problems.
func (c *Campaign) Check(ctx context.Context, opts Options) (*Summary, error) {
	sum := &Summary{}
	probs := newProblems()
	r := c.newRenderer(opts, probs)
	sup, err := c.suppressionList()
	if err != nil {
		probs.add(err)
	}
	check := &pass{c: c, opts: &opts, sum: sum, r: r, probs: probs, sup: sup, out: &checking{}}
	return sum, check.run(ctx)
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
// when every outcome is in. A campaign file with problems (Load's) is
// never sent: nothing is opened.
func (c *Campaign) Send(ctx context.Context, open Opener, opts Options) (*Summary, error) {
	if c.incomplete {
		return nil, fmt.Errorf("%s %w: batch check %s lists them", c.Path, errIncomplete, c.Path)
	}
	planned := &Summary{}
	// One renderer for both passes: the layout, its styles, the images
	// and the attachments are read and encoded once.
	probs := newProblems()
	r := c.newRenderer(opts, probs)
	sup, err := c.suppressionList()
	if err != nil {
		probs.add(err)
	}
	warn := opts.Warn
	// The quota's window is read before the check, which may start
	// reaching the server only if the quota has room; its error comes
	// after the check's problems.
	quota, qerr := c.newQuotaWindow(&opts)
	if !opts.SinglePass {
		out := &checking{}
		if qerr == nil && quota.spentAtStart(&Summary{Messages: 1}) == nil {
			out.early = opts.Early
		}
		check := &pass{c: c, opts: &opts, sum: planned, r: r, probs: probs, sup: sup, out: out}
		if err := check.run(ctx); err != nil {
			return nil, err
		}
		probs = newProblems() // the check found none
		opts.Warn = nil       // told already
	}
	if qerr != nil {
		return nil, qerr
	}
	if err := quota.spentAtStart(planned); err != nil {
		// Nothing to hand over: the server is not reached, nobody asked.
		planned.Messages = 0 // this run's summary: none handed over
		return planned, err
	}
	s, err := open(planned)
	if err != nil {
		return nil, c.explainConn(err)
	}
	if opts.Journal != nil {
		if c.SMTP != nil && c.SMTP.Connections > 1 {
			opts.Journal.GroupSyncs()
		}
		opts.Journal.Append(journal.Record{Kind: journal.KindOpen, Campaign: c.Name, At: time.Now().Unix()})
	}
	sum := &Summary{}
	d := c.newDelivery(ctx, s, opts, sum)
	d.quota = quota
	d.bounces = c.newBouncer(&opts, warn)
	send := &pass{c: c, opts: &opts, sum: sum, r: r, probs: probs, sup: sup,
		out: &sending{d: d, to: opts.To, limit: opts.Limit, checked: !opts.SinglePass}}
	err = c.endSend(ctx, d, s, send.run(ctx))
	sum.Bounced = d.bounces.close() // every outcome is in
	return sum, err
}

// endSend waits for every outcome of the send pass, which ended with err,
// closes the sender (a Discarder drops what a pass that found problems
// wrote) and returns the first of what went wrong: the pass, the
// outcomes, closing, a stop, the quota, ctx.
func (c *Campaign) endSend(ctx context.Context, d *delivery, s deliver.Sender, err error) error {
	if ferr := d.finish(); err == nil {
		err = ferr
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	var found Problems
	if dis, ok := s.(Discarder); ok && errors.As(err, &found) {
		if derr := dis.Discard(); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	if err == nil {
		err = d.stopped()
	}
	if err == nil {
		err = d.quotaSpent() // a retry's
	}
	if err == nil {
		err = ctx.Err()
	}
	return c.explainConn(err)
}

// errIncomplete is a campaign file with problems, which is never sent.
var errIncomplete = errors.New("has problems")

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

// pass is one pass over the list: it reads every row, renders on every
// core the messages of those to send, counts them, collects the problems
// and gives the messages, in list order, to its handoff. It stops at the
// handoff's first error; the problems are returned together.
type pass struct {
	c     *Campaign
	opts  *Options
	sum   *Summary
	r     *render.Renderer // nil: the campaign can't render, and the list is read for its own problems
	probs *problems
	sup   *suppress.List // the campaign's suppression list; nil for none
	out   handoff

	// Set once the list's header is read: blank are the fields the
	// templates name that are not columns, reported once, then rendered
	// empty to find the problems that lie behind them; ready, whether
	// the rows can be rendered.
	blank []string
	ready bool
}

// handoff is what a pass does with the messages it renders: Check's
// counts them (checking), Send's hands them over (sending).
type handoff interface {
	// take is given each message, in list order, while the pass has met
	// no problem; its error ends the pass.
	take(it *item) error
	// failed is told of a message that could not be rendered: nil to
	// report it with the other problems, or the error that ends the pass.
	failed(e *messageError) error
	// last reports whether the pass ends once it has counted n messages.
	last(n int) bool
	// written reports whether it takes the messages' bytes; false for
	// one that needs only their problems, whose messages are checked
	// (render.Renderer.Check), not written, and have no m.
	written() bool
}

// checking is Check's handoff: every message is rendered in memory and
// counted, and the whole list is checked, past the limit too. Send's
// check calls early (Options.Early), if set, at the first message it
// takes, which is before any problem.
type checking struct{ early func() }

func (c *checking) take(*item) error {
	if c.early != nil {
		c.early()
		c.early = nil
	}
	return nil
}
func (*checking) failed(*messageError) error { return nil }
func (*checking) last(int) bool              { return false }
func (*checking) written() bool              { return false }

// sending is Send's handoff: each message goes to the delivery, up to the
// limit.
type sending struct {
	d     *delivery
	to    string // a test send's address, every message's envelope recipient; "" for none
	limit int    // 0 for none
	// checked: the list was checked before, so a message that can't be
	// rendered now means it changed since, and stops the send.
	checked bool
}

func (s *sending) take(it *item) error {
	if s.to != "" {
		it.m.To = s.to
	}
	if err := s.d.deliver(it.m); err != nil {
		var ce *deliver.ConnError
		if errors.As(err, &ce) || errors.Is(err, ErrTooManyFailures) || errors.Is(err, errStopped) || errors.Is(err, context.Canceled) || errors.Is(err, ErrQuota) {
			return err // the campaign's, not the recipient's
		}
		return fmt.Errorf("%s (row %d): %w", it.rec.Email, it.rec.Row, err)
	}
	return nil
}

func (s *sending) failed(e *messageError) error {
	if s.checked {
		return e
	}
	return nil
}

func (s *sending) last(n int) bool { return s.limit > 0 && n >= s.limit }

func (*sending) written() bool { return true }

// run opens the list, reads its header and takes its rows.
func (p *pass) run(ctx context.Context) error {
	c := p.c
	if c.Recipients == "" {
		return p.probs.err()
	}
	f, err := os.Open(c.Recipients)
	if err != nil {
		if !c.incomplete { // else Load has said so
			p.probs.add(fmt.Errorf("%s: %w", c.Recipients, err))
		}
		return p.probs.err()
	}
	defer f.Close()
	rd, err := merge.NewReader(c.Recipients, f, c.Columns, c.listLimits())
	var herr *merge.HeaderError
	switch {
	case errors.As(err, &herr):
		for _, e := range herr.Problems {
			p.probs.add(e)
		}
		c.checkFields(herr.Columns, p.probs)
		return p.probs.err()
	case err != nil:
		p.probs.add(c.explainLimit(err))
		return p.probs.err()
	}
	p.blank = c.checkFields(rd.Header(), p.probs)
	p.ready = p.r != nil && c.Body != nil && c.Subject != nil && len(p.probs.list) == len(p.blank)
	return p.rows(ctx, rd)
}

// rows takes every row of the list, in order, through the pipeline.
func (p *pass) rows(ctx context.Context, rd *merge.Reader) error {
	room := &budget{freed: make(chan struct{}, 1)}
	list := pipeline{read: func(ctx context.Context) (*item, bool) { return p.read(ctx, rd, room) }, render: p.render}
	for it := range list.items(ctx) {
		if err := ctx.Err(); err != nil {
			return err
		}
		done, err := p.take(it)
		room.give(it.weight)
		if done {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.probs.err(); err != nil {
		return err
	}
	if s := p.sum; s.Messages == 0 && p.ready && s.AlreadySent+s.Held+s.OtherShards+s.Suppressed == 0 {
		return fmt.Errorf("%s: no recipients to send to: the list has no valid rows", p.c.Recipients)
	}
	return nil
}

// read reads the next row and says what becomes of it (the pipeline's
// reader, on a goroutine of its own); false at the end of the list, or
// when ctx ends while a row to render waits for room in the budget.
func (p *pass) read(ctx context.Context, rd *merge.Reader, room *budget) (*item, bool) {
	rec, err := rd.Next()
	if errors.Is(err, io.EOF) {
		return nil, false
	}
	it := &item{rec: rec, err: err}
	var rowErr *merge.RowError
	switch {
	case errors.Is(err, merge.ErrDuplicate):
		it.kind, it.skip = itemSkipped, skipDuplicate
	case errors.Is(err, merge.ErrSkipped):
		it.kind, it.skip = itemSkipped, skipInvalid
	case errors.As(err, &rowErr):
		it.kind = itemBroken
	case err != nil:
		it.kind = itemUnreadable
	case !p.ready:
		it.kind = itemUnrendered
	case !p.opts.Shard.Has(rec.Email):
		it.kind, it.skip = itemSkipped, skipShard
	default:
		if it.skip = journalSkip(rec, p.opts); it.skip != skipNone {
			it.kind = itemSkipped
			break
		}
		if p.sup != nil {
			if e, ok := p.sup.Has(rec.Email); ok {
				it.kind, it.skip, it.why = itemSkipped, skipSuppressed, e.Reason
				break
			}
		}
		for _, name := range p.blank {
			rec.Fields[name] = ""
		}
		it.weight = valueBytes(rec)
		if !room.take(ctx, it.weight) {
			return nil, false
		}
		it.kind = itemMessage
	}
	return it, true
}

// render renders an itemMessage, or only checks it for a handoff that
// takes no bytes (the pipeline's, on every core).
func (p *pass) render(it *item, body *bytes.Buffer) {
	if !p.out.written() {
		it.err = p.c.check(p.r, it.rec, body)
	} else {
		it.m, it.err = p.c.message(p.r, it.rec, body)
	}
	if it.err != nil {
		it.kind = itemFailed
	}
}

// take counts one item, collects its problems or hands its message over;
// done says that the pass ends with it, and returns err.
func (p *pass) take(it *item) (done bool, err error) {
	// Past the limit, the list is still checked (a send takes none of
	// it if a row has a problem), but nothing more counted: a check
	// counts what its send will go through, so that the two agree.
	past := p.opts.Limit > 0 && p.sum.Messages >= p.opts.Limit
	if !past && it.rec != nil && it.rec.Warning != nil && (it.kind == itemMessage || it.kind == itemFailed || it.kind == itemUnrendered) {
		p.sum.Warned++
		if p.opts.Warn != nil {
			p.opts.Warn(it.rec.Warning)
		}
	}
	var rowErr *merge.RowError
	switch it.kind {
	case itemSkipped:
		if !past {
			p.sum.count(it.skip)
			if it.skip == skipSuppressed {
				p.sum.suppressed(it.why)
			}
			if it.err != nil && p.opts.Warn != nil {
				p.opts.Warn(it.err)
			}
		}
	case itemBroken:
		errors.As(it.err, &rowErr)
		p.c.explainLimit(rowErr)
		p.probs.addRow(rowErr)
	case itemUnreadable:
		p.probs.add(it.err)
		return true, p.probs.err()
	case itemUnrendered:
		// read for the list's own problems: the campaign can't render
	case itemFailed:
		return p.failed(it)
	case itemMessage:
		if !past {
			return p.message(it)
		}
	}
	return false, nil
}

// failed collects the problems of a message that could not be rendered,
// unless the handoff ends the pass with it.
func (p *pass) failed(it *item) (done bool, err error) {
	if err := p.out.failed(&messageError{rec: it.rec, list: p.c.Recipients, err: it.err}); err != nil {
		return true, err
	}
	for _, err := range problemList(it.err) {
		p.probs.addMessage(&messageError{rec: it.rec, list: p.c.Recipients, err: err})
	}
	return false, nil
}

// message hands a message over, while the pass has met no problem, and
// counts it.
func (p *pass) message(it *item) (done bool, err error) {
	if len(p.probs.list) == 0 {
		if err := p.out.take(it); err != nil {
			return true, err
		}
	}
	p.sum.Messages++
	if p.out.last(p.sum.Messages) {
		return true, p.probs.err()
	}
	return false, nil
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
