package deliver

import (
	"context"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/batch-mailer/batch/internal/render"
)

// Dir writes each message as an .eml file (RFC 5322 bytes, CRLF line ends)
// named after the recipient's place in the list and address, so that ls
// lists the files in list order: 0000001-ada@example.org.eml.
//
// A file appears under its name only once complete, so that a crash never
// leaves a half-written .eml: on Linux it is made nameless and linked into
// place (see linker); elsewhere it is written under a temporary name and
// renamed, and temporary files left by a killed run are removed by the
// next. A few goroutines write at once: a file costs a handful of system
// calls, and they overlap.
type Dir struct {
	path    string
	opened  bool
	link    *linker // nil: the portable way
	jobs    chan dirJob
	wg      sync.WaitGroup
	mu      sync.Mutex
	err     error
	written []uint64 // a bit per row written, for Discard: 125 KB a million
}

type dirJob struct {
	m *render.Message
	t Tracker
}

var _ Sender = (*Dir)(nil)

const (
	tmpPrefix  = ".batch-tmp-"
	dirWriters = 4
)

// NewDir returns a Sender that writes into the directory path, created
// when the first message is written.
func NewDir(path string) *Dir { return &Dir{path: path} }

// open creates the directory if needed, clears what an interrupted run
// left in it, and starts the writers.
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
	d.link = newLinker(d.path)
	d.jobs = make(chan dirJob, dirWriters)
	for range dirWriters {
		d.wg.Add(1)
		go d.writer(d.jobs)
	}
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

// Send queues m to be written; t hears when it is.
func (d *Dir) Send(ctx context.Context, m *render.Message, t Tracker) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.failed(); err != nil {
		return err
	}
	if !d.opened {
		if err := d.open(); err != nil {
			return err
		}
	}
	d.jobs <- dirJob{m: m, t: t}
	return nil
}

func (d *Dir) writer(jobs <-chan dirJob) {
	defer d.wg.Done()
	for j := range jobs {
		if err := j.t.Start(); err != nil {
			j.t.Done(err)
			continue
		}
		j.t.Begun()
		err := d.write(j.m)
		if err != nil {
			d.mu.Lock()
			if d.err == nil {
				d.err = err
			}
			d.mu.Unlock()
		}
		j.t.Done(err)
	}
}

func (d *Dir) write(m *render.Message) error {
	base, tmp := FileName(m), tmpPrefix+strconv.Itoa(m.Seq)
	done, err := d.link.write(base, tmp, m.Data)
	if !done {
		err = writeRename(filepath.Join(d.path, base), filepath.Join(d.path, tmp), m.Data)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Join(d.path, base), err)
	}
	d.mu.Lock()
	if i := m.Seq / 64; i >= len(d.written) {
		d.written = append(d.written, make([]uint64, i+1-len(d.written))...)
	}
	d.written[m.Seq/64] |= 1 << (m.Seq % 64)
	d.mu.Unlock()
	return nil
}

// writeRename writes data under the name tmp and renames it to name.
func writeRename(name, tmp string, data []byte) error {
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func (d *Dir) failed() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Close waits for the files queued, and flushes the directory's entries to
// disk.
func (d *Dir) Close() error {
	if !d.opened {
		return nil
	}
	if d.jobs != nil {
		close(d.jobs)
		d.jobs = nil
		d.wg.Wait()
		d.link.close()
		d.link = nil
	}
	if err := d.failed(); err != nil {
		return err
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

// Discard removes the files this run wrote, after Close: a dry run that
// found a problem leaves nothing behind.
func (d *Dir) Discard() error {
	for i, word := range d.written {
		for ; word != 0; word &= word - 1 {
			seq := i*64 + bits.TrailingZeros64(word)
			names, err := filepath.Glob(filepath.Join(d.path, fmt.Sprintf("%07d-*.eml", seq)))
			if err != nil {
				return err
			}
			for _, n := range names {
				if err := os.Remove(n); err != nil {
					return err
				}
			}
		}
	}
	d.written = nil
	return nil
}
