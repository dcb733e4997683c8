package campaign

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/suppress"
)

// The campaign's suppression list (its suppress key, package suppress):
// Check and Send skip the addresses on it (skipSuppressed), Send adds the
// hard bounces to it as they come (bouncer), and batch suppress edits it
// (AddSuppressed, RemoveSuppressed, ListSuppressed).

// SuppressReasons returns the reasons an address is suppressed, in the
// order they are told ([suppress.Reasons]): unsubscribed, bounced,
// complained, manual.
func SuppressReasons() []string {
	rs := suppress.Reasons()
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

// ErrNoSuppressionList is a suppression command on a campaign without a
// suppress key.
var ErrNoSuppressionList = errors.New("has no suppression list")

// DefaultSoftLimit is [bounces] soft_limit when it is not given: an
// address is suppressed at soft bounces of three campaigns.
const DefaultSoftLimit = 3

// suppress checks the suppress and suppress_bounces keys, and [bounces]
// soft_limit.
func (l *loader) suppress(f *file) {
	c := l.c
	c.SuppressBounces = f.SuppressBounces == nil || *f.SuppressBounces
	var limit *int
	if f.Bounces != nil {
		limit = f.Bounces.SoftLimit
	}
	if f.Suppress == "" {
		if f.SuppressBounces != nil {
			l.bad("suppress_bounces", `goes with suppress, the list the bounces are added to: add suppress = "../suppressed.csv", or remove suppress_bounces`)
		}
		if limit != nil {
			l.bad("bounces.soft_limit", `goes with suppress, the list an address that keeps bouncing softly is added to: add suppress = "../suppressed.csv", or remove soft_limit`)
		}
		return
	}
	c.SoftLimit = DefaultSoftLimit
	if limit != nil {
		if c.SoftLimit = *limit; c.SoftLimit < 0 || c.SoftLimit > 100 {
			l.bad("bounces.soft_limit", "%d: want the number of campaigns, 1 to 100, or 0 to count no soft bounce", c.SoftLimit)
		}
	}
	c.Suppress = l.rel(f.Suppress)
	if st, err := os.Stat(c.Suppress); err == nil && st.IsDir() {
		l.bad("suppress", "%s is a directory: name a CSV file, which batch creates on the first address added", c.Suppress)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.bad("suppress", "%v", err)
	} else if st, err := os.Stat(filepath.Dir(c.Suppress)); err != nil || !st.IsDir() {
		l.bad("suppress", "%s: no such directory, where the list is created: create it, or fix the path", filepath.Dir(c.Suppress))
	}
}

// suppressionList reads the campaign's suppression list; nil, and no
// error, for a campaign without one.
func (c *Campaign) suppressionList() (*suppress.List, error) {
	if c.Suppress == "" {
		return nil, nil
	}
	l, err := suppress.Open(c.Suppress)
	if err != nil {
		return nil, fmt.Errorf("%s: suppress: %w", c.loc("suppress"), err)
	}
	return l, nil
}

// mustList is suppressionList for the commands that edit it: a campaign
// without one is an error.
func (c *Campaign) mustList() (*suppress.List, error) {
	if c.Suppress == "" {
		return nil, fmt.Errorf(`%s %w: add suppress = "../suppressed.csv" (a path relative to it) to keep one`, c.Path, ErrNoSuppressionList)
	}
	return c.suppressionList()
}

// AddSuppressed adds addresses to the campaign's suppression list, for reason
// ("" for manual), with detail as the note, and returns how many were not
// there before. An address already on it is left as it is.
func (c *Campaign) AddSuppressed(reason, detail string, addresses ...string) (int, error) {
	l, err := c.mustList()
	if err != nil {
		return 0, err
	}
	r := suppress.Manual
	if reason != "" {
		r = suppress.Reason(reason)
	}
	entries := make([]suppress.Entry, 0, len(addresses))
	for _, a := range addresses {
		entries = append(entries, suppress.Entry{Email: a, Reason: r, Detail: detail})
	}
	return l.Append(entries...) // checks each first: an invalid one adds none
}

// RemoveSuppressed removes addresses from the campaign's suppression list, each
// with every line it has, and returns how many lines went. Their lines of
// the soft-bounce record beside it go too (not counted), so that an
// address given another chance starts its soft bounces again from none.
func (c *Campaign) RemoveSuppressed(addresses ...string) (int, error) {
	l, err := c.mustList()
	if err != nil {
		return 0, err
	}
	soft, err := suppress.OpenSoft(suppress.SoftPath(c.Suppress))
	if err != nil {
		return 0, err
	}
	n, err := l.Remove(addresses...) // one rewrite for them all
	if err != nil {
		return 0, err
	}
	if _, err := soft.Remove(addresses...); err != nil {
		return n, err
	}
	return n, nil
}

// ListSuppressed writes the campaign's suppression list to w as CSV for
// people (NewCSVWriter): the header, then each line as batch reads it. A
// list that doesn't exist yet is the header alone.
func (c *Campaign) ListSuppressed(w io.Writer) error {
	if _, err := c.mustList(); err != nil { // says what is wrong with it
		return err
	}
	cw := NewCSVWriter(w)
	cw.Write([]string{"email", "reason", "at", "campaign", "detail"})
	f, err := os.Open(c.Suppress)
	if errors.Is(err, fs.ErrNotExist) {
		return cw.Flush()
	}
	if err != nil {
		return err
	}
	defer f.Close()
	err = suppress.Scan(c.Suppress, f, func(e suppress.Entry) error {
		at := ""
		if !e.At.IsZero() {
			at = e.At.Format(time.RFC3339)
		}
		cw.Write([]string{e.Email, string(e.Reason), at, e.Campaign, e.Detail})
		return nil
	})
	if err != nil {
		return err
	}
	return cw.Flush()
}

// CountSuppressed counts, by reason, the recipients of the list (the
// shard's) that are pending in state and on the suppression list: those a
// send skips. It is nil for a campaign without a suppression list.
func (c *Campaign) CountSuppressed(state *State, shard Shard) (map[string]int, error) {
	l, err := c.suppressionList()
	if l == nil {
		return nil, err
	}
	n := map[string]int{}
	_, err = c.Status(state, shard, func(rec *Recipient, e Entry) {
		if e.Status != Pending {
			return
		}
		if s, ok := l.Has(rec.Email); ok {
			n[string(s.Reason)]++
		}
	})
	return n, err
}

// CountSoftBounced counts the recipients of the list (the shard's) that
// are not suppressed and have soft bounces in the soft-bounce record, by
// how many campaigns they are of (1 to SoftLimit-1, unless the record was
// edited): those soft_limit will suppress if they go on. It is nil when
// soft bounces are not counted (no suppression list, or soft_limit = 0).
func (c *Campaign) CountSoftBounced(shard Shard) (map[int]int, error) {
	l, err := c.suppressionList()
	if l == nil || c.SoftLimit == 0 {
		return nil, err
	}
	soft, err := suppress.OpenSoft(suppress.SoftPath(c.Suppress))
	if err != nil {
		return nil, err
	}
	n := map[int]int{}
	if soft.Len() == 0 {
		return n, nil
	}
	_, err = c.Status(nil, shard, func(rec *Recipient, _ Entry) {
		if _, ok := l.Has(rec.Email); ok {
			return
		}
		if k := soft.Count(rec.Email); k > 0 {
			n[k]++
		}
	})
	return n, err
}

// suppressed counts a recipient skipped for the suppression list.
func (s *Summary) suppressed(r suppress.Reason) {
	if s.SuppressedBy == nil {
		s.SuppressedBy = map[string]int{}
	}
	s.Suppressed++
	s.SuppressedBy[string(r)]++
}

// stageRcpt is deliver.SendError's Stage of a refused RCPT TO.
const stageRcpt = "RCPT TO"

// hardBounce reports whether err is a server's permanent refusal that says
// the mailbox is gone, and returns the reply: an enhanced code 5.1.1 (no
// such mailbox), 5.1.2 (no such domain), 5.1.10 (null MX) or 5.2.1
// (disabled), or a 550 at RCPT TO without one (or with 5.0.0, which says
// nothing more). Other refusals, such as 5.7.1 (policy), are this
// campaign's failures, not the address's.
func hardBounce(err error) (string, bool) {
	var se *deliver.SendError
	if !errors.As(err, &se) {
		return "", false
	}
	r, ok := se.Reply()
	if !ok || r.Code/100 != 5 {
		return "", false
	}
	switch r.EnhancedCode {
	case smtp.EnhancedCode{5, 1, 1}, smtp.EnhancedCode{5, 1, 2}, smtp.EnhancedCode{5, 1, 10}, smtp.EnhancedCode{5, 2, 1}:
	case smtp.EnhancedCode{}, smtp.NoEnhancedCode, smtp.EnhancedCode{5, 0, 0}:
		if r.Code != 550 || se.Stage != stageRcpt {
			return "", false
		}
	default:
		return "", false
	}
	return merge.OneLine(se.Error()), true
}

// bouncer adds the hard bounces of a send to the suppression list, on a
// goroutine of its own so that a send never waits for the list's lock and
// fsync: what comes while it writes is written together next.
type bouncer struct {
	list     *suppress.List
	campaign string
	warn     func(error) // told of a failed append; may be nil

	mu      sync.Mutex
	pending []suppress.Entry
	kick    chan struct{} // capacity 1
	done    chan struct{}
	added   int
}

// newBouncer starts the bouncer of c's send; nil when the send adds
// nothing (no list, suppress_bounces = false, or a test send, whose
// envelope is the tester's).
func (c *Campaign) newBouncer(opts *Options, warn func(error)) *bouncer {
	if c.Suppress == "" || !c.SuppressBounces || opts.To != "" || opts.Journal == nil {
		return nil
	}
	l, err := suppress.Open(c.Suppress)
	if err != nil { // the check read it: it changed since
		if warn != nil {
			warn(fmt.Errorf("hard bounces are not added to the suppression list: %w", err))
		}
		return nil
	}
	b := &bouncer{list: l, campaign: c.Name, warn: warn, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go b.run()
	return b
}

// add queues a hard bounce; it never waits for the file.
func (b *bouncer) add(to, reply string) {
	b.mu.Lock()
	b.pending = append(b.pending, suppress.Entry{Email: to, Reason: suppress.Bounced, Campaign: b.campaign, Detail: reply})
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

func (b *bouncer) run() {
	defer close(b.done)
	for range b.kick {
		b.flush()
	}
	b.flush()
}

// flush appends what is queued.
func (b *bouncer) flush() {
	b.mu.Lock()
	batch := b.pending
	b.pending = nil
	b.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	n, err := b.list.Append(batch...)
	b.mu.Lock()
	b.added += n
	b.mu.Unlock()
	if err != nil && b.warn != nil {
		what := fmt.Sprintf("%d hard bounces", len(batch))
		if len(batch) == 1 {
			what = "a hard bounce (" + batch[0].Email + ")"
		}
		b.warn(fmt.Errorf("%s not added to the suppression list, the journal has the recipient as failed: %w", what, err))
	}
}

// close writes what is left and returns how many addresses were added.
func (b *bouncer) close() int {
	if b == nil {
		return 0
	}
	close(b.kick)
	<-b.done
	return b.added
}
