package suppress

import (
	"errors"
	"fmt"
	"os"
	"time"

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
	now := time.Now().UTC().Truncate(time.Second)
	seen := make(map[uint64]bool, len(entries))
	added, err := l.appendRows(entries, func(e Entry) bool {
		k := l.key(e.Email)
		if _, dup := l.set[k]; dup || seen[k] {
			return false
		}
		seen[k] = true
		return true
	}, func(e *Entry, line int) []string {
		if e.At.IsZero() {
			e.At = now
		}
		e.At = e.At.UTC().Truncate(time.Second)
		e.Campaign, e.Detail = merge.OneLine(e.Campaign), merge.OneLine(e.Detail)
		e.Line = line
		return []string{e.Email, string(e.Reason), e.At.Format(time.RFC3339), e.Campaign, e.Detail}
	})
	return len(added), err
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

// Remove drops every line of the addresses addrs from the file and returns
// how many it dropped; 0, and the file untouched, when none is in it. The
// file is rewritten once, atomically: a copy without those lines, with the
// file's permissions, fsynced and renamed over it, under the lock. Every
// other line is kept byte for byte; blank lines just before a dropped line
// go with it.
func (l *List) Remove(addrs ...string) (int, error) {
	want := make(map[uint64]bool, len(addrs))
	for _, a := range addrs {
		want[l.key(a)] = true
	}
	return l.remove(func(e Entry) bool { return want[l.key(e.Email)] })
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
