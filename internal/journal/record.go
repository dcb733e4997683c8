package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Record kinds.
const (
	KindOpen     = "open"     // a run began
	KindSending  = "sending"  // the message may be handed over from now on
	KindHandover = "handover" // its final dot, or BDAT LAST, goes now
	KindSent     = "sent"     // the server took it (250 to the final dot)
	KindFailed   = "failed"   // refused for good (5xx), or retries ran out
	KindDeferred = "deferred" // refused for now (4xx); pending
	KindUnknown  = "unknown"  // the connection broke after the final dot
	KindReleased = "released" // not handed over after all (stopped); pending
)

// Record is one event of the journal: one line of its file.
type Record struct {
	Kind     string `json:"t"`
	To       string `json:"to,omitempty"` // lower case
	Row      int    `json:"row,omitempty"`
	ID       string `json:"id,omitempty"`
	Code     int    `json:"code,omitempty"`  // the server's reply code
	Error    string `json:"error,omitempty"` // the server's reply or what happened
	At       int64  `json:"at,omitempty"`    // Unix seconds
	Campaign string `json:"campaign,omitempty"`
	// Boot is the boot of the machine a run began on (its "open"
	// record): /proc/sys/kernel/random/boot_id on Linux.
	Boot string `json:"boot,omitempty"`
}

// Error is a journal that can't be read: a damaged line that is not the
// last.
type Error struct {
	Path string
	Line int
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d: %v: the journal is damaged; keep a copy, and remove that line to go on (its recipient may then be sent again)", e.Path, e.Line, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Read reads a journal. A damaged last line (a write cut short by a crash)
// is ignored; any other damaged line is an *Error naming it. path is used
// in messages; opts ask the State to keep more, from the same read.
func Read(path string, r io.Reader, opts ...ReadOption) (*State, error) {
	st, _, err := read(path, r, opts...)
	return st, err
}

// ReadOption asks a reading of the journal (Read, Open) to keep more in
// its State than where each recipient stands.
type ReadOption func(*State)

// KeepWindow has the State keep the quota's Window of the journal, the
// times of the latest keep "sending" records at or after since (see
// State.Window), so that a quota needs no second read of the journal.
func KeepWindow(since int64, keep int) ReadOption {
	return func(s *State) { s.window = &Window{Since: since, Keep: keep} }
}

// allZero reports whether b is all NUL bytes.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// read also returns the length of the journal up to the end of its
// last good line. Zeros after the last line are the blocks a journal makes
// ahead of its records (see Journal.write), not damage.
func read(path string, r io.Reader, opts ...ReadOption) (*State, int64, error) {
	st := newState()
	for _, o := range opts {
		o(st)
	}
	good, err := scan(path, r, st.apply)
	if err != nil {
		return nil, 0, err
	}
	st.window.done()
	return st, good, nil
}

// scan calls each with every good record of a journal, in order, and
// returns the length of the journal up to the end of its last good line.
func scan(path string, r io.Reader, each func(*Record)) (int64, error) {
	br := bufio.NewReader(r)
	var damaged *Error
	var good, offset int64
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF && len(line) > 0 && line[0] == 0 && damaged == nil && allZero(line) {
			break // the blocks a running (or killed) batch made ahead
		}
		if len(line) > 0 {
			if damaged != nil {
				return 0, damaged // damage before the last line
			}
			offset += int64(len(line))
			rec, perr := parseRecord(line)
			if perr == nil && line[len(line)-1] != '\n' {
				perr = errors.New("the record has no line end: a write cut short")
			}
			if perr != nil {
				damaged = &Error{Path: path, Line: n, Err: perr}
			} else {
				each(rec)
				good = offset
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
	}
	return good, nil
}

// Sendings returns the quota's Window of a journal, oldest first: the
// times (Unix seconds) of the latest keep "sending" records at or after
// since, without the State (for a journal whose State is not wanted: see
// KeepWindow for one that is). A journal is read as Read reads it; path is
// used in messages.
func Sendings(path string, r io.Reader, since int64, keep int) ([]int64, error) {
	w := &Window{Since: since, Keep: keep}
	if _, err := scan(path, r, w.add); err != nil {
		return nil, err
	}
	w.done()
	return w.At, nil
}

// parseRecord reads one line of the journal, its line feed included or not.
func parseRecord(line []byte) (*Record, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	sum, body, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(sum) != 8 {
		return nil, errors.New("not a journal record")
	}
	want, ok := hex32(sum)
	if !ok {
		return nil, errors.New("not a journal record")
	}
	if crc32.Checksum(body, castagnoli) != uint32(want) {
		return nil, errors.New("checksum mismatch")
	}
	var r Record
	if !decodeRecord(body, &r) {
		r = Record{}
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
	}
	if r.Kind == "" {
		return nil, errors.New("record without a kind")
	}
	return &r, nil
}

// hex32 reads 8 hex digits, either case, as strconv.ParseUint(s, 16, 32)
// would, without its allocation.
func hex32(s []byte) (uint32, bool) {
	var n uint32
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | uint32(c)
	}
	return n, true
}

// encodeRecord appends r's line to dst.
func encodeRecord(dst []byte, r *Record) []byte {
	body, _ := json.Marshal(r) // a Record always encodes
	dst = fmt.Appendf(dst, "%08x ", crc32.Checksum(body, castagnoli))
	dst = append(dst, body...)
	return append(dst, '\n')
}
