package journal

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Journal appends records to a campaign's journal file: one goroutine
// writes them, a batch at a time, and syncs them when a Wait needs it.
type Journal struct {
	path string
	f    *os.File

	// file is held while records are written to the file, by the
	// flusher or by Handover, so that they go in the order appended; never
	// while the file syncs, so that no write waits for a sync.
	file sync.Mutex
	boot string // this machine's boot, for the "open" record (see Record.Boot)

	mu      sync.Mutex
	work    *sync.Cond // the flusher's: records to write, a Wait, outcomes to tell, Close
	disk    *sync.Cond // the waiters': synced moved on
	buf     []byte     // appended, not yet written
	spare   []byte     // the buffer last written, for the next
	seq     uint64     // records appended
	written uint64     // records written to the file, whole
	thens   []then     // AppendThen's, in order, for records not yet written
	synced  uint64     // records durable
	want    uint64     // the highest record a Wait needs durable
	off     int64      // where the next record goes in the file
	ahead   int64      // how far the file is made ahead (preallocate); 0 not yet
	noAhead bool       // the filesystem can't: the file grows as it is written
	syncs   int        // fsyncs done, for tests
	// beforeSync, if set, runs on the flusher before each sync, j.mu not
	// held: tests hold a sync back with it.
	beforeSync func()
	grouped    bool // GroupSyncs
	err        error
	closing    bool
	closed     bool
	done       chan struct{}
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

// Path returns the journal's path for the campaign called name whose file
// is in dir: dir/.batch/NAME.journal, the name made safe for a file.
func Path(dir, name string) string {
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

// ErrLocked is the error of an Open while another process has the journal
// open: a second batch sending the same campaign.
var ErrLocked = errors.New("the journal is locked")

// Open reads the journal at path, if any, and opens it to append, locked
// against a second batch sending the same campaign. It creates the .batch
// directory with a .gitignore, so that run state never lands in git. opts
// are the reading's, as Read's.
func Open(path, campaign string, opts ...ReadOption) (*Journal, *State, error) {
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
		if errors.Is(err, ErrLocked) {
			return nil, nil, fmt.Errorf("%s: another batch is sending this campaign (%w): wait for it to finish", path, err)
		}
		return nil, nil, fmt.Errorf("journal %s: can't lock it: %w", path, err)
	}
	st, good, err := read(path, f, opts...)
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
	j := &Journal{path: path, f: f, done: make(chan struct{}), off: good, boot: st.boot}
	j.work, j.disk = sync.NewCond(&j.mu), sync.NewCond(&j.mu)
	go j.flush()
	return j, st, nil
}

// Append adds rs to the journal, in order, and returns at once, with the
// ticket of the last: Wait tells when they are on disk. A "sending" record
// is synced as soon as can be (unless GroupSyncs), records appended in one
// call by one sync; others are written at once and synced with the next.
func (j *Journal) Append(rs ...Record) Ticket {
	j.mu.Lock()
	defer j.mu.Unlock()
	t := Ticket(j.seq)
	for i := range rs {
		t = j.append(&rs[i])
	}
	return t
}

// append adds r; j.mu is held.
func (j *Journal) append(r *Record) Ticket {
	r.To = strings.ToLower(r.To)
	if r.Kind == KindOpen && r.Boot == "" {
		r.Boot = j.boot
	}
	j.buf = encodeRecord(j.buf, r)
	j.seq++
	switch {
	case r.Kind == KindHandover:
		return Ticket(j.seq) // Handover writes it
	case r.Kind == KindSending && !j.grouped:
		// Its connection will wait for it: to disk as soon as can be.
		j.want = j.seq
	}
	j.work.Signal()
	return Ticket(j.seq)
}

// Handover writes r, the "handover" record of a message whose "sending"
// record was appended, to the file, after every record appended before
// it, and returns once the file has it: the message's final dot, or BDAT
// LAST, may go once that is done and the "sending" record is on disk
// (Wait), and not before. The record is not synced, and no write of it
// waits for a sync: a reader on the same boot finds it (the kernel has
// it, whatever became of batch), which is all it is for (see the
// package's doc). An error is the journal's: the message must not go.
func (j *Journal) Handover(r Record) error {
	r.Kind = KindHandover
	j.mu.Lock()
	if err := j.unusable(); err != nil {
		j.mu.Unlock()
		return err
	}
	seq := uint64(j.append(&r))
	j.mu.Unlock()

	j.file.Lock()
	j.writeOut()
	j.file.Unlock()

	j.mu.Lock()
	defer j.mu.Unlock()
	if j.thensDue() {
		j.work.Signal() // outcomes written with it, to be told
	}
	if seq <= j.written {
		return nil
	}
	return j.err
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

// Lost is where a recipient stands, read on this boot, whose outcome
// record the journal could not write: sending is the ticket of its
// "sending" record (0 for none), and handedOver whether its "handover"
// record is in the file. As State reads it: unknown with the "handover"
// record (the message's end may have gone); pending with only the
// "sending" record where the journal knows the machine's boot (the end
// never went), unknown where it doesn't; pending with neither.
func (j *Journal) Lost(sending Ticket, handedOver bool) Status {
	switch {
	case handedOver:
		return Unknown
	case sending != 0 && j.Holds(sending) && j.boot == "":
		return Unknown
	}
	return Pending
}

// GroupSyncs makes the journal sync a "sending" record only when a
// connection waits for it, not as soon as it is appended: each sync then
// serves the records of every connection that got that far, fewer syncs
// for as many messages, and a connection may wait for one. With one
// connection the wait costs more than the syncs; with more, the syncs of
// one connection queue behind another's, and their CPU adds up. Measured
// on 2 cores, sending with DATA to a loopback server: 82% of a bare
// client's rate against 95% with one connection (go run ./bench); with
// two, 40% fewer syncs and a send 3-6% faster (medians of 16 and 12
// alternating pairs); 97% against 82% with four, 102% against 91% with
// eight.
func (j *Journal) GroupSyncs() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.grouped = true
}

// Synced reports whether Wait(t) would return at once: the record of t is
// on disk, or the journal has failed.
func (j *Journal) Synced(t Ticket) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.synced >= uint64(t) || j.err != nil
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

// flush writes what was appended, a batch at a time, syncs it when a Wait
// needs it or the journal closes, and tells AppendThen's callers.
func (j *Journal) flush() {
	defer close(j.done)
	var due []then
	for {
		j.mu.Lock()
		for len(j.buf) == 0 && j.want <= j.synced && !j.closing && j.err == nil && !j.thensDue() {
			j.work.Wait()
		}
		if !j.thensDue() && (j.err != nil || j.closing && len(j.buf) == 0 && j.synced == j.written) {
			j.mu.Unlock()
			return
		}
		j.mu.Unlock()

		j.file.Lock()
		j.writeOut()
		j.file.Unlock()

		j.mu.Lock()
		if j.err == nil && (j.want > j.synced || j.closing) && j.synced < j.written {
			upTo := j.written // what the sync covers: written before it starts
			hook := j.beforeSync
			j.mu.Unlock()
			if hook != nil {
				hook()
			}
			err := datasync(j.f)
			j.mu.Lock()
			if err != nil {
				j.err = fmt.Errorf("journal %s: %w", j.path, err)
			} else {
				j.synced = max(j.synced, upTo)
				j.syncs++
			}
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

// writeOut writes what was appended to the file, whole records; j.file is
// held, and j.mu is not.
func (j *Journal) writeOut() {
	j.mu.Lock()
	if len(j.buf) == 0 || j.err != nil {
		j.mu.Unlock()
		return
	}
	buf := j.buf
	j.buf = j.spare[:0]
	upTo := j.seq
	j.mu.Unlock()

	n, err := j.write(buf)

	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		// A write cut short (a full disk) may have left records whole
		// before the one it cut: a reader finds those.
		j.written += uint64(bytes.Count(buf[:n], []byte{'\n'}))
		j.err = fmt.Errorf("journal %s: %w", j.path, err)
		j.disk.Broadcast()
	} else {
		j.written = upTo
	}
	j.spare = buf
}

// thensDue reports whether an AppendThen's caller is to be told; j.mu is
// held.
func (j *Journal) thensDue() bool {
	return len(j.thens) > 0 && (j.thens[0].seq <= j.written || j.err != nil)
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
