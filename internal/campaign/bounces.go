package campaign

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/batch-mailer/batch/internal/bounce"
	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
	"github.com/batch-mailer/batch/internal/suppress"
)

// Bounces reads a bounce mailbox (batch bounces): each message is
// classified by package bounce, matched to the campaign's recipients by
// batch's stable Message-IDs, and its hard bounces, complaints and
// unsubscribes are added to the suppression list. Its soft bounces are
// recorded in the soft-bounce record beside the list (suppress.SoftList),
// once per address and campaign, and an address with soft bounces of
// [bounces] soft_limit campaigns is added to the list as bounced (see
// countSoft). The mailbox is only read: no file of it is moved, changed or
// added. An IMAP mailbox ([bounces], imap.go) is read with BODY.PEEK[], and
// only after the record and the list are written are the handled messages
// (all but those left alone) moved to move_to, or flagged \Seen without
// it; the others are not touched.

// BounceOptions say which mailbox Bounces reads: exactly one of Maildir,
// Mbox and IMAP.
type BounceOptions struct {
	Maildir string // a Maildir: the files of its new/ and cur/
	Mbox    string // an mbox file (mboxo or mboxrd)
	IMAP    bool   // the campaign's [bounces] imap mailbox
	DryRun  bool   // say what would be added, add nothing, change nothing on the server
	// Secrets give the IMAP password.
	Secrets Secrets
}

// ErrBounceSource is a BounceOptions with no mailbox, or with more than
// one.
var ErrBounceSource = errors.New("name one mailbox, a Maildir, an mbox or the campaign's IMAP mailbox")

// LeftAloneKind is the kind BounceReport.Counts counts the messages left
// alone by.
const LeftAloneKind = "left alone"

// BounceKinds are the kinds BounceReport.Counts counts, in the order they
// are told: hard bounce, soft bounce, complaint, unsubscribe, left alone.
func BounceKinds() []string {
	kinds := []bounce.Kind{bounce.Hard, bounce.Soft, bounce.Complaint, bounce.Unsubscribe}
	out := make([]string, 0, len(kinds)+1)
	for _, k := range kinds {
		out = append(out, k.String())
	}
	return append(out, LeftAloneKind)
}

// BounceReport is what Bounces did, or would do with DryRun.
type BounceReport struct {
	Messages int            // read in all
	Counts   map[string]int // messages by kind (BounceKinds); a message about no recipient of the campaign is left alone
	// Suppress are the addresses added to the suppression list (or that
	// would be), each once, in the order of the mailbox.
	Suppress []BounceAction
	Added    int         // of Suppress, those not on the list before
	Left     []LeftAlone // the messages left alone, in the order of the mailbox
	List     string      // the suppression list's file
	// SoftList is the soft-bounce record's file, and SoftLimit
	// [bounces] soft_limit; "" and 0 when soft bounces are not counted.
	SoftList  string
	SoftLimit int
	// Soft are the soft bounces counted toward SoftLimit (recorded, or
	// that would be), each address once, in the order of the mailbox:
	// those of addresses not suppressed already, from messages whose
	// campaign is known.
	Soft    []SoftBounce
	Counted int // of Soft, those not in the record before
	// Limited are the addresses of Soft that reached SoftLimit, which
	// Suppress has as bounced.
	Limited []string
	// Filed is, over IMAP, how many handled messages were moved to
	// [bounces] move_to, or flagged \Seen without it.
	Filed int
}

// BounceAction is an address to suppress and the message that says so.
type BounceAction struct {
	Message string // the mailbox file, and for an mbox the message's line
	Email   string // the recipient's address, as the campaign's list has it
	Reason  string // bounced, complained or unsubscribed
	Detail  string // the status and the report's diagnostic, one line
}

// SoftBounce is a soft bounce Bounces counts.
type SoftBounce struct {
	Message string // the mailbox file, and for an mbox the message's line
	Email   string // the recipient's address, as the campaign's list has it
	Status  string // the report's status (4.2.2), or ""
	Detail  string // the report's diagnostic, one line
	// New says the record didn't have the campaign's soft bounce of
	// Email before.
	New bool
	// Campaigns is how many campaigns have soft-bounced at Email, this
	// one with them.
	Campaigns int
}

// LeftAlone is a message Bounces doesn't act on, and why.
type LeftAlone struct {
	Message string
	Reason  string
}

// The largest message read; a larger one is left alone.
const maxBounceSize = bounce.DefaultMaxSize

// Bounces reads the mailbox o names and adds to the campaign's suppression
// list the recipients whose mailbox refused for good (bounced), who
// complained (complained) or who mailed the unsubscribe mailto
// (unsubscribed); soft bounces are counted (countSoft), and everything else
// is listed as left alone. With o.DryRun no file is written.
func (c *Campaign) Bounces(o BounceOptions) (*BounceReport, error) {
	if n := btoi(o.Maildir != "") + btoi(o.Mbox != "") + btoi(o.IMAP); n != 1 {
		return nil, ErrBounceSource
	}
	if o.IMAP && c.Bounce == nil {
		return nil, fmt.Errorf("%s: %w", c.Path, ErrNoBounceMailbox)
	}
	l, err := c.mustList()
	if err != nil {
		return nil, err
	}
	m, err := c.bounceMatcher()
	if err != nil {
		return nil, err
	}
	rep := &BounceReport{Counts: map[string]int{}, List: c.Suppress}
	if c.SoftLimit > 0 {
		rep.SoftList, rep.SoftLimit = suppress.SoftPath(c.Suppress), c.SoftLimit
	}
	seen, seenSoft := map[string]bool{}, map[string]bool{}
	// handle classifies a message and says whether it is handled (not
	// left alone).
	handle := func(name string, r io.Reader) (bool, error) {
		v, err := bounce.Classify(r, m.opts)
		if err != nil {
			return false, fmt.Errorf("%s: %w", name, err)
		}
		rep.Messages++
		acts, softs, reason := m.match(name, v)
		if reason != "" {
			rep.Counts[LeftAloneKind]++
			rep.Left = append(rep.Left, LeftAlone{Message: name, Reason: merge.OneLine(reason)}) // it may quote the message
			return false, nil
		}
		rep.Counts[v.Kind.String()]++
		for _, a := range acts {
			if k := strings.ToLower(a.Email); !seen[k] {
				seen[k] = true
				rep.Suppress = append(rep.Suppress, a)
			}
		}
		for _, sb := range softs {
			if k := strings.ToLower(sb.Email); !seenSoft[k] {
				seenSoft[k] = true
				rep.Soft = append(rep.Soft, sb)
			}
		}
		return true, nil
	}
	each := func(name string, r io.Reader) error {
		_, err := handle(name, r)
		return err
	}
	switch {
	case o.IMAP:
		listed, err := c.bouncesIMAP(l, rep, o, handle)
		if !listed {
			return nil, err
		}
		return rep, err
	case o.Maildir != "":
		err = readMaildir(o.Maildir, each)
	default:
		err = readMbox(o.Mbox, maxBounceSize, each)
	}
	if err != nil {
		return nil, err
	}
	return rep, c.suppressBounces(l, rep, o.DryRun)
}

// countSoft records rep.Soft in the soft-bounce record, those of addresses
// not on l nor to be added by rep.Suppress, once per address and campaign
// (a report read again, or a delay and then a failure of one message,
// counts once), and adds to rep.Suppress, as bounced, those whose soft
// bounces are now of rep.SoftLimit campaigns or more: those that reached
// it here, and those the record had at it already (a run that wrote the
// record but not the list). With dryRun the record is read, not written.
func (c *Campaign) countSoft(l *suppress.List, rep *BounceReport, dryRun bool) error {
	if rep.SoftLimit == 0 || len(rep.Soft) == 0 {
		rep.Soft = nil
		return nil
	}
	addrs := make([]string, len(rep.Soft))
	for i, sb := range rep.Soft {
		addrs[i] = sb.Email
	}
	sl, err := suppress.OpenSoft(rep.SoftList, addrs...) // read once: a limited address's lines are kept
	if err != nil {
		return err // the file and the line
	}
	suppressing := map[string]bool{}
	for _, a := range rep.Suppress {
		suppressing[strings.ToLower(a.Email)] = true
	}
	var keep []SoftBounce
	var add []suppress.SoftBounce
	for _, sb := range rep.Soft {
		if _, ok := l.Has(sb.Email); ok || suppressing[strings.ToLower(sb.Email)] {
			continue
		}
		sb.New = !sl.Has(sb.Email, c.Name)
		sb.Campaigns = sl.Count(sb.Email) + btoi(sb.New)
		if sb.New {
			add = append(add, suppress.SoftBounce{Email: sb.Email, Campaign: c.Name, Status: sb.Status, Detail: sb.Detail})
		}
		keep = append(keep, sb)
	}
	rep.Soft, rep.Counted = keep, len(add)
	if !dryRun {
		n, err := sl.Append(add...)
		if err != nil {
			return err
		}
		// The record as it is now, with what another batch added meanwhile.
		rep.Counted = n
		for i := range rep.Soft {
			rep.Soft[i].Campaigns = sl.Count(rep.Soft[i].Email)
		}
	}
	for _, sb := range rep.Soft {
		if sb.Campaigns < rep.SoftLimit {
			continue
		}
		lines := sl.Lines(sb.Email)
		if dryRun && sb.New {
			lines = append(lines, suppress.SoftBounce{Campaign: c.Name, Status: sb.Status})
		}
		rep.Limited = append(rep.Limited, sb.Email)
		rep.Suppress = append(rep.Suppress, BounceAction{Message: sb.Message, Email: sb.Email, Reason: string(suppress.Bounced), Detail: softDetail(lines)})
	}
	return nil
}

// softDetail is the suppression's detail of an address suppressed for
// its soft bounces: "3 soft bounces: campaign a 4.2.2, campaign b 4.4.1,
// campaign c 4.4.1".
func softDetail(lines []suppress.SoftBounce) string {
	parts := make([]string, len(lines))
	for i, b := range lines {
		parts[i] = strings.TrimSpace("campaign " + b.Campaign + " " + b.Status)
	}
	return fmt.Sprintf("%d soft bounces: %s", len(lines), strings.Join(parts, ", "))
}

// bouncesIMAP reads the [bounces] mailbox with handle, writes the list,
// and then, but for a dry run, files the handled messages. It says
// whether it got to the list.
func (c *Campaign) bouncesIMAP(l *suppress.List, rep *BounceReport, o BounceOptions, handle func(string, io.Reader) (bool, error)) (bool, error) {
	ctx := context.Background()
	pw, err := c.Bounce.Password(ctx, o.Secrets)
	if err != nil {
		return false, err
	}
	mb, err := openIMAP(ctx, c.Bounce, pw, o.DryRun)
	if err != nil {
		return false, err
	}
	defer mb.close()
	handled, err := mb.read(maxBounceSize, handle)
	if err != nil {
		return false, err
	}
	if err := c.suppressBounces(l, rep, o.DryRun); err != nil || o.DryRun {
		return true, err
	}
	if err := mb.finish(handled); err != nil {
		return true, err
	}
	rep.Filed = mb.handled
	return true, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// suppressBounces counts rep.Soft (countSoft) and adds rep.Suppress to l,
// or with dryRun counts those it would add.
func (c *Campaign) suppressBounces(l *suppress.List, rep *BounceReport, dryRun bool) error {
	if err := c.countSoft(l, rep, dryRun); err != nil {
		return err
	}
	entries := make([]suppress.Entry, 0, len(rep.Suppress))
	for _, a := range rep.Suppress {
		if _, ok := l.Has(a.Email); ok {
			continue
		}
		entries = append(entries, suppress.Entry{Email: a.Email, Reason: suppress.Reason(a.Reason), Campaign: c.Name, Detail: a.Detail})
	}
	if dryRun {
		rep.Added = len(entries)
		return nil
	}
	n, err := l.Append(entries...)
	rep.Added = n
	return err
}

// bounceMatcher matches verdicts to the campaign's recipients.
type bounceMatcher struct {
	campaign string
	soft     bool // soft bounces are counted: one whose campaign can't be told is left alone
	opts     bounce.Options
	emails   map[string]string // the list's addresses, by their lower case
	ids      map[string]string // the list's addresses, by their message's Message-ID
}

// bounceMatcher reads the campaign's list for its addresses and their
// Message-IDs.
func (c *Campaign) bounceMatcher() (*bounceMatcher, error) {
	m := &bounceMatcher{campaign: c.Name, soft: c.SoftLimit > 0, emails: map[string]string{}, ids: map[string]string{}}
	if c.Unsubscribe != nil {
		m.opts.Unsubscribe = c.Unsubscribe.Mailto
	}
	m.opts.MaxSize = maxBounceSize
	domain := c.messageDomain()
	_, err := c.Status(nil, Shard{}, func(rec *Recipient, _ journal.Entry) {
		m.emails[strings.ToLower(rec.Email)] = rec.Email
		m.ids[render.MessageID(c.Name, rec.Email, domain)] = rec.Email
	})
	return m, err
}

// messageDomain is the domain of the campaign's Message-IDs, its From's.
func (c *Campaign) messageDomain() string {
	a := c.From.Address
	return strings.ToLower(a[strings.LastIndexByte(a, '@')+1:])
}

// MessageID returns the Message-ID (without brackets) of the campaign's
// message to address, as render gives it.
func (c *Campaign) MessageID(address string) string {
	return render.MessageID(c.Name, address, c.messageDomain())
}

// match returns the addresses v says to suppress and its soft bounces, or
// why the message is left alone. A recipient is the campaign's when the
// report's Message-ID is that of the campaign's message to it, or, for a
// report without one and for an unsubscribe (whose From wants off the list
// whatever it replies to), when it is on the list. A report whose
// Message-ID is the campaign's message to an address it doesn't name
// (forwarded, or redacted) is about that address. A soft bounce is the
// campaign's only by its Message-ID: when m.soft, a report of soft bounces
// without one (which campaign's message failed can't be told, and counting
// it for this one would count it again for the next) is left alone.
func (m *bounceMatcher) match(name string, v bounce.Verdict) ([]BounceAction, []SoftBounce, string) {
	if v.Kind == bounce.Leave {
		return nil, nil, v.Reason
	}
	var acts []BounceAction
	var softs []SoftBounce
	about, unknown := false, false
	note := func(email string, kind bounce.Kind, status, detail string) {
		if kind == bounce.Soft {
			if v.MessageID == "" {
				unknown = true
			} else {
				softs = append(softs, SoftBounce{Message: name, Email: email, Status: status, Detail: detail})
			}
		} else if a, ok := action(name, email, kind, status, detail); ok {
			acts = append(acts, a)
		}
	}
	for _, r := range v.Recipients {
		email, ok := m.emails[strings.ToLower(r.Address)]
		if !ok || v.MessageID != "" && m.ids[v.MessageID] != email && v.Kind != bounce.Unsubscribe {
			continue
		}
		about = true
		note(email, r.Kind, r.Status, r.Detail)
	}
	if !about && v.MessageID != "" && v.Kind != bounce.Unsubscribe {
		if email, ok := m.ids[v.MessageID]; ok {
			about = true
			r := firstOf(v)
			note(email, v.Kind, r.Status, r.Detail)
		}
	}
	if !about {
		return nil, nil, fmt.Sprintf("a %s about no recipient of campaign %q (another campaign's message, or an address not in its list): run batch bounces with that campaign, or read it yourself", v.Kind, m.campaign)
	}
	if m.soft && unknown && len(acts) == 0 && len(softs) == 0 {
		return nil, nil, "a soft bounce without the Message-ID of the message that failed: which campaign's it was can't be told, so it isn't counted toward [bounces] soft_limit: read it yourself"
	}
	return acts, softs, ""
}

// firstOf returns the first recipient of v of its kind, for its status and
// detail; a zero Recipient when it names none.
func firstOf(v bounce.Verdict) bounce.Recipient {
	i := slices.IndexFunc(v.Recipients, func(r bounce.Recipient) bool { return r.Kind == v.Kind })
	if i < 0 {
		return bounce.Recipient{}
	}
	return v.Recipients[i]
}

// action is the suppression of email for a recipient of kind; none for a
// soft bounce, which is counted instead.
func action(name, email string, kind bounce.Kind, status, detail string) (BounceAction, bool) {
	var reason suppress.Reason
	switch kind {
	case bounce.Hard:
		reason = suppress.Bounced
	case bounce.Complaint:
		reason = suppress.Complained
	case bounce.Unsubscribe:
		reason = suppress.Unsubscribed
	default:
		return BounceAction{}, false
	}
	return BounceAction{Message: name, Email: email, Reason: string(reason), Detail: strings.TrimSpace(status + " " + detail)}, true
}

// readMaildir calls each with every message of the Maildir dir: the
// regular files of new/ and cur/, by name, but for those whose name starts
// with a dot. tmp/ is not read: its files are still being delivered.
func readMaildir(dir string, each func(name string, r io.Reader) error) error {
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return fmt.Errorf("%s: not a Maildir (it needs new/ and cur/): %w", dir, err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
				continue
			}
			if err := readFile(filepath.Join(dir, sub, e.Name()), each); err != nil {
				return err
			}
		}
	}
	return nil
}

// readFile calls each with the file at path, opened to be read only.
func readFile(path string, each func(name string, r io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return each(path, f)
}

// readMbox calls each with every message of the mbox at path, streaming:
// a message starts at a line that starts "From " (the first line of the
// file, or any line after it: mboxo and mboxrd quote such lines of a body
// as ">From "), and mboxrd's quoting is undone by one ">". A message
// larger than max is passed on cut at max+1 bytes, which Classify leaves
// alone as too large; the rest of it is skipped, not held.
func readMbox(path string, max int64, each func(name string, r io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var msg bytes.Buffer
	line, start := 0, 0 // the line read, and that of the message's From line
	atStart := true     // at the start of a line
	flush := func() error {
		if start == 0 {
			return nil
		}
		return each(fmt.Sprintf("%s:%d", path, start), bytes.NewReader(msg.Bytes()))
	}
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			first := atStart
			if first {
				line++
			}
			atStart = chunk[len(chunk)-1] == '\n'
			switch {
			case first && bytes.HasPrefix(chunk, []byte("From ")):
				if err := flush(); err != nil {
					return err
				}
				msg.Reset()
				start = line
				continue
			case start == 0:
				return fmt.Errorf("%s:%d: not an mbox: it starts with no \"From \" line", path, line)
			case first && isQuotedFrom(chunk):
				chunk = chunk[1:]
			}
			if room := max + 1 - int64(msg.Len()); room > 0 {
				msg.Write(chunk[:min(int64(len(chunk)), room)])
			}
		}
		switch {
		case err == io.EOF:
			return flush()
		case errors.Is(err, bufio.ErrBufferFull):
		case err != nil:
			return fmt.Errorf("%s: %w", path, err)
		}
	}
}

// isQuotedFrom reports whether line is an mboxrd-quoted From line: one or
// more ">" then "From ".
func isQuotedFrom(line []byte) bool {
	rest := bytes.TrimLeft(line, ">")
	return len(rest) < len(line) && bytes.HasPrefix(rest, []byte("From "))
}
