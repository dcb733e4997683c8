package campaign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/journal"
)

// Quota is [smtp] quota: at most N messages handed over in any Window (a
// rolling hour or day), counted from the "sending" records of the
// campaign's journals on this machine, every shard's, so that it holds
// across runs (less those a stopped run released before their end
// went: journal.Window).
// It is independent of the rate.
type Quota struct {
	N      int
	Window time.Duration
	Text   string // as written
}

// ParseQuota parses "N/day", "N/d", "N/h" or "N/hour".
func ParseQuota(s string) (Quota, error) {
	n, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	v, err := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err != nil || v < 1 || v > 1e7 {
		return Quota{}, fmt.Errorf("quota %q: want N/day or N/h with N a whole number of messages from 1 to 10000000, e.g. \"2000/day\"", s)
	}
	per := map[string]time.Duration{"h": time.Hour, "hour": time.Hour, "d": 24 * time.Hour, "day": 24 * time.Hour}
	w, ok := per[strings.TrimSpace(unit)]
	if !ok {
		return Quota{}, fmt.Errorf("quota %q: unknown unit %q: use h or day", s, unit)
	}
	return Quota{N: v, Window: w, Text: s}, nil
}

// ErrQuota is a send stopped by its quota: nothing failed, and the rest
// is pending until the window reopens.
var ErrQuota = errors.New("quota reached")

// QuotaError is a send stopped by its quota, with when the window reopens.
type QuotaError struct {
	Quota   Quota
	Reopens time.Time
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("quota of %s reached: %d messages handed over in the last %s; the window reopens at %s (%s UTC)",
		e.Quota.Text, e.Quota.N, windowName(e.Quota.Window),
		e.Reopens.Local().Format("2006-01-02 15:04:05 MST"), e.Reopens.UTC().Format("2006-01-02 15:04:05"))
}

func (e *QuotaError) Unwrap() error { return ErrQuota }

func windowName(w time.Duration) string {
	if w == time.Hour {
		return "hour"
	}
	return "24 hours"
}

// quotaWindow counts the messages handed over in a quota's window: those
// of the journals at the start, then this run's as they go. A message is
// taken before the sender has it, but handed over only when a connection
// starts it (its "sending" record, which later runs count), which may be
// well after: it waits for a free connection and for the rate. So a message
// taken counts as in the window from then on, and leaves it a window after
// it was handed over, never after it was taken: a message still queued when
// the window is full would otherwise be handed over with the next window's.
// It holds at most N times.
type quotaWindow struct {
	q     Quota
	clock deliver.Clock
	wait  func(until time.Time) // nil: stop when spent, else told before each wait

	mu      sync.Mutex
	times   []time.Time   // handed over, oldest first
	taken   int           // taken and not handed over yet, nor given back
	changed chan struct{} // closed, and replaced, when one of those is handed over or given back
}

// take takes one message of the quota, waiting for the window to reopen
// if w.wait is set; a *QuotaError if spent and not waiting. The message
// is then handedOver, or givenBack if it never reaches the server.
func (w *quotaWindow) take(ctx context.Context) error {
	for {
		w.mu.Lock()
		now := w.clock.Now()
		w.expire(now)
		if len(w.times)+w.taken < w.q.N {
			w.taken++
			w.mu.Unlock()
			return nil
		}
		reopens := now.Add(w.q.Window) // at the soonest, when all are yet to go
		if len(w.times) > 0 {
			reopens = w.times[0].Add(w.q.Window)
		}
		taken, changed := w.taken, w.changed
		w.mu.Unlock()
		switch {
		case w.wait == nil:
			return &QuotaError{Quota: w.q, Reopens: reopens}
		case taken > 0:
			// When those go decides when the window reopens, if they
			// are the oldest, and how full it is then: wait for them
			// first (a connection is starting them, or will).
			select {
			case <-changed:
			case <-ctx.Done():
				return ctx.Err()
			}
		default:
			w.wait(reopens)
			if err := w.clock.Sleep(ctx, reopens.Sub(now)); err != nil {
				return err
			}
		}
	}
}

// handedOver counts a message taken as handed over at at, the time of its
// "sending" record.
func (w *quotaWindow) handedOver(at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.taken--
	i, _ := slices.BinarySearchFunc(w.times, at, func(a, b time.Time) int { return a.Compare(b) })
	w.times = slices.Insert(w.times, i, at)
	w.tell()
}

// givenBack counts a message taken that never reached the server out of
// the window.
func (w *quotaWindow) givenBack() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.taken--
	w.tell()
}

// tell wakes a take waiting for the messages taken; w.mu is held.
func (w *quotaWindow) tell() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// spentAtStart is the *QuotaError of a send that can hand nothing over:
// the quota is spent, there is something to send, and the send doesn't
// wait. nil otherwise, and for no quota.
func (w *quotaWindow) spentAtStart(planned *Summary) error {
	if w == nil || w.wait != nil || planned.Messages == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expire(w.clock.Now())
	if len(w.times) < w.q.N {
		return nil
	}
	return &QuotaError{Quota: w.q, Reopens: w.times[0].Add(w.q.Window)}
}

// expire forgets the times out of the window at now; w.mu is held.
func (w *quotaWindow) expire(now time.Time) {
	i := 0
	for i < len(w.times) && !w.times[i].Add(w.q.Window).After(now) {
		i++
	}
	w.times = w.times[i:]
}

// QuotaUse is how much of the quota the journals say is used at a time.
type QuotaUse struct {
	Used  int
	Frees time.Time // when the oldest message counted leaves the window; zero if none
}

// QuotaUsed reads every journal of the campaign (every shard's) and says
// how much of its quota is used at now. state, if not nil, is the
// shard's journal as ReadState read it: its Window is taken for that
// journal when it covers the quota's at now, instead of a second read.
func (c *Campaign) QuotaUsed(q Quota, now time.Time, shard Shard, state *State) (QuotaUse, error) {
	times, err := c.quotaTimes(q, now, shard, state)
	if err != nil {
		return QuotaUse{}, err
	}
	u := QuotaUse{Used: len(times)}
	if len(times) > 0 {
		u.Frees = times[0].Add(q.Window)
	}
	return u, nil
}

// shardJournal finds the shard in a journal's file name.
var shardJournal = regexp.MustCompile(`\.shard-([0-9]+)-of-([0-9]+)`)

// quotaSince is the first second of q's window at now.
func quotaSince(q Quota, now time.Time) int64 { return now.Add(-q.Window).Unix() + 1 }

// keepWindow asks the reading of a journal to keep q's window at now, or
// one that covers it (at an earlier now), for quotaTimes; nothing
// without a quota.
func keepWindow(q *Quota, now time.Time) []journal.ReadOption {
	if q == nil {
		return nil
	}
	return []journal.ReadOption{journal.KeepWindow(quotaSince(*q, now), q.N)}
}

// quotaTimes returns the times of the latest q.N "sending" records in the
// window at now of every journal of the campaign, oldest first. The
// shard's journal is taken from state's Window, if it has one that covers
// the window at now (the journal read for its State at that time or
// before, and not appended to since), instead of being read again.
func (c *Campaign) quotaTimes(q Quota, now time.Time, shard Shard, state *State) ([]time.Time, error) {
	since := quotaSince(q, now)
	var all []int64
	own := state.Window()
	if own != nil && (own.Since > since || own.Keep < q.N) {
		own = nil // kept for another window
	}
	if own != nil {
		i, _ := slices.BinarySearch(own.At, since)
		all = append(all, own.At[i:]...)
	}
	dir := filepath.Dir(c.JournalPath(Shard{}))
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if !c.isJournal(path) || own != nil && path == c.JournalPath(shard) {
			continue
		}
		at, err := readSendings(path, since, q.N)
		if err != nil {
			return nil, err
		}
		all = append(all, at...)
	}
	slices.Sort(all)
	if len(all) > q.N {
		all = all[len(all)-q.N:]
	}
	times := make([]time.Time, len(all))
	for i, at := range all {
		times[i] = time.Unix(at, 0)
	}
	return times, nil
}

// isJournal reports whether path is the journal of the campaign or one of
// its shards.
func (c *Campaign) isJournal(path string) bool {
	if path == c.JournalPath(Shard{}) {
		return true
	}
	m := shardJournal.FindStringSubmatch(filepath.Base(path))
	if m == nil {
		return false
	}
	k, err1 := strconv.Atoi(m[1])
	n, err2 := strconv.Atoi(m[2])
	return err1 == nil && err2 == nil && n > 1 && k >= 1 && k <= n && path == c.JournalPath(Shard{K: k, N: n})
}

func readSendings(path string, since int64, keep int) ([]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return journal.Sendings(path, f, since, keep)
}

// quotaClock is the quota's clock of a run.
func quotaClock(opts *Options) deliver.Clock {
	if opts.Clock == nil {
		return deliver.RealClock{}
	}
	return opts.Clock
}

// openJournal opens the journal of the run's shard for opts.Journal and
// opts.State; with a quota, the State keeps the journal's part of the
// quota's window, which newQuotaWindow takes instead of reading the
// journal again.
func (c *Campaign) openJournal(opts *Options) error {
	j, state, err := journal.Open(c.JournalPath(opts.Shard), c.Name, keepWindow(opts.Quota, quotaClock(opts).Now())...)
	if err != nil {
		return err
	}
	opts.Journal, opts.State = j, state
	return nil
}

// newQuotaWindow is the run's quota window, from the journals (the
// shard's from opts.State's Window, if openJournal kept it); nil without a
// quota or a journal (a dry run, a test send).
func (c *Campaign) newQuotaWindow(opts *Options) (*quotaWindow, error) {
	if opts.Quota == nil || opts.Journal == nil {
		return nil, nil
	}
	clock := quotaClock(opts)
	times, err := c.quotaTimes(*opts.Quota, clock.Now(), opts.Shard, opts.State)
	if err != nil {
		return nil, fmt.Errorf("reading the quota's window: %w", err)
	}
	w := &quotaWindow{q: *opts.Quota, clock: clock, times: times, changed: make(chan struct{})}
	if opts.QuotaWait {
		w.wait = func(until time.Time) {
			if opts.Waiting != nil {
				opts.Waiting(until)
			}
		}
	}
	return w, nil
}
