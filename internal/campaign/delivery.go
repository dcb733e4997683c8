package campaign

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/render"
)

// delivery runs the sending half of a campaign: it hands messages to the
// sender, writes each outcome to the journal, puts temporary failures back
// in line after a backoff while the rest of the list goes on, and stops
// after too many failures in a row.
type delivery struct {
	ctx  context.Context
	c    *Campaign // says the sender's failures in its file's terms
	s    deliver.Sender
	opts Options
	sum  *Summary
	// bounces adds the hard bounces to the suppression list; nil for
	// none.
	bounces *bouncer
	// quota counts the messages handed over in the quota's window; nil
	// for no quota.
	quota *quotaWindow
	spent error // the quota's *QuotaError once it is spent: no more messages, those given finish

	mu       sync.Mutex
	inflight int
	// waiting are the messages given to the sender, in order, and not
	// yet begun, whose "sending" records a lease may write (see
	// tracker.Begun); with a journal only. d.mu guards it, and the
	// ticket and off of every tracker in it.
	waiting     []*tracker
	later       retries // temporary failures waiting for their time
	consecutive int     // failures in a row
	stop        error   // why no more messages go out
	wake        chan struct{}
}

func (c *Campaign) newDelivery(ctx context.Context, s deliver.Sender, opts Options, sum *Summary) *delivery {
	return &delivery{ctx: ctx, c: c, s: s, opts: opts, sum: sum, wake: make(chan struct{}, 1)}
}

// ErrTooManyFailures stops a campaign after max_errors failures in a row.
var ErrTooManyFailures = errors.New("too many failures in a row")

// deliver sends m, after any retries that are due. An error stops the
// campaign.
func (d *delivery) deliver(m *render.Message) error {
	if err := d.dispatchDue(); err != nil {
		return err
	}
	return d.send(m, 0)
}

// send hands m over; attempt counts earlier temporary failures.
func (d *delivery) send(m *render.Message, attempt int) error {
	if err := d.stopped(); err != nil {
		return err
	}
	t := &tracker{d: d, m: m, attempt: attempt}
	if d.quota != nil {
		// Before the sender has it, so before its "sending" record.
		if err := d.quota.take(d.ctx); err != nil {
			d.mu.Lock()
			if d.spent == nil && errors.Is(err, ErrQuota) {
				d.spent = err
			}
			d.mu.Unlock()
			return err
		}
		t.quota = true
	}
	d.mu.Lock()
	d.inflight++
	d.mu.Unlock()
	if err := d.s.Send(d.ctx, m, t); err != nil {
		t.giveBack()
		d.finished()
		return err
	}
	if d.opts.Journal != nil {
		d.mu.Lock()
		if t.leasable() {
			d.waiting = append(d.waiting, t)
		}
		d.mu.Unlock()
	}
	return nil
}

// lease is how many messages' "sending" records are written, and synced,
// together: those of a message as its first command goes and of the
// messages waiting behind it for a connection (SMTPConfig.Queue), up to
// lease in all. The journal then syncs once for each lease, not once for
// each message. What it costs is the precision of a journal read after
// the machine went down (a power cut): a recipient of the last lease
// whose outcome never reached the disk is unknown, up to lease of them
// and the messages on their way, where it would be one for each
// connection. A journal read on the boot that wrote it (batch killed,
// not the machine) tells them apart as before: a message begun but not
// handed over, or not begun at all, is pending.
const lease = 8

// leaseRecords writes t's "sending" record, at at, unless a lease has,
// with those of the messages waiting behind it, up to lease in all,
// appended together so that one sync takes them to disk.
func (d *delivery) leaseRecords(j *journal.Journal, t *tracker, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t.started() {
		return
	}
	n := 0 // those at the front that a lease can't take, to drop
	for n < len(d.waiting) && !d.waiting[n].leasable() {
		n++
	}
	d.waiting = d.waiting[n:]
	taken := [lease]*tracker{t}
	k := 1
	for _, w := range d.waiting {
		if k == lease {
			break
		}
		if w != t && w.leasable() {
			taken[k] = w
			k++
		}
	}
	var recs [lease]journal.Record
	for i, x := range taken[:k] {
		recs[i] = journal.Record{Kind: journal.KindSending, To: x.m.To, Row: x.m.Seq, ID: x.m.ID, At: at.Unix()}
	}
	ticket := j.Append(recs[:k]...)
	for _, x := range taken[:k] {
		x.ticket = ticket
	}
}

// leasable reports whether a lease may write the tracker's "sending"
// record: none is written yet, and Done has not come; d.mu is held.
func (t *tracker) leasable() bool { return !t.started() && !t.off }

// started reports whether the message's "sending" record was written
// (Begun, or a lease): it has a ticket.
func (t *tracker) started() bool { return t.ticket != 0 }

// now is the time of the journal's records: the quota's clock's, which
// counts them.
func (d *delivery) now() time.Time { return quotaClock(&d.opts).Now() }

func (d *delivery) stopped() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stop
}

// quotaSpent is the *QuotaError that stopped the run taking messages; nil
// if none did.
func (d *delivery) quotaSpent() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.spent
}

// dispatchDue sends the retries whose time has come.
func (d *delivery) dispatchDue() error {
	for {
		d.mu.Lock()
		if len(d.later) == 0 || d.later[0].due.After(time.Now()) {
			d.mu.Unlock()
			return nil
		}
		r := heap.Pop(&d.later).(*retry)
		d.mu.Unlock()
		if err := d.send(r.m, r.attempt); err != nil {
			return err
		}
	}
}

// finish waits for the messages in flight and the retries. Once the run is
// stopped (interrupted, or too many failures), retries are left pending in
// the journal for the next run.
func (d *delivery) finish() error {
	for {
		d.mu.Lock()
		halted := d.stop != nil || d.ctx.Err() != nil || d.spent != nil
		if halted {
			d.later = nil
		}
		if d.inflight == 0 && len(d.later) == 0 {
			d.mu.Unlock()
			return nil
		}
		var timer <-chan time.Time
		if len(d.later) > 0 {
			timer = time.After(time.Until(d.later[0].due))
		}
		var done <-chan struct{} // once halted, only the messages in flight are waited for
		if !halted {
			done = d.ctx.Done()
		}
		d.mu.Unlock()
		select {
		case <-d.wake:
		case <-timer:
		case <-done:
		}
		if !halted && d.ctx.Err() == nil {
			if err := d.dispatchDue(); err != nil && !errors.Is(err, ErrQuota) {
				return err
			}
		}
	}
}

func (d *delivery) finished() {
	d.mu.Lock()
	d.inflight--
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// record writes kind, m's outcome (err, the reason, if it failed), to the
// journal, then settles it once the journal has its word on it; without a
// journal, at once.
func (d *delivery) record(t *tracker, kind string, err error) {
	j := d.opts.Journal
	if j == nil {
		t.settle(kind, err, nil)
		return
	}
	m := t.m
	r := journal.Record{Kind: kind, To: m.To, Row: m.Seq, ID: m.ID, At: d.now().Unix()}
	if err != nil {
		r.Error = err.Error()
		var se *deliver.SendError
		if errors.As(err, &se) {
			if reply, ok := se.Reply(); ok {
				r.Code = reply.Code
			}
		}
	}
	j.AppendThen(r, func(jerr error) { t.settle(kind, err, jerr) })
}

// backoff is how long to wait before try attempt+1: retry_wait, doubling
// each time, at most 10 minutes (or retry_wait, if that is longer), give
// or take a fifth so that messages deferred together don't return together.
func (d *delivery) backoff(attempt int) time.Duration {
	wait := d.opts.RetryWait
	limit := max(10*time.Minute, wait)
	for range attempt {
		if wait *= 2; wait >= limit {
			wait = limit
			break
		}
	}
	return time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
}

// tracker follows one message for the delivery. It is where the journal's
// protocol meets the sender's (deliver.Tracker): Start lets a connection
// take the message, Begun appends the "sending" record, Ending (or Ready)
// writes the "handover" record, Ready waits until the "sending" record is
// on disk, before the final dot or BDAT LAST, and Done records the
// outcome, which settle counts once the journal holds it.
type tracker struct {
	d       *delivery
	m       *render.Message
	attempt int
	ticket  journal.Ticket // its "sending" record's; 0 for none yet
	off     bool           // Done: no lease may write its record
	handed  bool           // the "handover" record is in the journal's file (Ending, Ready)
	// quota: the message holds one of the quota's, taken and not yet
	// handed over (Begun) or given back.
	quota bool
}

// giveBack gives the quota's message back if the message holds one: it
// never reached the server.
func (t *tracker) giveBack() {
	if t.quota {
		t.quota = false
		t.d.quota.givenBack()
	}
}

// Start lets a connection take the message, unless the campaign stopped
// meanwhile (too many failures, Ctrl-C): then nothing more is sent, and
// the message stays pending.
func (t *tracker) Start() error {
	if err := t.d.stopped(); err != nil {
		return errHeldBack
	}
	if err := t.d.ctx.Err(); err != nil {
		return errHeldBack
	}
	return nil
}

// Begun writes the "sending" record once the connection's first command
// is on the wire, with those of the messages waiting behind it (a lease:
// see lease), unless a lease wrote it already. The record's write, and
// the journal's goroutine it wakes, take nothing from the connection
// between a reply and the next command. A message whose record is written
// and whose end never went is pending when batch is killed (it has no
// "handover" record), and is released when the run stops. The record goes
// to disk while the server answers MAIL FROM, RCPT TO and DATA; Ready
// waits for it before the final dot. The quota's window counts the
// message from that record's time too.
//
// A message handed back by a connection that retired before it could hand
// it over (the server turned it away) is begun again by another, as the
// same message: its record stands, and no second one is written, so that
// the quota counts it once, in later runs as in this one.
func (t *tracker) Begun() {
	at := t.d.now()
	if j := t.d.opts.Journal; j != nil {
		t.d.leaseRecords(j, t, at)
	}
	if t.quota {
		// Counted in the window from now, as later runs count it.
		t.quota = false
		t.d.quota.handedOver(at)
	}
}

// errHeldBack is the outcome of a message not sent because the campaign
// stopped before a connection could start it.
var errHeldBack = errors.New("held back: the campaign stopped")

// Ending writes the "handover" record, while the server reads the last
// command before the message's end: from then on, the recipient is
// unknown until its outcome is recorded (see Ready). It names the
// recipient and row only, as short as a record can be: one is written
// for every message. A journal that fails here has failed for good, and
// Ready says so.
func (t *tracker) Ending() {
	if j := t.d.opts.Journal; j != nil {
		_ = t.handover(j)
	}
}

// Ready waits until the journal holds the "sending" record on disk, and
// the "handover" record in its file (Ending's, or written now).
func (t *tracker) Ready() error {
	j := t.d.opts.Journal
	if j == nil {
		return nil
	}
	if err := j.Wait(t.ticket); err != nil {
		return err
	}
	return t.handover(j)
}

// handover writes the "handover" record, once.
func (t *tracker) handover(j *journal.Journal) error {
	if t.handed {
		return nil
	}
	if err := j.Handover(journal.Record{To: t.m.To, Row: t.m.Seq}); err != nil {
		return err
	}
	t.handed = true
	return nil
}

// ReadyNow reports whether the journal holds the "sending" record already.
func (t *tracker) ReadyNow() bool {
	j := t.d.opts.Journal
	return j == nil || j.Synced(t.ticket)
}

// Done decides what the outcome is, and what comes next: it is recorded,
// and settled (counted, told) once the journal has its word on it, in the
// campaign file's terms.
func (t *tracker) Done(err error) {
	d := t.d
	d.mu.Lock()
	t.off = true // from here, started and ticket are the tracker's own
	d.mu.Unlock()
	t.giveBack() // not started: it never reached the server
	err = d.c.explainConn(err)
	var se *deliver.SendError
	switch {
	case errors.Is(err, errHeldBack):
		if t.started() {
			// Handed back, then held back: it never reached the
			// server, and its "sending" record is in the journal.
			d.record(t, journal.KindReleased, err)
		} else {
			d.finished() // pending, as the journal has it
		}
		return
	case err == nil:
		d.mu.Lock()
		d.consecutive = 0
		d.mu.Unlock()
		d.record(t, journal.KindSent, nil)
		return
	case errors.As(err, &se) && se.Stage == deliver.StageReady:
		// The journal failed: nothing can be recorded, so nothing more
		// may be sent. The message stopped before its final dot.
		d.halt(fmt.Errorf("%w: %w", errStopped, se.Err))
		t.settle("", err, se.Err)
		return
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		if t.started() {
			d.record(t, journal.KindReleased, err)
		} else {
			d.finished()
		}
		return
	}
	kind := deliver.Classify(err)
	if kind == deliver.Temporary {
		switch {
		case t.attempt >= d.opts.Retries:
			err = fmt.Errorf("gave up after %d tries: %w", t.attempt+1, err)
		case d.ctx.Err() != nil || d.stopped() != nil:
			d.record(t, journal.KindReleased, err) // stopping: left for the next run
			return
		default:
			d.failure(err)
			d.record(t, journal.KindDeferred, err)
			return
		}
	}
	d.failure(err)
	if kind == deliver.Uncertain {
		d.record(t, journal.KindUnknown, err)
	} else {
		d.record(t, journal.KindFailed, err)
	}
}

// settle counts the outcome the journal holds for the message, tells it,
// and puts a deferred message back in line. kind is the record written
// for it (none: ""), err why it failed, and jerr why the journal could not
// write that record. A recipient whose record the journal lost stands as
// the journal's last word on it says, read on this boot: unknown if its
// "handover" record is in the file (the message's end may have gone), or
// its "sending" record is and the journal knows no boot; else pending, a
// message whose end never went (a lease's among them). This is the one
// place where outcomes are counted, so that the summary, the lines printed
// as the send goes, status and the exit status agree.
func (t *tracker) settle(kind string, err, jerr error) {
	d := t.d
	defer d.finished()
	st, _ := journal.KindStatus(kind) // none: pending
	if jerr != nil {
		if st = d.opts.Journal.Lost(t.ticket, t.handed); st == journal.Unknown {
			err = &unrecordedError{kind: kind, err: err, journal: jerr}
		}
	} else if kind == journal.KindDeferred {
		d.sum.deferred()
		d.mu.Lock()
		heap.Push(&d.later, &retry{m: t.m, attempt: t.attempt + 1, due: time.Now().Add(d.backoff(t.attempt))})
		d.mu.Unlock()
	} else {
		// Done for good, and the sender is done with it: its bytes are
		// the renderer's again, for a later message.
		defer t.m.Release()
	}
	if st == journal.Pending {
		return
	}
	if st == journal.Failed && d.bounces != nil {
		if reply, ok := hardBounce(err); ok {
			d.bounces.add(t.m.To, reply)
		}
	}
	d.sum.outcome(st)
	if d.opts.Outcome != nil {
		d.opts.Outcome(t.m, st, err)
	}
}

// errStopped is a campaign stopped by its journal's failure.
var errStopped = errors.New("stopped")

// unrecordedError is the outcome of a message whose record the journal
// could not write after the message was given to the server: it holds the
// "sending" record, so the recipient is unknown.
type unrecordedError struct {
	kind    string // the record that was lost; "" for none
	err     error  // the message's failure, if it failed
	journal error
}

func (e *unrecordedError) Error() string {
	switch e.kind {
	case journal.KindSent:
		return fmt.Sprintf("the server took the message, but the journal could not record it: %v", e.journal)
	case "":
		return fmt.Sprintf("stopped before the final dot, so the server doesn't have the message, but the journal could not record that: %v", e.journal)
	}
	return fmt.Sprintf("%v; the journal could not record that: %v", e.err, e.journal)
}

func (e *unrecordedError) Unwrap() []error {
	if e.err == nil {
		return []error{e.journal}
	}
	return []error{e.err, e.journal}
}

// failure counts a failure in a row and stops the campaign at max_errors.
func (d *delivery) failure(err error) {
	d.mu.Lock()
	d.consecutive++
	n := d.consecutive
	d.mu.Unlock()
	if d.opts.MaxErrors > 0 && n >= d.opts.MaxErrors {
		d.halt(fmt.Errorf("%w: %d failures in a row, the last %v: something is wrong with the server or the account; fix it, then run batch send again to resume",
			ErrTooManyFailures, n, err))
	}
}

func (d *delivery) halt(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stop == nil {
		d.stop = err
	}
}

// retry is a message waiting to be tried again.
type retry struct {
	m       *render.Message
	attempt int
	due     time.Time
}

// retries is a heap of retries, the soonest first.
type retries []*retry

func (h retries) Len() int           { return len(h) }
func (h retries) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h retries) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retries) Push(x any)        { *h = append(*h, x.(*retry)) }
func (h *retries) Pop() any {
	old := *h
	r := old[len(old)-1]
	*h = old[:len(old)-1]
	return r
}
