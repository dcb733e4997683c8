// Package suppress keeps the suppression list: the addresses batch no longer
// sends to, because they unsubscribed, bounced, complained or were added by
// hand. The list is one CSV file (RFC 4180) kept in git beside the
// campaigns, which each campaign names, so that what is suppressed is
// reviewed and versioned like the campaigns themselves.
//
// Its first line is the header email,reason,at,campaign,detail; each
// further line is one address:
//
//	email,reason,at,campaign,detail
//	ada@example.org,bounced,2026-12-01T16:19:14Z,2026-12-newsletter,550 5.1.1 user unknown
//	bob@example.org,manual
//
// reason is unsubscribed, bounced, complained or manual; at is an RFC 3339
// time (batch writes it in UTC), campaign the campaign it came from and
// detail what the report said or a note; these three may be empty or left
// out. The file may be edited by hand: UTF-8 with or without a byte order
// mark, CRLF or LF line ends, blank lines, no final line end. There are no
// comments (a # is allowed in an address): a note goes in detail. A line
// batch can't read is an error that names the file and the line and says
// what to fix, and Open fails until it is fixed.
//
// Addresses are compared as the list's repeated rows are (see
// [merge.AddressKey]). An address may be in the file more than once (by
// hand); the first line counts, and [List.Remove] drops them all.
//
// A [List] holds a 64-bit hash of each address, not the address, so that a
// list of a million costs tens of megabytes; two addresses whose hashes
// collide (about one chance in 10^7 for a million lookups in a million
// addresses) are taken for one, which suppresses too much, never too little.
//
// [List.Append] adds lines to the end of the file under an exclusive lock
// (flock(2) on the file), with an fsync, and never rewrites a line it did
// not add, so several batch processes can record bounces at once and a
// person's edits are kept. [List.Remove] rewrites the file without some
// addresses' lines, atomically (a temporary file renamed over it). Cells
// batch writes go through [merge.CSVWriter], so that none runs as a formula
// when the file is opened in a spreadsheet.
//
// Beside the list, [SoftList] keeps the soft-bounce record ([SoftPath]:
// suppressed.csv's is suppressed.soft.csv), the campaigns whose message to
// an address failed for a while, each (address, campaign) once:
//
//	email,at,campaign,status,detail
//	ada@example.org,2026-12-01T16:19:14Z,2026-12-newsletter,4.2.2,452 4.2.2 mailbox full
//
// so that an address that bounces softly campaign after campaign can be
// suppressed (the caller decides after how many). It is written, read and
// edited by hand as the list is, by the same code: deleting an address's
// lines resets its count.
package suppress

import (
	"errors"
	"hash/maphash"
	"io"
	"slices"
	"time"

	"github.com/batch-mailer/batch/internal/merge"
)

// Reason says why an address is suppressed.
type Reason string

// The reasons an address is suppressed.
const (
	Unsubscribed Reason = "unsubscribed" // asked not to get mail (link or mail)
	Bounced      Reason = "bounced"      // a hard bounce: the mailbox does not exist
	Complained   Reason = "complained"   // marked a message as spam (a feedback report)
	Manual       Reason = "manual"       // added by hand
)

// reasons are the Reasons in the order of List's counts, which is the
// order they are told (Reasons).
var reasons = [...]Reason{Unsubscribed, Bounced, Complained, Manual}

// Reasons returns the reasons an address is suppressed, in the order they
// are told: unsubscribed, bounced, complained, manual.
func Reasons() []Reason { return slices.Clone(reasons[:]) }

// index returns r's place in reasons, or -1.
func (r Reason) index() int {
	for i, x := range reasons {
		if x == r {
			return i
		}
	}
	return -1
}

// ErrLocked is the error of an Append or Remove that waited too long for
// another process's lock on the file.
var ErrLocked = errors.New("the suppression list is locked")

// ErrInvalid is the error of an Append of an entry batch can't write: an
// invalid address or reason.
var ErrInvalid = errors.New("invalid entry")

// Entry is one line of the list.
type Entry struct {
	Email    string    // the address as the file gives it
	Reason   Reason    // why
	At       time.Time // when, in UTC; zero when the line gives no time
	Campaign string    // the campaign that suppressed it, or ""
	Detail   string    // what the report said, or a note, or ""
	Line     int       // the file's line; 0 for an entry not read from a file
}

// List is a suppression list read into a lookup by address. Its methods
// are not safe for concurrent use; the file is, by any number of Lists
// and processes.
type List struct {
	store[Entry]
	seed  maphash.Seed
	set   map[uint64]mark
	count [len(reasons)]int
}

// mark is what the List keeps of an address: 16 bytes.
type mark struct {
	at     int64 // Unix seconds; 0 for none
	line   int32
	reason uint8 // index in reasons
}

// lockWait is how long Append and Remove wait for another process's lock.
const lockWait = 10 * time.Second

func newList(path string) *List {
	l := &List{seed: maphash.MakeSeed(), set: make(map[uint64]mark)}
	l.store = newStore(path, listFormat, l.add, l.forget)
	return l
}

// Open reads the list at path. A file that does not exist is an empty list,
// which Append creates.
func Open(path string) (*List, error) {
	l := newList(path)
	if err := l.open("suppression list"); err != nil {
		return nil, err
	}
	return l, nil
}

// Read reads a list from r, named path in errors. Append and Remove on it
// write the file at path, and read it again first.
func Read(path string, r io.Reader) (*List, error) {
	l := newList(path)
	if _, err := l.read(r, position{}); err != nil {
		return nil, err
	}
	return l, nil
}

// Path returns the list's file, as it was named.
func (l *List) Path() string { return l.path }

// Has reports whether addr is suppressed, and why. The entry has the
// address as asked, the reason, the time and the line; its campaign and
// detail stay in the file (Scan reads them).
func (l *List) Has(addr string) (Entry, bool) {
	m, ok := l.set[l.key(addr)]
	if !ok {
		return Entry{}, false
	}
	e := Entry{Email: addr, Reason: reasons[m.reason], Line: int(m.line)}
	if m.at != 0 {
		e.At = time.Unix(m.at, 0).UTC()
	}
	return e, true
}

// Len returns how many addresses are suppressed.
func (l *List) Len() int { return len(l.set) }

// Count returns how many addresses are suppressed for reason r.
func (l *List) Count(r Reason) int {
	if i := r.index(); i >= 0 {
		return l.count[i]
	}
	return 0
}

func (l *List) key(addr string) uint64 {
	return maphash.String(l.seed, merge.AddressKey(unformula(addr)))
}

// add records e, unless its address is there: the first line counts.
func (l *List) add(e Entry) {
	k := l.key(e.Email)
	if _, dup := l.set[k]; dup {
		return
	}
	m := mark{line: int32(e.Line), reason: uint8(e.Reason.index())}
	if !e.At.IsZero() {
		m.at = e.At.Unix()
	}
	l.set[k] = m
	l.count[m.reason]++
}

// forget forgets every address, to read the file again.
func (l *List) forget() {
	clear(l.set)
	l.count = [len(reasons)]int{}
}
