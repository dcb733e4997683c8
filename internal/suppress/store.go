package suppress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/batch-mailer/batch/internal/merge"
)

// store is what the suppression list and the soft-bounce record share: a
// CSV file with a header, read into memory, appended to under the lock
// and rewritten without some lines. T is one line of it.
type store[T any] struct {
	path   string
	format *format[T]
	file   fileState
	wait   time.Duration // how long appendRows and remove wait for the lock
	add    func(T)       // records a line read or appended
	forget func()        // forgets every line, to read the file again
}

// format is how a store's lines are read.
type format[T any] struct {
	header []string
	// parse reads the fields of a line (after the header, not blank),
	// the file's line; its error says what to fix.
	parse func(rec []string, line int) (T, error)
}

func newStore[T any](path string, f *format[T], add func(T), forget func()) store[T] {
	return store[T]{path: path, format: f, wait: lockWait, add: add, forget: forget}
}

// open reads the file, which may not exist (then the store is empty);
// what names it in an error opening it.
func (s *store[T]) open(what string) error {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	return s.catchUp(f)
}

// reset forgets the lines and where the file was read to.
func (s *store[T]) reset() {
	s.forget()
	s.file = fileState{}
}

// read adds the lines of r, which starts at the file's position at.
func (s *store[T]) read(r io.Reader, at position) (position, error) {
	if at.line == 0 {
		at.line = 1
	}
	return scan(s.path, r, at, s.format, func(e T, _, _ int64) error {
		s.add(e)
		return nil
	})
}

// catchUp reads what f holds that the store has not read: what was added
// to the end since it last read f, or all of it when it is another file or
// was changed before that end.
func (s *store[T]) catchUp(f *os.File) error {
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	dev, ino := fileID(info)
	size := info.Size()
	from := s.file.pos
	// Read again from the start: another file, one cut shorter or changed
	// before where it was read to, or one read to the middle of a line
	// (by hand, without its end), which what was added may continue.
	midLine := len(s.file.tail) > 0 && s.file.tail[len(s.file.tail)-1] != '\n'
	if !s.file.valid || s.file.dev != dev || s.file.ino != ino || size < from.offset || !s.sameTail(f) || midLine && size > from.offset {
		s.reset()
		from = position{line: 1}
	}
	cr := &countReader{r: io.NewSectionReader(f, from.offset, size-from.offset)}
	cr.last = append(cr.last, s.file.tail...)
	end, err := s.read(cr, from)
	if err != nil {
		s.reset()
		return err
	}
	s.file = fileState{valid: true, dev: dev, ino: ino, pos: end, tail: cr.last}
	return nil
}

// sameTail reports whether the bytes before the end of what was read are
// still those read.
func (s *store[T]) sameTail(f *os.File) bool {
	t := s.file.tail
	if len(t) == 0 {
		return s.file.pos.offset == 0
	}
	got := make([]byte, len(t))
	_, err := f.ReadAt(got, s.file.pos.offset-int64(len(t)))
	return err == nil && bytes.Equal(got, t)
}

// appendRows adds lines to the end of the file, creating it (with its
// header) when it does not exist or is empty. Under an exclusive lock it
// reads what other processes added since, then keeps the entries pick
// says to (called after that, in order, so that it sees the file as it
// is now), writes row's cells of each (row may complete the entry; it is
// given the entry's line), and fsyncs. The store then has the entries
// added, which it returns.
func (s *store[T]) appendRows(entries []T, pick func(T) bool, row func(e *T, line int) []string) ([]T, error) {
	f, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer f.Close() // and unlocks
	if err := s.catchUp(f); err != nil {
		return nil, err
	}
	pos := s.file.pos
	var buf bytes.Buffer
	if pos.offset > 0 && s.file.tail[len(s.file.tail)-1] != '\n' {
		buf.WriteByte('\n') // a last line without its end, by hand
		pos.line++
	}
	w := merge.NewCSVWriter(&buf)
	if !pos.header {
		w.Write(s.format.header)
		pos.line++
		pos.header = true
	}
	var added []T
	for _, e := range entries {
		if !pick(e) {
			continue
		}
		w.Write(row(&e, pos.line))
		pos.line++
		added = append(added, e)
	}
	if len(added) == 0 {
		return nil, nil
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := s.write(f, buf.Bytes()); err != nil {
		return nil, err
	}
	for _, e := range added {
		s.add(e)
	}
	pos.offset += int64(buf.Len())
	tail := append(s.file.tail, buf.Bytes()...)
	s.file.pos, s.file.tail = pos, append([]byte(nil), tail[max(0, len(tail)-tailLen):]...)
	return added, nil
}

// write appends lines to f, the locked file, and fsyncs it, and its
// folder for a new file.
func (s *store[T]) write(f *os.File, lines []byte) error {
	if _, err := f.Write(lines); err != nil {
		s.file.valid = false // what was written is read again
		return fmt.Errorf("%s: appending: %w", s.path, err)
	}
	if err := f.Sync(); err != nil {
		s.file.valid = false
		return fmt.Errorf("%s: %w", s.path, err)
	}
	if s.file.pos.offset == 0 {
		// A new file: make its name as durable as its lines.
		return syncDir(filepath.Dir(s.path))
	}
	return nil
}

// remove drops every line drop says to from the file and returns how many
// it dropped; 0, and the file untouched, when there is none. The file is
// rewritten atomically: a copy without those lines, with the file's
// permissions, fsynced and renamed over it, under the lock. Every other
// line is kept byte for byte; blank lines just before a dropped line go
// with it.
func (s *store[T]) remove(drop func(T) bool) (int, error) {
	if _, err := os.Stat(s.path); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	f, err := s.lock()
	if err != nil {
		return 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", s.path, err)
	}
	var spans [][2]int64
	_, err = scan(s.path, io.NewSectionReader(f, 0, info.Size()), position{line: 1}, s.format, func(e T, start, end int64) error {
		if drop(e) {
			spans = append(spans, [2]int64{start, end})
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(spans) == 0 {
		return 0, nil
	}
	dir, base := filepath.Split(s.path)
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("%s: %w", s.path, err)
	}
	defer tmp.Close()
	done := false
	defer func() {
		if !done {
			os.Remove(tmp.Name())
		}
	}()
	// The new file is locked before it has the name, so that a process
	// that opens the name after the rename waits for this one.
	if err := tryLock(tmp); err != nil {
		return 0, fmt.Errorf("%s: locking the new file: %w", s.path, err)
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		return 0, fmt.Errorf("%s: %w", s.path, err)
	}
	chownLike(tmp, info)
	var at int64
	for _, d := range spans {
		if _, err := io.Copy(tmp, io.NewSectionReader(f, at, d[0]-at)); err != nil {
			return 0, fmt.Errorf("%s: %w", s.path, err)
		}
		at = d[1]
	}
	if _, err := io.Copy(tmp, io.NewSectionReader(f, at, info.Size()-at)); err != nil {
		return 0, fmt.Errorf("%s: %w", s.path, err)
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("%s: %w", s.path, err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return 0, fmt.Errorf("%s: %w", s.path, err)
	}
	done = true
	if err := syncDir(dir); err != nil {
		return 0, err
	}
	s.reset()
	if err := s.catchUp(tmp); err != nil {
		return 0, err
	}
	return len(spans), nil
}

// lock opens the file for appending, creating it, and takes an exclusive
// flock on it, waiting at most s.wait. A file that was renamed over (by a
// remove) while it waited is let go and the new one locked.
func (s *store[T]) lock() (*os.File, error) {
	path := s.path
	deadline := time.Now().Add(s.wait)
	pause := time.Millisecond
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		err = tryLock(f)
		if err == nil {
			if same, serr := samePath(f, path); serr != nil || same {
				if serr != nil {
					f.Close()
					return nil, fmt.Errorf("%s: %w", path, serr)
				}
				return f, nil
			}
		}
		f.Close()
		if err != nil && !busy(err) {
			return nil, fmt.Errorf("%s: locking: %w", path, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: %w: another batch has been writing it for %v: wait for it to finish, or stop it", path, ErrLocked, s.wait)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}
