package campaign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/render"
	"github.com/batch-mailer/batch/internal/smtptest"
)

// fakeClock is a quota's clock that sleeps by moving on.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	slept  []time.Duration
	cancel context.CancelFunc // if set, a sleep cancels instead
	// sleeping, if set, hears of each sleep as it starts (a send that
	// never blocks, so give it a buffer).
	sleeping chan<- time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.slept = append(c.slept, d)
	cancel := c.cancel
	if cancel == nil {
		c.t = c.t.Add(d)
	}
	c.mu.Unlock()
	if c.sleeping != nil {
		select {
		case c.sleeping <- d:
		default:
		}
	}
	if cancel != nil {
		cancel()
	}
	return ctx.Err()
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func quotaList(n int) []string {
	var list []string
	for i := range n {
		list = append(list, fmt.Sprintf("r%02d@example.org", i))
	}
	return list
}

func wantNoFailure(t *testing.T, c *Campaign) {
	t.Helper()
	for _, r := range journalRecords(t, c) {
		if r.Kind == journal.KindFailed || r.Kind == journal.KindUnknown {
			t.Errorf("the journal has %+v", r)
		}
	}
}

func countStatus(t *testing.T, c *Campaign, list []string, want Status) int {
	t.Helper()
	st := readState(t, c)
	n := 0
	for _, a := range list {
		if st.Get(a).Status == want {
			n++
		}
	}
	return n
}

func TestQuotaAcrossRuns(t *testing.T) {
	list := quotaList(12)
	c := faultCampaign(t, list)
	srv := smtptest.Start(t)
	q, err := ParseQuota("5/day")
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	opts := faultOptions()
	opts.Quota, opts.Clock = &q, clock

	r := sendVia(t, c, srv, quick, opts)
	var qe *QuotaError
	if !errors.As(r.err, &qe) || !errors.Is(r.err, ErrQuota) {
		t.Fatalf("first run: %v, want a *QuotaError", r.err)
	}
	wantOutcomes(t, r.sum, Outcomes{Sent: 5})
	if want := clock.Now().Add(24 * time.Hour); !qe.Reopens.Equal(want) {
		t.Errorf("reopens at %v, want %v", qe.Reopens, want)
	}

	clock.add(3 * time.Hour) // the same day
	r = sendVia(t, c, srv, quick, opts)
	if !errors.As(r.err, &qe) {
		t.Fatalf("second run: %v, want a *QuotaError", r.err)
	}
	wantOutcomes(t, r.sum, Outcomes{})
	if r.planned != nil {
		t.Error("the quota spent, the sender was opened all the same")
	}
	if r.sum.AlreadySent != 5 || r.sum.Messages != 0 {
		t.Errorf("the summary counts %d sent before and %d messages, want 5 and 0", r.sum.AlreadySent, r.sum.Messages)
	}
	if want := clock.Now().Add(21 * time.Hour); !qe.Reopens.Equal(want) {
		t.Errorf("reopens at %v, want %v", qe.Reopens, want)
	}
	if got := qe.Error(); !containsAll(got, "5/day", "2026-12-02 09:00:00 UTC") {
		t.Errorf("the error says %q", got)
	}
	if n := len(srv.Delivered()); n != 5 {
		t.Errorf("the server has %d messages after two runs, want 5", n)
	}

	clock.add(21 * time.Hour) // a day after the first run
	r = sendVia(t, c, srv, quick, opts)
	if !errors.As(r.err, &qe) {
		t.Fatalf("third run: %v, want a *QuotaError", r.err)
	}
	wantOutcomes(t, r.sum, Outcomes{Sent: 5})
	if got := countStatus(t, c, list, Sent); got != 10 {
		t.Errorf("%d sent, want 10", got)
	}
	if got := countStatus(t, c, list, Pending); got != 2 {
		t.Errorf("%d pending, want 2", got)
	}
	wantNoFailure(t, c)

	use, err := c.QuotaUsed(q, clock.Now(), Shard{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if use.Used != 5 || !use.Frees.Equal(clock.Now().Add(24*time.Hour)) {
		t.Errorf("QuotaUsed = %+v, want 5 used, freeing at %v", use, clock.Now().Add(24*time.Hour))
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestQuotaWait(t *testing.T) {
	list := quotaList(12)
	c := faultCampaign(t, list)
	srv := smtptest.Start(t)
	q, _ := ParseQuota("5/day")
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: start}
	opts, waits := waitingOptions(&q, clock)
	r := sendVia(t, c, srv, quick, opts)
	if r.err != nil {
		t.Fatal(r.err)
	}
	wantOutcomes(t, r.sum, Outcomes{Sent: 12})
	want := []time.Time{start.Add(24 * time.Hour), start.Add(48 * time.Hour)}
	if !slices.Equal(*waits, want) {
		t.Errorf("waited until %v, want %v", *waits, want)
	}
	if !slices.Equal(clock.slept, []time.Duration{24 * time.Hour, 24 * time.Hour}) {
		t.Errorf("slept %v", clock.slept)
	}
	wantNoFailure(t, c)
	wantWithinQuota(t, c, q)
}

// waitingOptions are faultOptions for a send that waits for q's window
// to reopen, on clock; waits collects the times Waiting is told.
func waitingOptions(q *Quota, clock *fakeClock) (opts Options, waits *[]time.Time) {
	opts = faultOptions()
	opts.Quota, opts.Clock, opts.QuotaWait = q, clock, true
	waits = new([]time.Time)
	opts.Waiting = func(until time.Time) { *waits = append(*waits, until) }
	return opts, waits
}

// wantWithinQuota checks that the journal's "sending" times, when the
// messages were handed over, never put more than q.N in q's window.
func wantWithinQuota(t *testing.T, c *Campaign, q Quota) {
	t.Helper()
	var at []int64
	for _, rec := range journalRecords(t, c) {
		if rec.Kind == journal.KindSending {
			at = append(at, rec.At)
		}
	}
	slices.Sort(at) // in the order they went out, which the journal's may not be
	w := int64(q.Window / time.Second)
	for i := q.N; i < len(at); i++ {
		if at[i]-at[i-q.N] < w {
			t.Errorf("messages %d and %d went out %d s apart: %d in %s", i-q.N, i, at[i]-at[i-q.N], q.N+1, windowName(q.Window))
		}
	}
}

// TestQuotaWaitQueued: a message the quota let through but still queued
// for a connection when the window filled is handed over, and its
// "sending" record written, only after the wait, when the clock has moved
// on. The quota must count it from then, not from when it let it through,
// or the server sees 6 in a day: the 5th message at 24 h, and the 5 of the
// next window with it. The server holds the 4th message while the 5th
// waits in the connection's queue, until the quota sleeps (or, if it waits
// for the 5th to go first, as it should, a moment).
func TestQuotaWaitQueued(t *testing.T) {
	list := quotaList(10)
	c := faultCampaign(t, list)
	gate := make(chan struct{})
	srv := smtptest.Start(t, smtptest.Fault{Rcpt: list[3], Stage: smtptest.AtData, Hold: gate})
	q, _ := ParseQuota("5/day")
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	sleeping := make(chan time.Duration, 10)
	clock := &fakeClock{t: start, sleeping: sleeping}
	go func() {
		select {
		case <-sleeping:
		case <-time.After(200 * time.Millisecond):
		}
		close(gate)
	}()
	opts, waits := waitingOptions(&q, clock)
	r := sendVia(t, c, srv, quick, opts)
	if r.err != nil {
		t.Fatal(r.err)
	}
	wantOutcomes(t, r.sum, Outcomes{Sent: 10})
	wantNoFailure(t, c)
	wantWithinQuota(t, c, q)
	if want := []time.Time{start.Add(24 * time.Hour)}; !slices.Equal(*waits, want) {
		t.Errorf("waited until %v, want %v", *waits, want)
	}
}

func TestQuotaWaitInterrupted(t *testing.T) {
	list := quotaList(8)
	c := faultCampaign(t, list)
	srv := smtptest.Start(t)
	q, _ := ParseQuota("5/h")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	clock := &fakeClock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC), cancel: cancel}
	opts, _ := waitingOptions(&q, clock)
	r := sendViaContext(t, ctx, c, srv, quick, opts)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("%v, want context.Canceled", r.err)
	}
	// Ctrl-C during the wait: the messages in flight finish or are
	// released, none fails, the rest is pending.
	o := r.sum.Outcomes()
	if o.Sent > 5 || o.Failed+o.Unknown > 0 {
		t.Errorf("Outcomes = %+v, want at most 5 sent and nothing else", o)
	}
	if got := countStatus(t, c, list, Pending); got != 8-o.Sent {
		t.Errorf("%d pending, want %d", got, 8-o.Sent)
	}
	if len(clock.slept) != 1 {
		t.Errorf("slept %v, want one wait", clock.slept)
	}
	wantNoFailure(t, c)
}

func TestParseQuota(t *testing.T) {
	for s, want := range map[string]Quota{
		"2000/day": {N: 2000, Window: 24 * time.Hour, Text: "2000/day"},
		"100/h":    {N: 100, Window: time.Hour, Text: "100/h"},
		"100/hour": {N: 100, Window: time.Hour, Text: "100/hour"},
		" 7 / d ":  {N: 7, Window: 24 * time.Hour, Text: " 7 / d "},
	} {
		if got, err := ParseQuota(s); err != nil || got != want {
			t.Errorf("ParseQuota(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "2000", "0/day", "-1/day", "1.5/day", "10/min", "10/week", "x/day"} {
		if _, err := ParseQuota(s); err == nil {
			t.Errorf("ParseQuota(%q) took it", s)
		}
	}
}

// TestQuotaOneRead: the quota's window of the run's journal comes from
// the reading that gave its State, not from a second read of the journal;
// the other shards' journals are read. A State kept for another window
// (an earlier one, or a smaller quota) is not taken: the journal is read.
func TestQuotaOneRead(t *testing.T) {
	list := quotaList(4)
	c := faultCampaign(t, list)
	srv := smtptest.Start(t)
	q, _ := ParseQuota("10/day")
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: start}
	opts := faultOptions()
	opts.Quota, opts.Clock = &q, clock
	if r := sendVia(t, c, srv, quick, opts); r.err != nil {
		t.Fatal(r.err)
	}
	other, _, err := journal.Open(c.JournalPath(Shard{K: 2, N: 3}), c.Name)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		other.Append(journal.Record{Kind: journal.KindSending, To: fmt.Sprintf("s%d@example.org", i), At: start.Add(time.Hour).Unix()})
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}

	clock.add(2 * time.Hour)
	run := opts
	if err := c.openJournal(&run); err != nil {
		t.Fatal(err)
	}
	if err := run.Journal.Close(); err != nil {
		t.Fatal(err)
	}
	if w := run.State.Window(); w == nil || len(w.At) != 4 {
		t.Fatalf("the State keeps the window %+v, want 4 messages", w)
	}
	used := func(now time.Time, st *State) int {
		t.Helper()
		use, err := c.QuotaUsed(q, now, Shard{}, st)
		if err != nil {
			t.Fatal(err)
		}
		return use.Used
	}
	if n := used(clock.Now(), run.State); n != 6 {
		t.Errorf("QuotaUsed with the State: %d, want 6: 4 of the campaign's journal, 2 of a shard's", n)
	}
	// Gone from the disk, the journal's messages are still the State's.
	if err := os.Remove(c.JournalPath(Shard{})); err != nil {
		t.Fatal(err)
	}
	if n := used(clock.Now(), run.State); n != 6 {
		t.Errorf("QuotaUsed with the State, the journal gone: %d, want 6: the journal was read again", n)
	}
	w, err := c.newQuotaWindow(&run)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.times) != 6 {
		t.Errorf("the run's window holds %d messages, want 6", len(w.times))
	}
	if n := used(clock.Now(), nil); n != 2 {
		t.Errorf("QuotaUsed without the State, the journal gone: %d, want the shard's 2", n)
	}
	if n := used(clock.Now().Add(-3*time.Hour), run.State); n != 2 {
		t.Errorf("QuotaUsed before the State's window: %d, want the shard's 2: the journal read (and gone)", n)
	}
	if n := used(start.Add(24*time.Hour+30*time.Minute), run.State); n != 2 {
		t.Errorf("QuotaUsed once the run's messages left the window: %d, want the shard's 2", n)
	}
	big := Quota{N: 20, Window: q.Window, Text: "20/day"}
	if use, err := c.QuotaUsed(big, clock.Now(), Shard{}, run.State); err != nil || use.Used != 2 {
		t.Errorf("QuotaUsed of a bigger quota: %+v, %v; want the shard's 2: the journal read (and gone)", use, err)
	}
}

// TestQuotaHandedBack: a message whose connection the server turned away,
// handed back to another connection, is one message: one "sending"
// record, so one of the quota's for later runs, as for this one.
func TestQuotaHandedBack(t *testing.T) {
	list := quotaList(3)
	refused := make(chan string, 4)
	gate := make(chan struct{})
	go func() {
		// The first connection's message waits until the second
		// connection is turned away: that one had a message to hand back.
		select {
		case <-refused:
		case <-t.Context().Done():
		}
		close(gate)
	}()
	srv := smtptest.Start(t,
		// The second connection is turned away as it opens, before any
		// message, and again when it is tried with one.
		smtptest.Fault{Stage: smtptest.AtHello, Code: 421, Enhanced: [3]int{4, 7, 0}, WhenOpen: 1, Times: 1},
		smtptest.Fault{Stage: smtptest.AtHello, Code: 421, Enhanced: [3]int{4, 7, 0}, WhenOpen: 1, Notify: refused},
		smtptest.Fault{Stage: smtptest.AtData, Hold: gate, Times: 1})
	smtp := fmt.Sprintf("\n[smtp]\nhost = %q\nport = %d\nsecurity = \"none\"\nconnections = 2\nretries = 0\nquota = \"10/day\"\n", srv.Host(), srv.Port())
	c := newCampaign(t, listOf(list), "# Hello {{.name}}!\n\nThe news.\n", smtp, nil)
	rep, err := c.Deliver(t.Context(), SendRequest{Options: Options{Now: now}})
	if err != nil {
		t.Fatal(err)
	}
	wantOutcomes(t, rep.Summary, Outcomes{Sent: 3})
	if seen := srv.Conns(); len(seen) != 3 || len(seen[1].Hellos) != 0 || len(seen[2].Hellos) != 0 {
		t.Fatalf("the server saw %d connections, want 3, the second and third turned away", len(seen))
	}
	recs := journalRecords(t, c)
	delivered := srv.Delivered()
	for _, a := range list {
		if delivered[a] != 1 || tries(recs, a) != 1 {
			t.Errorf("%s: delivered %d times, %d sending records; want once, one", a, delivered[a], tries(recs, a))
		}
	}
	use, err := c.QuotaUsed(*c.SMTP.Quota, time.Now(), Shard{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if use.Used != 3 {
		t.Errorf("the quota counts %d messages used, want 3", use.Used)
	}
}

// TestHandedBackHeldBack: a message handed back, then held back because
// the campaign stopped before another connection could start it, never
// reached the server: the journal says so ("released": pending), instead
// of leaving its recipient at the "sending" record, unknown.
func TestHandedBackHeldBack(t *testing.T) {
	c := faultCampaign(t, quotaList(1))
	opts := faultOptions()
	if err := c.openJournal(&opts); err != nil {
		t.Fatal(err)
	}
	d := c.newDelivery(t.Context(), nil, opts, &Summary{})
	m := &render.Message{To: "r00@example.org", Seq: 1, ID: "1@example.org"}
	tr := &tracker{d: d, m: m}
	d.inflight++
	if err := tr.Start(); err != nil { // the connection that retires
		t.Fatal(err)
	}
	tr.Begun() // its MAIL FROM went; then it lost the server
	d.halt(errors.New("stopped"))
	err := tr.Start() // the one that takes it
	if !errors.Is(err, errHeldBack) {
		t.Fatalf("Start once stopped: %v, want errHeldBack", err)
	}
	tr.Done(err)
	if err := opts.Journal.Close(); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range journalRecords(t, c) {
		kinds = append(kinds, r.Kind)
	}
	if want := []string{journal.KindSending, journal.KindReleased}; !slices.Equal(kinds, want) {
		t.Errorf("the journal has %v, want %v", kinds, want)
	}
	if st := readState(t, c).Get(m.To).Status; st != Pending {
		t.Errorf("%s is %v, want pending", m.To, st)
	}
	if d.inflight != 0 || d.sum.Outcomes() != (Outcomes{}) {
		t.Errorf("%d in flight, outcomes %+v; want none, none", d.inflight, d.sum.Outcomes())
	}
}
