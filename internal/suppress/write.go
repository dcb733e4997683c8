package suppress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/batch-mailer/batch/internal/merge"
)

// Append adds the entries whose addresses are not suppressed yet to the end
// of the file, creating it (with its header) when it does not exist or is
// empty, and returns how many it added. It holds an exclusive lock on the
// file while it reads what other processes added since the list was read,
// writes, and fsyncs, so that entries appended at once by several
// processes are all kept, each address once. An entry without a time is
// stamped now; times are written in UTC to the second. Campaign and detail
// are made one line. The list then has the entries too.
func (l *List) Append(entries ...Entry) (int, error) {
	if err := l.checkEntries(entries); err != nil {
		return 0, err
	}
	if len(entries) == 0 {
		return 0, nil
	}
	f, err := l.lock(l.path)
	if err != nil {
		return 0, err
	}
	defer f.Close() // and unlocks
	if err := l.catchUp(f); err != nil {
		return 0, err
	}
	pos := l.file.pos
	var buf bytes.Buffer
	if pos.offset > 0 && l.file.tail[len(l.file.tail)-1] != '\n' {
		buf.WriteByte('\n') // a last line without its end, by hand
		pos.line++
	}
	w := merge.NewCSVWriter(&buf)
	if !pos.header {
		w.Write(header)
		pos.line++
		pos.header = true
	}
	now := time.Now().UTC().Truncate(time.Second)
	var added []Entry
	seen := make(map[uint64]bool, len(entries))
	for _, e := range entries {
		k := l.key(e.Email)
		if _, dup := l.set[k]; dup || seen[k] {
			continue
		}
		seen[k] = true
		if e.At.IsZero() {
			e.At = now
		}
		e.At = e.At.UTC().Truncate(time.Second)
		e.Campaign, e.Detail = oneLine(e.Campaign), oneLine(e.Detail)
		w.Write([]string{e.Email, string(e.Reason), e.At.Format(time.RFC3339), e.Campaign, e.Detail})
		e.Line = pos.line
		pos.line++
		added = append(added, e)
	}
	if len(added) == 0 {
		return 0, nil
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	if err := l.write(f, buf.Bytes()); err != nil {
		return 0, err
	}
	for _, e := range added {
		l.add(e)
	}
	pos.offset += int64(buf.Len())
	tail := append(l.file.tail, buf.Bytes()...)
	l.file.pos, l.file.tail = pos, append([]byte(nil), tail[max(0, len(tail)-tailLen):]...)
	return len(added), nil
}

// checkEntries reports the first entry Append can't write.
func (l *List) checkEntries(entries []Entry) error {
	for _, e := range entries {
		if err := merge.CheckAddress(e.Email); err != nil {
			return fmt.Errorf("%s: can't suppress %q: %w: %v", l.path, e.Email, ErrInvalid, err)
		}
		if e.Reason.index() < 0 {
			return fmt.Errorf("%s: can't suppress %s: %w: reason %q is none of unsubscribed, bounced, complained, manual", l.path, e.Email, ErrInvalid, e.Reason)
		}
	}
	return nil
}

// write appends lines to f, the locked file, and fsyncs it, and its
// folder for a new file.
func (l *List) write(f *os.File, lines []byte) error {
	if _, err := f.Write(lines); err != nil {
		l.file.valid = false // what was written is read again
		return fmt.Errorf("%s: appending: %w", l.path, err)
	}
	if err := f.Sync(); err != nil {
		l.file.valid = false
		return fmt.Errorf("%s: %w", l.path, err)
	}
	if l.file.pos.offset == 0 {
		// A new file: make its name as durable as its lines.
		return syncDir(filepath.Dir(l.path))
	}
	return nil
}

// Remove drops every line of addr from the file and returns how many it
// dropped; 0, and the file untouched, when addr is not in it. The file is
// rewritten atomically: a copy without those lines, with the file's
// permissions, fsynced and renamed over it, under the lock. Every other
// line is kept byte for byte; blank lines just before a dropped line go
// with it.
func (l *List) Remove(addr string) (int, error) {
	if _, err := os.Stat(l.path); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	f, err := l.lock(l.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", l.path, err)
	}
	want := l.key(addr)
	var drop [][2]int64
	_, err = scan(l.path, io.NewSectionReader(f, 0, info.Size()), position{line: 1}, func(e Entry, start, end int64) error {
		if l.key(e.Email) == want {
			drop = append(drop, [2]int64{start, end})
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(drop) == 0 {
		return 0, nil
	}
	dir, base := filepath.Split(l.path)
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("%s: %w", l.path, err)
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
		return 0, fmt.Errorf("%s: locking the new file: %w", l.path, err)
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		return 0, fmt.Errorf("%s: %w", l.path, err)
	}
	chownLike(tmp, info)
	var at int64
	for _, d := range drop {
		if _, err := io.Copy(tmp, io.NewSectionReader(f, at, d[0]-at)); err != nil {
			return 0, fmt.Errorf("%s: %w", l.path, err)
		}
		at = d[1]
	}
	if _, err := io.Copy(tmp, io.NewSectionReader(f, at, info.Size()-at)); err != nil {
		return 0, fmt.Errorf("%s: %w", l.path, err)
	}
	if err := tmp.Sync(); err != nil {
		return 0, fmt.Errorf("%s: %w", l.path, err)
	}
	if err := os.Rename(tmp.Name(), l.path); err != nil {
		return 0, fmt.Errorf("%s: %w", l.path, err)
	}
	done = true
	if err := syncDir(dir); err != nil {
		return 0, err
	}
	l.reset()
	if err := l.catchUp(tmp); err != nil {
		return 0, err
	}
	return len(drop), nil
}

// lock opens the file at path for appending, creating it, and takes an
// exclusive flock on it, waiting at most l.wait. A file that was renamed
// over (by a Remove) while it waited is let go and the new one locked.
func (l *List) lock(path string) (*os.File, error) {
	deadline := time.Now().Add(l.wait)
	pause := time.Millisecond
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("suppression list: %w", err)
		}
		err = tryLock(f)
		if err == nil {
			if same, serr := samePath(f, path); serr != nil || same {
				if serr != nil {
					f.Close()
					return nil, fmt.Errorf("suppression list: %w", serr)
				}
				return f, nil
			}
		}
		f.Close()
		if err != nil && !busy(err) {
			return nil, fmt.Errorf("%s: locking: %w", path, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: %w: another batch has been writing it for %v: wait for it to finish, or stop it", path, ErrLocked, l.wait)
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// samePath reports whether f is still the file at path.
func samePath(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

func syncDir(dir string) error {
	if dir == "" {
		dir = "."
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// oneLine makes s one line of UTF-8 text, which the file must be: line
// ends and other control characters become spaces, runs of space one, and
// bytes that are not UTF-8 a replacement character.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(strings.ToValidUTF8(s, "\uFFFD"), func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
}
