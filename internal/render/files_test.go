package render

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// TestRecipientCacheConcurrent: renderers on every core share the cache
// (run with -race); every file comes back whole, and the bounds hold.
func TestRecipientCacheConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 40
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.txt", i)), bytes.Repeat([]byte("x"), 2000+i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := newPartCache("example.org", fileRules{}, fileRules{}, newRecipientFiles(dir))
	c.maxBytes, c.maxEntries = 10_000, 4
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for k := range 200 {
				i := (g*7 + k*3) % n
				name := fmt.Sprintf("f%02d.txt", i)
				if _, err := c.size(name); err != nil {
					errs <- err
					return
				}
				p, err := c.getNamed(name)
				if err == nil && p.size != int64(2000+i) {
					err = fmt.Errorf("%s: %d bytes, want %d", name, p.size, 2000+i)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c.recent.Len() > c.maxEntries || len(c.byName) != c.recent.Len() {
		t.Errorf("%d entries (%d by name), bound %d", c.recent.Len(), len(c.byName), c.maxEntries)
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

// opens counts the files a directory opens.
type opens struct {
	anywhere
	n int
}

func (o *opens) OpenFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	o.n++
	return o.anywhere.OpenFile(name, flag, perm)
}

// TestNeverOpened: a pipe, a device, a directory or a file over the limit
// is refused by its stat, before it is opened (a pipe's open waits for a
// writer, a device's may do anything) or read.
func TestNeverOpened(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.bin")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 300<<20); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		kind error
	}{{fifo, ErrNotRegular}, {"/dev/zero", ErrNotRegular}, {dir, ErrNotRegular}, {big, nil}} {
		d := &opens{}
		err := finishes(t, func() error {
			_, err := (&fileRules{limit: 25_000_000}).read(d, tt.path, tt.path)
			return err
		})
		var se *SizeError
		switch {
		case d.n != 0:
			t.Errorf("%s: opened", tt.path)
		case tt.kind != nil && !errors.Is(err, tt.kind):
			t.Errorf("%s: %v, want %v", tt.path, err, tt.kind)
		case tt.kind == nil && (!errors.As(err, &se) || se.Size != 300<<20 || se.Grew):
			t.Errorf("%s: %v, want 300 MiB over the limit, by its size", tt.path, err)
		}
	}
}

// TestMessageLimitBeforeRead: a message whose files come to more than
// the message limit is refused by their sizes: the recipient's files are
// not read (none is in the cache).
func TestMessageLimitBeforeRead(t *testing.T) {
	f := newFixture(t)
	f.file("files/a.bin", bytes.Repeat([]byte("a"), 6000))
	f.file("files/b.bin", bytes.Repeat([]byte("b"), 6000))
	f.file("logo.png", testPNG)
	opts := dkimOptions(f.dir, nil)
	opts.DKIM = nil
	opts.Files = Files{Dir: filepath.Join(f.dir, "files")}
	opts.MessageLimit = 12_000
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	in := &Input{To: opts.From, Subject: "s", Markdown: []byte("![logo](logo.png)\n"), Attachments: []string{"a.bin", "b.bin"}}
	_, err = r.Render(in)
	var se *SizeError
	if !errors.As(err, &se) || se.Path != "" || se.Size != 12_000+int64(len(testPNG)) || se.Limit != 12_000 {
		t.Fatalf("got %v, want the message's files, 12000 bytes and the image's, over 12000", err)
	}
	if n := len(r.parts.byName); n != 0 {
		t.Errorf("%d of the recipient's files read", n)
	}
	// One of them is within the limit, and attached.
	in.Attachments = in.Attachments[:1]
	m, err := r.Render(in)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(m.Data, []byte(`filename="a.bin"`)) {
		t.Error("a.bin is not attached")
	}
}
