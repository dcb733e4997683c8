package deliver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// The journal is the durable record of a campaign's deliveries: one line per
// event, appended, never rewritten. Each line is the CRC-32C of a JSON record
// in hex, a space, the record, and a line feed:
//
//	1c2f9a0b {"t":"sending","to":"ada@example.org","row":1,"id":"…@example.org"}
//
// A crash can tear only the last line, which the reader detects (no line
// feed, or a CRC that doesn't match) and ignores. Records are keyed by the
// recipient's address in lower case, not by row, so that a list edited
// between runs resumes correctly.
//
// Durability is what makes "at most once" hold: a "sending" record is on
// disk (fsync) before the message's DATA, so that a run killed between DATA
// and the server's reply leaves the recipient "unknown" rather than
// pending. An fsync costs a disk's round trip (about 170 µs on the VM batch
// is measured on, longer than a loopback server takes for a message), so
// the journal does as few as it can and none that a connection waits for
// needlessly:
//
//   - Every record is written to the file at once, by one goroutine (a
//     killed process loses none: the kernel has them), but synced only
//     for a "sending" record, which a connection will wait for (as soon as
//     it is appended, or, with many connections, when one waits: see
//     GroupSyncs), or at Close. The outcome of one message ("sent") goes to disk with the
//     intent of the next ("sending"), in the same fsync.
//   - Fsyncs are grouped: what is appended while one runs goes to disk in
//     the next, so N connections share them.
//   - A connection waits only for the record it depends on, and takes its
//     next message while the current one is in transfer, so that the
//     next "sending" record goes to disk meanwhile (see the SMTP worker).
//
// Only a machine crash can lose an unsynced outcome record; the recipient
// then shows as unknown, never as pending, so nobody gets two copies.
//
// A journal whose file can't be written (a full disk) fails for good: it
// writes nothing more, and every Wait returns the error. What it holds is
// then exactly the records written whole before it failed (Holds), which is
// what a reader finds; AppendThen tells each record's fate, so that the
// caller reports what the journal says and not what it meant to write.

// Record kinds.
const (
	KindOpen     = "open"     // a run began
	KindSending  = "sending"  // the message may be handed over from now on
	KindSent     = "sent"     // the server took it (250 to the final dot)
	KindFailed   = "failed"   // refused for good (5xx), or retries ran out
	KindDeferred = "deferred" // refused for now (4xx); pending
	KindUnknown  = "unknown"  // the connection broke after the final dot
	KindReleased = "released" // not handed over after all (stopped); pending
)

// Record is one event of the journal.
type Record struct {
	Kind     string `json:"t"`
	To       string `json:"to,omitempty"` // lower case
	Row      int    `json:"row,omitempty"`
	ID       string `json:"id,omitempty"`
	Code     int    `json:"code,omitempty"`  // the server's reply code
	Error    string `json:"error,omitempty"` // the server's reply or what happened
	At       int64  `json:"at,omitempty"`    // Unix seconds
	Campaign string `json:"campaign,omitempty"`
}

// Status is where a recipient stands.
type Status int

const (
	Pending Status = iota
	Sent
	Failed
	Unknown
)

func (s Status) String() string {
	return [...]string{"pending", "sent", "failed", "unknown"}[s]
}

// Entry is the last word of the journal on one recipient.
type Entry struct {
	Status Status
	Row    int
	Code   int
	Error  string
}

// State is what a journal says of each recipient. It is kept small, as a
// resumed campaign or batch status holds it for the whole list: a
// recipient costs a 128-bit key and a status (about 30 bytes, a quarter of
// a map by address), and only those with a server's reply to show keep
// an Entry. Keys are maphash sums of the address under two random seeds,
// so that no list can be made to collide.
type State struct {
	seeds  [2]maphash.Seed
	status map[stateKey]Status
	detail map[stateKey]Entry // a code or an error to show
}

type stateKey [2]uint64

func newState() *State {
	return &State{
		seeds:  [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		status: map[stateKey]Status{},
		detail: map[stateKey]Entry{},
	}
}

// key is the key of an address in lower case.
func (s *State) key(lower string) stateKey {
	return stateKey{maphash.String(s.seeds[0], lower), maphash.String(s.seeds[1], lower)}
}

// Get returns the entry of address; Pending when the journal has none.
func (s *State) Get(address string) Entry {
	if s == nil {
		return Entry{}
	}
	k := s.key(strings.ToLower(address))
	st, ok := s.status[k]
	if !ok {
		return Entry{}
	}
	e := s.detail[k]
	e.Status = st
	return e
}

// Len returns how many recipients the journal knows.
func (s *State) Len() int { return len(s.status) }

// KindStatus is where a record of kind leaves its recipient; false for a
// kind that is not about a recipient.
func KindStatus(kind string) (Status, bool) {
	switch kind {
	case KindSending, KindUnknown:
		// A "sending" with nothing after it is a run that died with the
		// message in flight: the server may or may not have it.
		return Unknown, true
	case KindSent:
		return Sent, true
	case KindFailed:
		return Failed, true
	case KindDeferred, KindReleased:
		return Pending, true
	}
	return Pending, false
}

func (s *State) apply(r *Record) {
	st, ok := KindStatus(r.Kind)
	if r.To == "" || !ok {
		return
	}
	k := s.key(r.To)
	s.status[k] = st
	if st == Sent || r.Code == 0 && r.Error == "" {
		delete(s.detail, k)
		return
	}
	s.detail[k] = Entry{Row: r.Row, Code: r.Code, Error: r.Error}
}

// JournalError is a journal that can't be read: a damaged line that is not
// the last.
type JournalError struct {
	Path string
	Line int
	Err  error
}

func (e *JournalError) Error() string {
	return fmt.Sprintf("%s:%d: %v: the journal is damaged; keep a copy, and remove that line to go on (its recipient may then be sent again)", e.Path, e.Line, e.Err)
}

func (e *JournalError) Unwrap() error { return e.Err }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ReadJournal reads a journal. A damaged last line (a write cut short by a
// crash) is ignored; any other damaged line is a *JournalError naming it.
// path is used in messages.
func ReadJournal(path string, r io.Reader) (*State, error) {
	st, _, err := readJournal(path, r)
	return st, err
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

// readJournal also returns the length of the journal up to the end of its
// last good line. Zeros after the last line are the blocks a journal makes
// ahead of its records (see Journal.write), not damage.
func readJournal(path string, r io.Reader) (*State, int64, error) {
	st := newState()
	br := bufio.NewReader(r)
	var damaged *JournalError
	var good, offset int64
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF && len(line) > 0 && line[0] == 0 && damaged == nil && allZero(line) {
			break // the blocks a running (or killed) batch made ahead
		}
		if len(line) > 0 {
			if damaged != nil {
				return nil, 0, damaged // damage before the last line
			}
			offset += int64(len(line))
			rec, perr := parseRecord(line)
			if perr == nil && line[len(line)-1] != '\n' {
				perr = errors.New("the record has no line end: a write cut short")
			}
			if perr != nil {
				damaged = &JournalError{Path: path, Line: n, Err: perr}
			} else {
				st.apply(rec)
				good = offset
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
	}
	return st, good, nil
}

func parseRecord(line []byte) (*Record, error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	sum, body, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(sum) != 8 {
		return nil, errors.New("not a journal record")
	}
	want, err := strconv.ParseUint(string(sum), 16, 32)
	if err != nil {
		return nil, errors.New("not a journal record")
	}
	if crc32.Checksum(body, castagnoli) != uint32(want) {
		return nil, errors.New("checksum mismatch")
	}
	var r Record
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	if r.Kind == "" {
		return nil, errors.New("record without a kind")
	}
	return &r, nil
}

func encodeRecord(dst []byte, r *Record) []byte {
	body, _ := json.Marshal(r) // a Record always encodes
	dst = fmt.Appendf(dst, "%08x ", crc32.Checksum(body, castagnoli))
	dst = append(dst, body...)
	return append(dst, '\n')
}

// Journal appends records to a campaign's journal file.
type Journal struct {
	path string
	f    *os.File

	mu      sync.Mutex
	work    *sync.Cond // the flusher's: records to write, a Wait, Close
	disk    *sync.Cond // the waiters': synced moved on
	buf     []byte     // appended, not yet written
	seq     uint64     // records appended
	written uint64     // records written to the file, whole
	thens   []then     // AppendThen's, in order, for records not yet written
	synced  uint64     // records durable
	want    uint64     // the highest record a Wait needs durable
	off     int64      // where the next record goes in the file
	ahead   int64      // how far the file is made ahead (preallocate); 0 not yet
	noAhead bool       // the filesystem can't: the file grows as it is written
	syncs   int        // fsyncs done, for tests
	grouped bool       // GroupSyncs
	err     error
	closing bool
	closed  bool
	done    chan struct{}
}

// Ticket identifies an appended record, to wait for its durability.
type Ticket uint64

// then is what AppendThen is to call once the record seq is written, or
// will never be.
type then struct {
	seq uint64
	f   func(error)
	err error // when called: nil, or why the record is not in the file
}

// JournalPath returns the journal's path for the campaign called name whose
// file is in dir: dir/.batch/NAME.journal, the name made safe for a file.
func JournalPath(dir, name string) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, name)
	if safe != name {
		safe += "-" + strconv.FormatUint(uint64(crc32.Checksum([]byte(name), castagnoli)), 16)
	}
	return filepath.Join(dir, ".batch", strings.TrimLeft(safe, ".")+".journal")
}

// OpenJournal reads the journal at path, if any, and opens it to append,
// locked against a second batch sending the same campaign. It creates the
// .batch directory with a .gitignore, so that run state never lands in git.
func OpenJournal(path, campaign string) (*Journal, *State, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("run state: %w", err)
	}
	ignore := filepath.Join(dir, ".gitignore")
	if _, err := os.Stat(ignore); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(ignore, []byte("# batch's run state: not for git\n*\n"), 0o644); err != nil {
			return nil, nil, fmt.Errorf("run state: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	if err := lock(f); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: another batch is sending this campaign (the journal is locked): wait for it to finish", path)
	}
	st, good, err := readJournal(path, f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	// Cut off a torn last line, which would run into the next record, and
	// the zeros a killed run left.
	if info, err := f.Stat(); err == nil && info.Size() > good {
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("journal: %w", err)
		}
	}
	// Records go on from the end of the last good one: the file's offset
	// follows them (see write).
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{path: path, f: f, done: make(chan struct{}), off: good}
	j.work, j.disk = sync.NewCond(&j.mu), sync.NewCond(&j.mu)
	go j.flush()
	return j, st, nil
}

// Append adds r to the journal and returns at once; Wait tells when it is
// on disk. A "sending" record is synced as soon as can be; others are
// written at once and synced with the next.
func (j *Journal) Append(r Record) Ticket {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.append(&r)
}

// append adds r; j.mu is held.
func (j *Journal) append(r *Record) Ticket {
	r.To = strings.ToLower(r.To)
	j.buf = encodeRecord(j.buf, r)
	j.seq++
	if r.Kind == KindSending && !j.grouped {
		// Its connection will wait for it: to disk as soon as can be.
		j.want = j.seq
	}
	j.work.Signal()
	return Ticket(j.seq)
}

// AppendThen appends r, as Append does, and calls f once r's fate is
// known: with nil once r is in the journal's file, whole (where a reader
// finds it, synced or not), or with the journal's error if it never will
// be. f runs on the journal's goroutine, in the order of the records, or at
// once on a journal that has failed or is closed; it must not wait for the
// journal.
func (j *Journal) AppendThen(r Record, f func(error)) {
	j.mu.Lock()
	if err := j.unusable(); err != nil {
		j.mu.Unlock()
		f(err)
		return
	}
	defer j.mu.Unlock()
	j.thens = append(j.thens, then{seq: uint64(j.append(&r)), f: f})
}

// unusable is why nothing more can be appended, if so.
func (j *Journal) unusable() error {
	switch {
	case j.err != nil:
		return j.err
	case j.closed:
		return fmt.Errorf("journal %s: %w", j.path, os.ErrClosed)
	}
	return nil
}

// Holds reports whether the record of t is in the journal's file, whole.
// Once the journal has failed (a Wait or an AppendThen said so), the answer
// is final: the record is there for a reader, or will never be.
func (j *Journal) Holds(t Ticket) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return uint64(t) <= j.written
}

// GroupSyncs makes the journal sync a "sending" record only when a
// connection waits for it, not as soon as it is appended: each sync then
// serves the records of every connection that got that far, fewer syncs
// for as many messages, and a connection may wait for one. With one or two
// connections the wait costs more than the syncs; with more, the CPU a
// sync takes does. Measured with go run ./bench, on 2 cores, sending
// with DATA to a loopback server: 82% of a bare client's rate against
// 95% with one connection, 97% against 82% with four, 102% against 91%
// with eight.
func (j *Journal) GroupSyncs() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.grouped = true
}

// Wait returns when the record of t, and every one before it, is on disk.
func (j *Journal) Wait(t Ticket) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.synced < uint64(t) && j.want < uint64(t) {
		j.want = uint64(t)
		j.work.Signal()
	}
	for j.synced < uint64(t) && j.err == nil {
		j.disk.Wait()
	}
	return j.err
}

// flush writes what was appended, a batch at a time, and syncs it when a
// Wait needs it or the journal closes.
func (j *Journal) flush() {
	defer close(j.done)
	var buf []byte
	var due []then
	for {
		j.mu.Lock()
		for len(j.buf) == 0 && j.want <= j.synced && !j.closing && j.err == nil {
			j.work.Wait()
		}
		if j.err != nil || j.closing && len(j.buf) == 0 && j.synced == j.written {
			j.mu.Unlock()
			return
		}
		buf, j.buf = j.buf, buf[:0]
		upTo := j.seq
		sync := j.want > j.synced || j.closing
		j.mu.Unlock()

		var n int
		var err error
		if len(buf) > 0 {
			n, err = j.write(buf)
		}
		wrote := err == nil
		if err == nil && sync {
			err = datasync(j.f)
		}

		j.mu.Lock()
		switch {
		case !wrote:
			// A write cut short (a full disk) may have left records
			// whole before the one it cut: a reader finds those.
			j.written += uint64(bytes.Count(buf[:n], []byte{'\n'}))
			j.err = fmt.Errorf("journal %s: %w", j.path, err)
		case err != nil:
			j.written = upTo // in the file, if not on disk
			j.err = fmt.Errorf("journal %s: %w", j.path, err)
		case sync:
			j.written, j.synced = upTo, upTo
			j.syncs++
		default:
			j.written = upTo
		}
		due = j.due(due[:0])
		j.disk.Broadcast()
		j.mu.Unlock()
		for _, t := range due {
			t.f(t.err)
		}
		clear(due)
	}
}

// due takes from j.thens, into dst, those whose record is written, and
// every one once the journal has failed; j.mu is held.
func (j *Journal) due(dst []then) []then {
	i := 0
	for ; i < len(j.thens) && (j.thens[i].seq <= j.written || j.err != nil); i++ {
		t := j.thens[i]
		if t.seq > j.written {
			t.err = j.err
		}
		dst = append(dst, t)
	}
	n := copy(j.thens, j.thens[i:]) // few: those appended meanwhile
	clear(j.thens[n:])
	j.thens = j.thens[:n]
	return dst
}

// journalChunk is how far ahead the journal's file is made, zeros: some
// 8,000 records.
const journalChunk = 1 << 20

// write writes buf at the end of the records, into blocks made ahead
// (preallocate) where the filesystem can, and returns how much of it went
// into the file, a write cut short included. It writes at the file's
// offset, which follows the records: os.File.WriteAt would not count the
// bytes of a write cut short.
func (j *Journal) write(buf []byte) (int, error) {
	if next := j.off + int64(len(buf)); next > j.ahead && !j.noAhead {
		size := next + journalChunk
		if j.noAhead = !preallocate(j.f, size); !j.noAhead {
			j.ahead = size
		}
	}
	n, err := j.f.Write(buf)
	j.off += int64(n)
	return n, err
}

// Close writes what is left, syncs it and closes the file. Closing again
// does nothing.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil
	}
	j.closed = true
	j.closing = true
	j.work.Signal()
	j.mu.Unlock()
	<-j.done
	var cerr error
	if j.ahead > 0 && j.err == nil {
		// The zeros made ahead go: a journal closed is its records.
		if cerr = j.f.Truncate(j.off); cerr == nil {
			cerr = j.f.Sync()
		}
	}
	if err := j.f.Close(); cerr == nil {
		cerr = err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	return cerr
}
