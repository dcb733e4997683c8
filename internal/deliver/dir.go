package deliver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/batch-mailer/batch/internal/render"
)

// Dir writes each message as an .eml file (RFC 5322 bytes, CRLF line ends)
// named after the recipient's place in the list and address, so that ls
// lists the files in list order: 0000001-ada@example.org.eml.
//
// A file is written under a temporary name and renamed into place, so that
// a crash never leaves a half-written .eml; temporary files left by a
// killed run are removed by the next.
type Dir struct {
	path   string
	opened bool
}

var _ Sender = (*Dir)(nil)

const tmpPrefix = ".batch-tmp-"

// NewDir returns a Sender that writes into the directory path, created
// when the first message is written.
func NewDir(path string) *Dir { return &Dir{path: path} }

// open creates the directory if needed and clears what an interrupted run
// left in it.
func (d *Dir) open() error {
	if err := os.MkdirAll(d.path, 0o755); err != nil {
		return fmt.Errorf("dry-run directory: %w", err)
	}
	stale, err := filepath.Glob(filepath.Join(d.path, tmpPrefix+"*"))
	if err != nil {
		return err
	}
	for _, f := range stale {
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("removing a temporary file of an earlier run: %w", err)
		}
	}
	d.opened = true
	return nil
}

// FileName returns the name of m's file.
func FileName(m *render.Message) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@.+-_", r) {
			return r
		}
		return '_'
	}, m.To)
	return fmt.Sprintf("%07d-%s.eml", m.Seq, safe)
}

// Send writes m to its file, and tells t before it returns.
func (d *Dir) Send(ctx context.Context, m *render.Message, t Tracker) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !d.opened {
		if err := d.open(); err != nil {
			return err
		}
	}
	name := filepath.Join(d.path, FileName(m))
	f, err := os.CreateTemp(d.path, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	_, err = f.Write(m.Data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", name, err)
	}
	t.Done(nil)
	return nil
}

// Close flushes the directory's entries to disk.
func (d *Dir) Close() error {
	if !d.opened {
		return nil
	}
	f, err := os.Open(d.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", d.path, err)
	}
	return nil
}
