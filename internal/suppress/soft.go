package suppress

import (
	"fmt"
	"hash/maphash"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/batch-mailer/batch/internal/merge"
)

// SoftPath returns the soft-bounce record kept beside the suppression list
// at list: its name with .soft before the extension (suppressed.csv,
// suppressed.soft.csv), or .soft.csv added to a name without one.
func SoftPath(list string) string {
	ext := filepath.Ext(list)
	if ext == "" || strings.ContainsAny(ext, `/\`) {
		return list + ".soft.csv"
	}
	return strings.TrimSuffix(list, ext) + ".soft" + ext
}

// softHeader is the soft-bounce record's first line.
var softHeader = []string{"email", "at", "campaign", "status", "detail"}

// softFormat is the soft-bounce record's.
var softFormat = &format[SoftBounce]{header: softHeader, parse: parseSoft}

// SoftBounce is one line of the soft-bounce record: a campaign's message
// to an address failed for a while (a 4.x.x status, or delayed).
type SoftBounce struct {
	Email    string    // the address as the file gives it
	At       time.Time // when it was recorded, in UTC; zero when the line gives no time
	Campaign string    // the campaign whose message it was
	Status   string    // the report's status (4.2.2), or ""
	Detail   string    // what the report said, or ""
	Line     int       // the file's line; 0 for one not read from a file
}

// SoftList is the soft-bounce record: the campaigns whose message to each
// address soft-bounced, each (address, campaign) once, so that an address
// that keeps bouncing softly is suppressed after so many campaigns. Like
// the suppression list it is one CSV file (email,at,campaign,status,detail)
// kept in git, appended to under the same lock and fsync, and edited by
// hand: deleting an address's lines resets its count. It holds 64-bit
// hashes, not the addresses, as a List does, and the lines of only the
// addresses it was opened to keep ([SoftList.Lines]). Its methods are not
// safe for concurrent use; the file is.
type SoftList struct {
	store[SoftBounce]
	seed   maphash.Seed
	pairs  map[uint64]struct{}     // (address, campaign)
	counts map[uint64]int          // campaigns by address
	lines  map[uint64][]SoftBounce // the kept addresses' lines, in file order
}

// OpenSoft reads the soft-bounce record at path, and keeps the lines of
// the addresses keep names, as it reads them and as Append adds them. A
// file that does not exist is an empty record, which Append creates.
func OpenSoft(path string, keep ...string) (*SoftList, error) {
	l := &SoftList{seed: maphash.MakeSeed(), pairs: map[uint64]struct{}{}, counts: map[uint64]int{}, lines: map[uint64][]SoftBounce{}}
	for _, a := range keep {
		l.lines[l.addrKey(a)] = nil
	}
	l.store = newStore(path, softFormat, l.add, l.forget)
	if err := l.open("soft-bounce record"); err != nil {
		return nil, err
	}
	return l, nil
}

// Path returns the record's file, as it was named.
func (l *SoftList) Path() string { return l.path }

func (l *SoftList) addrKey(addr string) uint64 {
	k, _ := l.keys(addr, "")
	return k
}

func (l *SoftList) pairKey(addr, campaign string) uint64 {
	_, k := l.keys(addr, campaign)
	return k
}

// keys returns the hashes of addr, and of addr with campaign.
func (l *SoftList) keys(addr, campaign string) (uint64, uint64) {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(merge.AddressKey(unformula(addr)))
	a := h.Sum64()
	h.WriteByte(0)
	h.WriteString(campaign)
	return a, h.Sum64()
}

func (l *SoftList) add(b SoftBounce) {
	a, k := l.keys(b.Email, b.Campaign)
	if _, dup := l.pairs[k]; dup {
		return
	}
	l.pairs[k] = struct{}{}
	l.counts[a]++
	if lines, ok := l.lines[a]; ok {
		l.lines[a] = append(lines, b)
	}
}

func (l *SoftList) forget() {
	clear(l.pairs)
	clear(l.counts)
	for a := range l.lines {
		l.lines[a] = nil
	}
}

// Has reports whether the record has campaign's soft bounce of addr.
func (l *SoftList) Has(addr, campaign string) bool {
	_, ok := l.pairs[l.pairKey(addr, campaign)]
	return ok
}

// Count returns how many campaigns soft-bounced at addr.
func (l *SoftList) Count(addr string) int { return l.counts[l.addrKey(addr)] }

// Len returns how many (address, campaign) the record has.
func (l *SoftList) Len() int { return len(l.pairs) }

// Append adds the soft bounces of (address, campaign) not recorded yet to
// the end of the file, creating it, and returns how many it added: as
// [List.Append] does, under the file's lock, each (address, campaign)
// once. A bounce without a time is stamped now.
func (l *SoftList) Append(bounces ...SoftBounce) (int, error) {
	for _, b := range bounces {
		if err := merge.CheckAddress(b.Email); err != nil {
			return 0, fmt.Errorf("%s: can't record %q: %w: %v", l.path, b.Email, ErrInvalid, err)
		}
		if merge.OneLine(b.Campaign) == "" {
			return 0, fmt.Errorf("%s: can't record %s: %w: a soft bounce is of a campaign", l.path, b.Email, ErrInvalid)
		}
	}
	if len(bounces) == 0 {
		return 0, nil
	}
	now := time.Now().UTC().Truncate(time.Second)
	seen := make(map[uint64]bool, len(bounces))
	added, err := l.appendRows(bounces, func(b SoftBounce) bool {
		k := l.pairKey(b.Email, merge.OneLine(b.Campaign))
		if _, dup := l.pairs[k]; dup || seen[k] {
			return false
		}
		seen[k] = true
		return true
	}, func(b *SoftBounce, line int) []string {
		if b.At.IsZero() {
			b.At = now
		}
		b.At = b.At.UTC().Truncate(time.Second)
		b.Campaign, b.Status, b.Detail = merge.OneLine(b.Campaign), merge.OneLine(b.Status), merge.OneLine(b.Detail)
		b.Line = line
		return []string{b.Email, b.At.Format(time.RFC3339), b.Campaign, b.Status, b.Detail}
	})
	return len(added), err
}

// Lines returns addr's lines, in file order, each (address, campaign)
// once (the first line of it counts), as read and appended so far; addr is
// one OpenSoft was to keep, or Lines returns none.
func (l *SoftList) Lines(addr string) []SoftBounce {
	return slices.Clip(l.lines[l.addrKey(addr)]) // a caller's append copies
}

// Remove drops every line of the addresses addrs from the file, as
// [List.Remove] does, and returns how many it dropped: their counts start
// again from none.
func (l *SoftList) Remove(addrs ...string) (int, error) {
	want := make(map[uint64]bool, len(addrs))
	for _, a := range addrs {
		want[l.addrKey(a)] = true
	}
	return l.remove(func(b SoftBounce) bool { return want[l.addrKey(b.Email)] })
}

// ScanSoft reads a soft-bounce record from r, named path in errors, and
// calls fn with each line in file order. It stops at fn's first error and
// returns it.
func ScanSoft(path string, r io.Reader, fn func(SoftBounce) error) error {
	_, err := scan(path, r, position{line: 1}, softFormat, func(b SoftBounce, _, _ int64) error { return fn(b) })
	return err
}

// parseSoft reads the fields of a line of the record.
func parseSoft(rec []string, line int) (SoftBounce, error) {
	if len(rec) < 3 || len(rec) > len(softHeader) {
		return SoftBounce{}, fmt.Errorf("%d fields: a line is %s, at least the address, the time (or nothing) and the campaign; quote a value that holds a comma", len(rec), strings.Join(softHeader, ","))
	}
	for i, v := range rec {
		if !utf8.ValidString(v) {
			return SoftBounce{}, fmt.Errorf("the %s is not UTF-8 text: save the file as UTF-8", softHeader[i])
		}
	}
	b := SoftBounce{Email: unformula(strings.TrimSpace(rec[0])), Campaign: strings.TrimSpace(rec[2]), Line: line}
	if err := merge.CheckAddress(b.Email); err != nil {
		return SoftBounce{}, fmt.Errorf("invalid address %q: %v: correct it, or delete the line", b.Email, err)
	}
	if at := strings.TrimSpace(rec[1]); at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return SoftBounce{}, fmt.Errorf("time %q for %s: write an RFC 3339 time, like 2026-12-01T16:19:14Z, or nothing", at, b.Email)
		}
		b.At = t.UTC()
	}
	if b.Campaign == "" {
		return SoftBounce{}, fmt.Errorf("no campaign for %s: a soft bounce counts once per campaign: write its name, or delete the line", b.Email)
	}
	if len(rec) > 3 {
		b.Status = rec[3]
	}
	if len(rec) > 4 {
		b.Detail = rec[4]
	}
	return b, nil
}
