package deliver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/render"
)

// mboxMessages are messages whose lines an mbox must quote: "From " at a
// line's start, already quoted, and a '>' that quotes nothing.
func mboxMessages() []*render.Message {
	msg := func(date, body string) []byte {
		return []byte(strings.ReplaceAll("From: News <news@example.org>\nTo: a@example.org\nDate: "+date+"\nSubject: s\n\n"+body, "\n", "\r\n"))
	}
	return []*render.Message{
		{Seq: 1, From: "bounces@example.org", To: "a@example.org", Data: msg("Mon, 24 Nov 2025 17:00:00 +0100",
			"From here on, a line an mbox reader would take for a new message.\n>From quoted once\n>>From twice\n> From no quote\nFrom\nend\n")},
		{Seq: 2, From: "bounces@example.org", To: "b@example.org", Data: msg("Thu, 01 Jan 1970 00:00:00 +0000", "second\n\nFrom the last line")},
	}
}

// pythonMbox reads the mbox at path with Python's mailbox.mbox, an
// independent reader, and returns each message's From line and bytes as
// the file holds them.
func pythonMbox(t *testing.T, path string) (from []string, msgs [][]byte) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3: the independent mbox reader is Python's mailbox module")
	}
	script := `import json, mailbox, sys
out = []
box = mailbox.mbox(sys.argv[1], create=False)
for key in box.iterkeys():
    out.append({"from": box[key].get_from(), "bytes": box.get_bytes(key).decode("latin-1")})
json.dump(out, sys.stdout)
`
	out, err := exec.Command(py, "-c", script, path).Output()
	if err != nil {
		t.Fatalf("python3 reading %s: %v", path, err)
	}
	var got []struct{ From, Bytes string }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	for _, g := range got {
		from = append(from, g.From)
		msgs = append(msgs, []byte(g.Bytes))
	}
	return from, msgs
}

// unquoteMboxrd undoes mboxrd's quoting, as a reader of mboxrd does:
// Python's mbox leaves the '>' in.
func unquoteMboxrd(b []byte) []byte {
	lines := bytes.SplitAfter(b, []byte("\n"))
	for i, l := range lines {
		if bytes.HasPrefix(bytes.TrimLeft(l, ">"), []byte("From ")) && l[0] == '>' {
			lines[i] = l[1:]
		}
	}
	return bytes.Join(lines, nil)
}

func TestMbox(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.mbox")
	if err := os.WriteFile(path, []byte("an earlier run's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, tmpPrefix+"out.mbox-123")
	if err := os.WriteFile(stale, []byte("a killed run's"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := newMbox(t, path)
	msgs := mboxMessages()
	var done []error
	for _, m := range msgs {
		if err := b.Send(context.Background(), m, DoneFunc(func(err error) { done = append(done, err) })); err != nil {
			t.Fatal(err)
		}
	}
	if len(done) != len(msgs) || errors.Join(done...) != nil {
		t.Fatalf("outcomes %v, want %d successes", done, len(msgs))
	}
	if got, _ := os.ReadFile(path); string(got) != "an earlier run's\n" {
		t.Fatalf("the mbox was replaced before Close: %q", got)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a killed run's temporary file is still there (%v)", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files beside the mbox after Close: %v", entries)
	}

	from, got := pythonMbox(t, path)
	if len(got) != len(msgs) {
		t.Fatalf("python read %d messages, want %d", len(got), len(msgs))
	}
	wantFrom := []string{"bounces@example.org Mon Nov 24 16:00:00 2025", "bounces@example.org Thu Jan  1 00:00:00 1970"}
	for i, m := range msgs {
		if from[i] != wantFrom[i] {
			t.Errorf("message %d: From line %q, want %q", i+1, from[i], wantFrom[i])
		}
		want := bytes.ReplaceAll(m.Data, []byte("\r\n"), []byte("\n"))
		if !bytes.HasSuffix(want, []byte("\n")) {
			want = append(want, '\n') // an mbox line ends in LF
		}
		if g := unquoteMboxrd(got[i]); !bytes.Equal(g, want) {
			t.Errorf("message %d reads back as\n%s\nwant\n%s", i+1, g, want)
		}
	}
	if !bytes.Contains(got[0], []byte("\n>From here on, a line")) || !bytes.Contains(got[0], []byte("\n>>From quoted once\n>>>From twice\n> From no quote\nFrom\n")) {
		t.Errorf("the lines that look like From lines are not quoted as mboxrd says:\n%s", got[0])
	}

	// A second run that finds a problem takes its mbox back.
	b = newMbox(t, path)
	if err := b.Send(context.Background(), msgs[0], DoneFunc(func(error) {})); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Discard(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("Discard left %v", entries)
	}
}

// TestMboxDiscardBeforeClose takes back a file never put in place: the
// earlier mbox stays, and no temporary file does.
func TestMboxDiscardBeforeClose(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.mbox")
	if err := os.WriteFile(path, []byte("an earlier run's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := newMbox(t, path)
	if err := b.Send(context.Background(), mboxMessages()[0], DoneFunc(func(error) {})); err != nil {
		t.Fatal(err)
	}
	if err := b.Discard(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "an earlier run's\n" {
		t.Errorf("the earlier mbox is now %q", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files left: %v", entries)
	}
}

// TestMboxNoMessage writes no file for a run with nothing to write.
func TestMboxNoMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.mbox")
	b := newMbox(t, path)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("an mbox was written with no message (%v)", err)
	}
}

func newMbox(t *testing.T, path string) *Mbox {
	t.Helper()
	b, err := NewMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMboxBadPath names the path and what to do.
func TestMboxBadPath(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing", "out.mbox"), "no directory " + filepath.Join(dir, "missing") + ": create it first"},
		{dir, "not a file: name a file"},
	} {
		_, err := NewMbox(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming it and %q", tc.path, err, tc.want)
		}
	}
}
