package render

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// swapped is a directory whose files were replaced after their stat: Stat
// tells of a small regular file, whatever the file is when opened.
type swapped struct{ small fs.FileInfo }

func (s swapped) Stat(string) (fs.FileInfo, error) { return s.small, nil }
func (swapped) OpenFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	return os.OpenFile(name, flag, perm)
}

// finishes runs f, failing the test if it never returns.
func finishes(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("never finished: it waits on a file")
		return nil
	}
}

func TestReadSwappedFile(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small.txt")
	if err := os.WriteFile(small, []byte("ok"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(small)
	if err != nil {
		t.Fatal(err)
	}
	d := swapped{st}
	t.Run("for a pipe", func(t *testing.T) {
		// Opened without O_NONBLOCK, a pipe with no writer waits forever;
		// its own stat, once open, refuses it.
		fifo := filepath.Join(dir, "fifo")
		if err := unix.Mkfifo(fifo, 0o644); err != nil {
			t.Skipf("no named pipes here: %v", err)
		}
		err := finishes(t, func() error {
			_, err := (&fileRules{limit: 100}).read(d, fifo, fifo)
			return err
		})
		var fe *FileError
		if !errors.As(err, &fe) || !errors.Is(err, ErrNotRegular) || fe.Path != fifo {
			t.Errorf("got %v, want %s: not a regular file", err, fifo)
		}
	})
	t.Run("for a larger file", func(t *testing.T) {
		big := filepath.Join(dir, "big.bin")
		if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 1000), 0o644); err != nil {
			t.Fatal(err)
		}
		// Past the stat, the open file's stat still finds it.
		_, err := (&fileRules{limit: 100}).read(d, big, big)
		var se *SizeError
		if !errors.As(err, &se) || se.Size != 1000 || se.Limit != 100 || se.Grew {
			t.Errorf("got %v, want 1000 bytes against 100, by the open file's size", err)
		}
	})
	t.Run("for a file that grows as it is read", func(t *testing.T) {
		// /proc files tell a size of 0 and hold more: the read stops
		// one byte past the limit.
		const self = "/proc/self/status"
		pst, err := os.Stat(self)
		if err != nil || pst.Size() != 0 {
			t.Skip("no /proc here")
		}
		_, err = (&fileRules{limit: 10}).read(anywhere{}, self, self)
		var se *SizeError
		if !errors.As(err, &se) || !se.Grew || se.Size != 11 || se.Limit != 10 {
			t.Errorf("got %v (%+v), want a file that grew past 10 bytes, read to 11", err, se)
		}
		if !strings.Contains(err.Error(), "grew past the limit of 10 bytes for a file while it was read") {
			t.Errorf("the problem says %q", err)
		}
	})
}

// TestRecipientCacheBounded: the recipients' files kept stay within the
// cache's bounds however many distinct files the list names, and a file
// dropped is read again, whole.
func TestRecipientCacheBounded(t *testing.T) {
	dir := t.TempDir()
	const n = 50
	for i := range n {
		data := bytes.Repeat([]byte{byte('a' + i%26)}, 3000+i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.txt", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := newPartCache("example.org", fileRules{}, fileRules{}, newRecipientFiles(dir))
	c.maxBytes, c.maxEntries = 20_000, 8 // about 4 of the files, by bytes
	largest := int64(0)
	for round := range 2 {
		for i := range n {
			name := fmt.Sprintf("f%02d.txt", i)
			p, err := c.getNamed(name)
			if err != nil {
				t.Fatal(err)
			}
			if p.size != int64(3000+i) || p.filename != name {
				t.Fatalf("round %d: %s: %d bytes, named %q", round, name, p.size, p.filename)
			}
			largest = max(largest, int64(len(p.body)+len(p.inlineHead)+len(p.attachedHead)+len(name)+256))
			if c.bytes > c.maxBytes+largest || c.recent.Len() > c.maxEntries || len(c.byName) != c.recent.Len() {
				t.Fatalf("after %s: %d bytes in %d entries (%d by name), bounds %d and %d", name, c.bytes, c.recent.Len(), len(c.byName), c.maxBytes, c.maxEntries)
			}
		}
	}
	var sum int64
	for e := c.recent.Front(); e != nil; e = e.Next() {
		sum += e.Value.(*cacheEntry).cost
	}
	if sum != c.bytes || c.recent.Len() < 2 {
		t.Errorf("%d entries of %d bytes, counted %d", c.recent.Len(), sum, c.bytes)
	}
	// The most recent is kept: its size comes without a stat.
	if err := os.Remove(filepath.Join(dir, fmt.Sprintf("f%02d.txt", n-1))); err != nil {
		t.Fatal(err)
	}
	if size, err := c.size(fmt.Sprintf("f%02d.txt", n-1)); err != nil || size != 3000+n-1 {
		t.Errorf("the last file: %d, %v; want %d bytes, kept", size, err, 3000+n-1)
	}
	// The first was dropped: looked at again.
	if err := os.Remove(filepath.Join(dir, "f00.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.size("f00.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the first file, removed: %v, want no such file", err)
	}
}

// TestRecipientFilesRoot: a name is opened through an os.Root of the
// directory, which refuses what where's look missed: here, a link made
// to lead out after where looked.
func TestRecipientFilesRoot(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "files")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "secret.txt"), []byte("s3cret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret.txt", filepath.Join(dir, "x")); err != nil {
		t.Fatal(err)
	}
	rf := newRecipientFiles(dir)
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	data, err := (&fileRules{}).read(root, rf.path("x"), "x") // as after where passed
	if err == nil || bytes.Contains(data, []byte("s3cret")) {
		t.Errorf("read a link out of the root: %q, %v", data, err)
	}
	if err := rf.where("x"); !errors.Is(err, ErrOutside) {
		t.Errorf("where: %v, want outside", err)
	}
}
