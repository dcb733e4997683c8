package deliver

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"time"

	"github.com/batch-mailer/batch/internal/render"
)

// Mbox writes every message into one mbox file, in the order given, for
// mutt, neomutt, aerc or mail -f to open as a folder. The format is mboxrd:
// each message starts with a "From sender date" line (the envelope sender,
// the message's Date in UTC, as asctime writes it), a line of the message
// that starts with ">From " or "From " after any number of '>' gets one
// more '>' (so that reading undoes it exactly), and an empty line ends each
// message. Lines end in LF, as local mailboxes do; mail tools write CRLF
// again when they send a message on.
//
// Like a Dir, it never leaves a half-written file under its name: the
// messages go to a temporary file beside it, renamed into place at Close;
// one left by a killed run is removed by the next.
type Mbox struct {
	path string
	f    *os.File // the temporary file, nil until the first message
	w    *bufio.Writer
	err  error // the first write's error: the file is unusable after it
	done bool  // closed: renamed into place, or removed
}

var _ Sender = (*Mbox)(nil)

// NewMbox returns a Sender that writes the mbox file path, created or
// replaced at Close. Its directory must exist, and path be no directory:
// an error says so at once, before any message is rendered.
func NewMbox(path string) (*Mbox, error) {
	dir := filepath.Dir(path)
	if info, err := os.Stat(dir); err != nil || !info.IsDir() {
		return nil, fmt.Errorf("mbox %s: no directory %s: create it first", path, dir)
	}
	if info, err := os.Stat(path); err == nil && !info.Mode().IsRegular() {
		return nil, fmt.Errorf("mbox %s: not a file: name a file, which batch creates or replaces", path)
	}
	return &Mbox{path: path}, nil
}

// tmpPattern names the temporary files of path, for os.CreateTemp and
// filepath.Glob.
func (b *Mbox) tmpPattern() string {
	return tmpPrefix + filepath.Base(b.path) + "-*"
}

func (b *Mbox) open() error {
	dir := filepath.Dir(b.path)
	stale, err := filepath.Glob(filepath.Join(dir, b.tmpPattern()))
	if err != nil {
		return err
	}
	for _, f := range stale {
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("removing a temporary file of an earlier run: %w", err)
		}
	}
	f, err := os.CreateTemp(dir, b.tmpPattern())
	if err != nil {
		return fmt.Errorf("mbox %s: %w", b.path, err)
	}
	b.f, b.w = f, bufio.NewWriterSize(f, 256<<10)
	return nil
}

// Send appends m to the file; t hears at once.
func (b *Mbox) Send(ctx context.Context, m *render.Message, t Tracker) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.err != nil {
		return b.err
	}
	if b.f == nil {
		if err := b.open(); err != nil {
			b.err = err
			return err
		}
	}
	if err := t.Start(); err != nil {
		t.Done(err)
		return nil
	}
	t.Begun()
	if err := writeMbox(b.w, m); err != nil {
		b.err = fmt.Errorf("writing %s: %w", b.path, err)
	}
	t.Done(b.err)
	return nil
}

// fromLine is the line that starts m in an mbox: its envelope sender and
// its Date (the time 0 if it has none batch can read), in UTC.
func fromLine(m *render.Message) string {
	var when time.Time
	if msg, err := mail.ReadMessage(bytes.NewReader(m.Data)); err == nil {
		if d, err := msg.Header.Date(); err == nil {
			when = d
		}
	}
	from := m.From
	if from == "" {
		from = "MAILER-DAEMON"
	}
	return "From " + from + " " + when.UTC().Format(time.ANSIC) + "\n"
}

// writeMbox writes m as one mboxrd message: its From line, its lines with
// LF ends and From quoted, and the empty line that ends it.
func writeMbox(w *bufio.Writer, m *render.Message) error {
	w.WriteString(fromLine(m))
	data := m.Data
	for len(data) > 0 {
		line := data
		rest := []byte(nil)
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, rest = data[:i], data[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if quoted := bytes.TrimLeft(line, ">"); bytes.HasPrefix(quoted, []byte("From ")) {
			w.WriteByte('>')
		}
		w.Write(line)
		w.WriteByte('\n')
		data = rest
	}
	_, err := w.WriteString("\n")
	return err
}

// Close flushes the file to disk and renames it into place. A run that
// wrote no message writes no file.
func (b *Mbox) Close() error {
	if b.f == nil || b.done {
		return b.err
	}
	b.done = true
	err := b.err
	if err == nil {
		err = b.w.Flush()
	}
	if err == nil {
		err = b.f.Sync()
	}
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(b.f.Name(), b.path)
	}
	if err != nil {
		os.Remove(b.f.Name())
		if b.err == nil {
			b.err = fmt.Errorf("writing %s: %w", b.path, err)
		}
		return b.err
	}
	// The rename is durable once the directory is.
	if d, err := os.Open(filepath.Dir(b.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Discard removes the file this run wrote, after Close: a dry run that
// found a problem leaves no mbox behind.
func (b *Mbox) Discard() error {
	if b.f == nil {
		return nil
	}
	if !b.done {
		b.done = true
		b.f.Close()
		return os.Remove(b.f.Name())
	}
	if b.err != nil { // nothing was renamed
		return nil
	}
	if err := os.Remove(b.path); err != nil {
		return fmt.Errorf("removing %s: %w", b.path, err)
	}
	return nil
}
