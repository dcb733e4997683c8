package campaign

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
)

// Status is where a recipient stands, as the campaign's journal holds it.
type Status = journal.Status

// The statuses of a recipient.
const (
	Pending = journal.Pending // not sent yet, or to be tried again
	Sent    = journal.Sent
	Failed  = journal.Failed  // refused for good, or out of retries
	Unknown = journal.Unknown // handed over; the server may have it
)

// State is what the journal says of each recipient, and Entry its last
// word on one.
type (
	State = journal.State
	Entry = journal.Entry
)

// Recipient is one row of the list.
type Recipient = merge.Recipient

// CheckAddress reports why address is not one batch sends to, if it isn't:
// it must be a plain local@domain.tld in ASCII, as the list's are.
func CheckAddress(address string) error { return merge.CheckAddress(address) }

// NewCSVWriter returns the writer of CSV meant for people (status
// --failed): a cell a spreadsheet would run as a formula is made text,
// unless the writer's Raw is set.
func NewCSVWriter(w io.Writer) *merge.CSVWriter { return merge.NewCSVWriter(w) }

// Counts counts recipients by their status.
type Counts map[Status]int

// Count counts the recipients of the list (the shard's) by the journal's
// word on them, state.
func (c *Campaign) Count(state *State, shard Shard) (Counts, error) {
	n := Counts{}
	_, err := c.Status(state, shard, func(_ *Recipient, e Entry) { n[e.Status]++ })
	return n, err
}

// DryRun writes every message into dir, an .eml file each (see
// deliver.NewDir), rendering each once: the files written are taken back
// if a problem turns up.
func (c *Campaign) DryRun(ctx context.Context, dir string, opts Options) (*Summary, error) {
	opts.SinglePass = true
	return c.Send(ctx, func(*Summary) (deliver.Sender, error) { return deliver.NewDir(dir), nil }, opts)
}

// DryRunMbox writes every message into one mbox file (mboxrd), which mail
// programs such as mutt open as a folder; like DryRun otherwise.
func (c *Campaign) DryRunMbox(ctx context.Context, file string, opts Options) (*Summary, error) {
	s, err := deliver.NewMbox(file)
	if err != nil {
		return nil, err
	}
	opts.SinglePass = true
	return c.Send(ctx, func(*Summary) (deliver.Sender, error) { return s, nil }, opts)
}

// SendRequest is a send over SMTP, to the server of the campaign's [smtp]
// table.
type SendRequest struct {
	// Options are the run's: Now, Warn, Limit, Shard, To (a test send,
	// which the journal does not record), RetryFailed, ResendUnknown,
	// QuotaWait and Waiting. Deliver sets the rest: the journal and its
	// state, the retries and the quota of [smtp], and Outcome.
	Options Options
	// Password is the [smtp] account's, if it has a username.
	Password string
	// Token gives the access token of an OAuth2 login (SMTP.Token);
	// nil for a password login.
	Token deliver.Token
	// Debug, if not nil, is where the SMTP dialogue goes, the password
	// hidden.
	Debug io.Writer
	// Confirm is called once the whole campaign is checked, and the server
	// reached and logged in, with what is about to be sent: the last word
	// before the first message. An error sends nothing, and is Deliver's.
	// May be nil.
	Confirm func(planned *Summary) error
	// Outcome is told of each message's final outcome, as the journal
	// holds it, from any goroutine; may be nil. The Summary counts the
	// same outcomes.
	Outcome func(Result)
}

// Result is the final outcome of one message, as the journal holds it.
type Result struct {
	To     string // the envelope's recipient: the test address, for a test send
	Row    int    // the recipient's row in the list
	Status Status // Sent, Failed or Unknown
	Err    error  // why, unless sent
}

// ErrNothingToSend is a send that had nothing to do: every recipient was
// dealt with before (sent, or failed or unknown and held back).
var ErrNothingToSend = errors.New("nothing to send")

// Report is what a send did, and what the journal says after it.
type Report struct {
	// Summary counts this run's messages and rows; nil when the run ended
	// before the first message: the campaign had problems, there was
	// nothing to send, the server could not be reached or Confirm said no.
	Summary *Summary
	// Elapsed is how long the sending took, from Confirm's return to the
	// last outcome.
	Elapsed time.Duration
	// List counts the recipients of the list (the shard's) by the
	// journal's word on them once the run is over, this run's outcomes
	// and the earlier runs'. It is nil for a test send, which the journal
	// does not record, and when the journal or the list could not be read
	// again (Deliver's error says why).
	List Counts
	// Suppressed counts by reason the pending recipients the suppression
	// list keeps out, when there was nothing to send (ErrNothingToSend);
	// nil otherwise.
	Suppressed map[string]int
	// Stopped is a recorded send cut short, interrupted or by an error
	// once messages went out: sending again resumes where it stopped.
	Stopped bool

	tested bool // a test send
}

// Unsettled is how many recipients failed or have an unknown outcome: of
// the whole list (List), or, for a test send, of this run's messages.
func (r *Report) Unsettled() int {
	if !r.tested {
		return r.List[Failed] + r.List[Unknown]
	}
	if r.Summary == nil {
		return 0
	}
	o := r.Summary.Outcomes()
	return o.Failed + o.Unknown
}

// Deliver sends the campaign to the server of its [smtp] table. It opens
// the shard's journal (but for a test send, which is not recorded), then
// sends as Send does: the whole campaign checked first, the server reached
// (while the check goes on, from its first message to send) and Confirm
// asked before the first message, nobody sent whom the journal says was
// dealt with. Once every outcome is in, it closes the journal and
// reads it again to count the whole list (Report.List). With nobody left
// to send to it sends nothing and returns ErrNothingToSend. The report is
// never nil.
func (c *Campaign) Deliver(ctx context.Context, req SendRequest) (*Report, error) {
	opts := req.Options
	rep := &Report{tested: opts.To != ""}
	if c.SMTP == nil {
		return rep, errors.New(c.Path + " has no [smtp] table: add one to send (see README.md)")
	}
	cfg, err := c.SMTP.Config(req.Password, req.Debug)
	if err != nil {
		return rep, err
	}
	cfg.Token = req.Token
	opts.Retries, opts.RetryWait, opts.MaxErrors = c.SMTP.Retries, c.SMTP.RetryWait, c.SMTP.MaxErrors
	opts.Quota = c.SMTP.Quota
	opts.Journal, opts.State = nil, nil
	if !rep.tested {
		// A test send goes to the tester, not the list: no journal.
		if err := c.openJournal(&opts); err != nil {
			return rep, err
		}
		defer opts.Journal.Close()
	}
	opts.Outcome = req.outcome()
	// The server is reached while the list is checked, from its first
	// message to send on; a check that then fails, or finds nothing to
	// send, ends the connections with QUIT, having sent nothing.
	dial := &earlyDial{ctx: ctx, cfg: cfg}
	opts.Early = dial.start
	var start time.Time
	sum, err := c.Send(ctx, req.opener(dial, &start), opts)
	dial.abandon()
	rep.Summary = sum
	if sum != nil && !start.IsZero() {
		rep.Elapsed = time.Since(start)
	}
	if rep.tested {
		return rep, err
	}
	// What the journal now says of the whole list, this run and earlier
	// ones: the exit status and the advice are about every recipient.
	if cerr := opts.Journal.Close(); err == nil {
		err = cerr
	}
	rep.Stopped = sum != nil && (errors.Is(err, context.Canceled) || err != nil && sum.Outcomes() != (Outcomes{}))
	state, serr := c.ReadState(opts.Shard)
	if serr == nil {
		rep.List, serr = c.Count(state, opts.Shard)
	}
	if serr == nil && errors.Is(err, ErrNothingToSend) {
		rep.Suppressed, serr = c.CountSuppressed(state, opts.Shard)
	}
	if serr != nil {
		rep.List = nil
		if err == nil || errors.Is(err, ErrNothingToSend) { // nothing to count by
			err = serr
		}
	}
	return rep, err
}

// outcome is the Options.Outcome that tells r.Outcome; nil for none.
func (r *SendRequest) outcome() func(*render.Message, Status, error) {
	if r.Outcome == nil {
		return nil
	}
	return func(m *render.Message, st Status, err error) {
		r.Outcome(Result{To: m.To, Row: m.Seq, Status: st, Err: err})
	}
}

// opener is the Opener of an SMTP send: with something to send, it
// takes the connection dial started during the check (or reaches the
// server now), asks Confirm, and notes in start when the sending starts.
func (r *SendRequest) opener(dial *earlyDial, start *time.Time) Opener {
	return func(planned *Summary) (deliver.Sender, error) {
		if planned.Messages == 0 {
			return nil, ErrNothingToSend
		}
		s, err := dial.take()
		if err != nil {
			return nil, err
		}
		if r.Confirm != nil {
			if err := r.Confirm(planned); err != nil {
				// Sent nothing: abandon says QUIT, within abandonGrace
				// of a connection still being opened.
				dial.taken = false
				return nil, err
			}
		}
		*start = time.Now()
		return s, nil
	}
}

// earlyDial reaches the server of a send in the background, started by
// the check (Options.Early) so that connecting, TLS and AUTH, of every
// connection, overlap the rest of it, and taken by the Opener once the
// check has passed. Its methods are called from the goroutine that runs
// the send.
type earlyDial struct {
	ctx   context.Context
	cfg   deliver.SMTPConfig
	done  chan struct{}      // closed once the dial is over; nil until started
	stop  context.CancelFunc // calls the dial off
	s     *deliver.SMTP
	err   error
	taken bool
}

// start starts the dial, once.
func (d *earlyDial) start() {
	if d.done != nil {
		return
	}
	d.done = make(chan struct{})
	ctx, stop := context.WithCancel(d.ctx)
	d.stop = stop
	go func() {
		defer close(d.done)
		d.s, d.err = deliver.DialSMTP(ctx, d.cfg)
	}()
}

// take waits for the dial, starting it if the check didn't, and returns
// its connections, which are then the caller's to close.
func (d *earlyDial) take() (*deliver.SMTP, error) {
	d.start()
	<-d.done
	d.taken = true
	return d.s, d.err
}

// abandon ends a dial the send didn't take, and says QUIT on every
// connection it opened: the first, and the others, which open in the
// background from the first on (deliver.DialSMTP). A connection still
// being opened after abandonGrace is called off: a server that stalls
// mid-dial doesn't hold back the check's problems for the [smtp] timeout.
// Its error is dropped: the check's problems, or that there is nothing to
// send, are what the user needs to hear. After a dial the send took,
// abandon only releases the dial's context, under which the connections
// opened: the send has closed them.
func (d *earlyDial) abandon() {
	if d.done == nil {
		return
	}
	defer d.stop()
	if d.taken {
		return
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		<-d.done
		if d.s != nil {
			d.s.Close() // waits for the connections being opened
		}
	}()
	grace := time.NewTimer(abandonGrace)
	defer grace.Stop()
	select {
	case <-closed:
	case <-grace.C:
		d.stop()
		<-closed
	}
}

// abandonGrace is how long a dial the send won't take may go on, so that
// a server that answers gets its QUIT.
const abandonGrace = 2 * time.Second
