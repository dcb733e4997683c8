package deliver

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/batch-mailer/batch/internal/render"
)

func TestDir(t *testing.T) {
	for _, portable := range []bool{false, true} {
		t.Run(map[bool]string{false: "linked", true: "renamed"}[portable], func(t *testing.T) {
			testDir(t, portable)
		})
	}
}

// testDir writes two messages, one over an earlier run's file, either the
// system's fast way or the portable way.
func testDir(t *testing.T, portable bool) {
	path := filepath.Join(t.TempDir(), "a", "out")
	d := NewDir(path)
	if err := d.Close(); err != nil {
		t.Fatalf("Close before any message: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the directory was made before a message was written (%v)", err)
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	earlier := filepath.Join(path, "0000002-a@example.org.eml")
	if err := os.WriteFile(earlier, []byte("an earlier run's, longer than the new\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.open(); err != nil {
		t.Fatal(err)
	}
	switch {
	case portable:
		d.link.close()
		d.link = nil
	case runtime.GOOS == "linux" && d.link == nil:
		t.Fatal("no linker on Linux")
	}
	msgs := []*render.Message{
		{Seq: 10, To: "b/c@example.org", Data: []byte("second\r\n")},
		{Seq: 2, To: "a@example.org", Data: []byte("first\r\n")},
	}
	for _, m := range msgs {
		if err := d.Send(context.Background(), m, DoneFunc(func(error) {})); err != nil {
			t.Fatal(err)
		}
	}
	link := d.link
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if link != nil && link.count() != 2 {
		if link.off.Load() {
			t.Skip("this filesystem has no O_TMPFILE: the portable way was taken")
		}
		t.Errorf("%d files linked, want all 2", link.count())
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if info, err := e.Info(); err != nil || info.Mode().Perm()&0o044 != 0o044 {
			t.Errorf("%s: mode %v (%v), want readable by all as a created file is", e.Name(), info.Mode(), err)
		}
	}
	want := []string{"0000002-a@example.org.eml", "0000010-b_c@example.org.eml"}
	if !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v (sorted as the list is, no temporary file left)", names, want)
	}
	for i, content := range []string{"first\r\n", "second\r\n"} {
		data, err := os.ReadFile(filepath.Join(path, want[i]))
		if err != nil || string(data) != content {
			t.Errorf("%s: content %q, %v; want %q", want[i], data, err, content)
		}
	}
}

func TestDirRemovesStaleTemporaryFiles(t *testing.T) {
	path := t.TempDir()
	stale := filepath.Join(path, tmpPrefix+"123")
	if err := os.WriteFile(stale, []byte("half a mess"), 0o644); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(path, "notes.txt")
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := NewDir(path)
	if err := d.Send(context.Background(), &render.Message{Seq: 1, To: "a@example.org", Data: []byte("x")}, DoneFunc(func(error) {})); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("a killed run's temporary file is still there")
	}
	if _, err := os.Stat(keep); err != nil {
		t.Error("a file that is not batch's was removed")
	}
}

func TestDirCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := NewDir(t.TempDir())
	if err := d.Send(ctx, &render.Message{Seq: 1, To: "a@example.org", Data: []byte("x")}, DoneFunc(func(error) {})); err == nil {
		t.Error("Send after cancel wrote a file")
	}
}

func TestDirDiscard(t *testing.T) {
	path := t.TempDir()
	other := filepath.Join(path, "0000005-someone@example.org.eml") // not this run's
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := NewDir(path)
	for _, seq := range []int{1, 63, 64, 130} {
		if err := d.Send(context.Background(), &render.Message{Seq: seq, To: "a@example.org", Data: []byte("x")}, DoneFunc(func(error) {})); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(path); len(entries) != 5 {
		t.Fatalf("%d files before Discard, want 5", len(entries))
	}
	if err := d.Discard(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(path)
	if len(entries) != 1 || entries[0].Name() != filepath.Base(other) {
		t.Errorf("after Discard: %v, want only the file this run didn't write", entries)
	}
}
