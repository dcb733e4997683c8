package deliver

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/batch-mailer/batch/internal/render"
)

func TestDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "out")
	d := NewDir(path)
	if err := d.Close(); err != nil {
		t.Fatalf("Close before any message: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the directory was made before a message was written (%v)", err)
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
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"0000002-a@example.org.eml", "0000010-b_c@example.org.eml"}
	if !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v (sorted as the list is)", names, want)
	}
	data, err := os.ReadFile(filepath.Join(path, want[1]))
	if err != nil || string(data) != "second\r\n" {
		t.Errorf("file content %q, %v", data, err)
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
