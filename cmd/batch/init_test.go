package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestRefuseExisting: each path in the way is an fs.ErrExist, and one that
// is not a regular file says what it is.
func TestRefuseExisting(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "campaign.toml")
	sub := filepath.Join(dir, "files")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	err := refuseExisting([]string{file, sub, filepath.Join(dir, "new.md")})
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("got %v, want an fs.ErrExist", err)
	}
	var ee existsError
	if !errors.As(err, &ee) || ee.kind != "a directory" {
		t.Fatalf("got %v, want an existsError for a directory", err)
	}
	want := []string{
		"init: " + file + ": file already exists",
		"init: " + sub + ": exists (a directory)",
		"init: batch init overwrites nothing, so it wrote no file: give it a new directory (batch init DIR), or move those aside",
	}
	probs, ok := err.(interface{ Unwrap() []error })
	if !ok || len(probs.Unwrap()) != len(want) {
		t.Fatalf("got %v, want %d problems", err, len(want))
	}
	for i, p := range probs.Unwrap() {
		if p.Error() != want[i] {
			t.Errorf("problem %d: got %q, want %q", i, p, want[i])
		}
	}
	if err := refuseExisting([]string{filepath.Join(dir, "new.md")}); err != nil {
		t.Errorf("a path not there: got %v, want nil", err)
	}
}
