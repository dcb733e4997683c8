package campaign

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batch-mailer/batch/internal/render"
)

// attachmentCase is a campaign whose one row names files in its "files"
// column.
type attachmentCase struct {
	row   string            // the row's files column
	top   string            // campaign file lines before [columns] (after minimal)
	cols  string            // lines in [columns] after attachments = "files"
	tail  string            // tables after [columns]
	files map[string]string // besides list.csv and news.md
	setup func(t *testing.T, dir string)
	body  string // the template; "Hi {{.name}}\n" if empty
}

// attachmentTop is where the campaign file's keys after minimal start.

// campaign writes the case's campaign and loads it.
func (ac attachmentCase) campaign(t *testing.T) *Campaign {
	t.Helper()
	files := map[string]string{
		"list.csv": "email,name,files\nada@example.org,Ada," + ac.row + "\n",
		"news.md":  "Hi {{.name}}\n",
	}
	if ac.body != "" {
		files["news.md"] = ac.body
	}
	for k, v := range ac.files {
		files[k] = v
	}
	files["c.toml"] = minimal + ac.top + "[columns]\nattachments = \"files\"\n" + ac.cols + ac.tail
	dir := writeFiles(t, files)
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o755); err != nil {
		t.Fatal(err)
	}
	if ac.setup != nil {
		ac.setup(t, dir)
	}
	c, err := Load(filepath.Join(dir, "c.toml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// checkFinishes runs Check, failing the test if it never returns (a pipe
// opened for reading waits for a writer forever).
func checkFinishes(t *testing.T, c *Campaign) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.Check(context.Background(), Options{Now: now})
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("check never finished: it waits on a file")
		return nil
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := unix.Mkfifo(path, 0o644); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
}

// sparse makes a file of size bytes that takes no room on the disk.
func sparse(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// TestRecipientAttachmentRefused: a row names a file it must never see,
// and check says so, naming the row and what to do, without reading it
// or waiting on it.
func TestRecipientAttachmentRefused(t *testing.T) {
	testKeys(t)
	key := pemOf(t, edKey, "pkcs8")
	dkimAt := func(path string) string { return dkimTable("example.org", "sel", path) }
	tests := []struct {
		name string
		attachmentCase
		kind error    // errors.Is
		want []string // in the problem, in this order
	}{
		{"symbolic link to /etc/passwd", attachmentCase{row: "files/pw", setup: func(t *testing.T, dir string) {
			symlink(t, "/etc/passwd", filepath.Join(dir, "files", "pw"))
		}}, render.ErrOutside, []string{"files/pw: not in the directory of the recipients' files: a symbolic link to /etc/passwd: a row attaches only the files in ", "/files/ ([columns] attachments_dir): move it there"}},
		{"symbolic link out, two levels up", attachmentCase{row: "files/sub/x", files: map[string]string{"secret.txt": "s3cret", "files/sub/ok.txt": "ok"}, setup: func(t *testing.T, dir string) {
			symlink(t, "../../secret.txt", filepath.Join(dir, "files", "sub", "x"))
		}}, render.ErrOutside, []string{"files/sub/x: not in the directory of the recipients' files: a symbolic link to ", "secret.txt"}},
		{"the list", attachmentCase{row: "list.csv"}, render.ErrOutside,
			[]string{`column "files": "list.csv": not in the directory of the recipients' files (`, "/files/): a row attaches only the files in it ([columns] attachments_dir), so move it there"}},
		{"the campaign file", attachmentCase{row: "c.toml"}, render.ErrOutside, []string{`"c.toml": not in the directory`}},
		{"the DKIM key beside the campaign", attachmentCase{row: "dkim.pem", tail: dkimAt("dkim.pem"), files: map[string]string{"dkim.pem": key}},
			render.ErrOutside, []string{`"dkim.pem": not in the directory`}},
		{"the DKIM key in files/", attachmentCase{row: "files/dkim.pem", tail: dkimAt("files/dkim.pem"), files: map[string]string{"files/dkim.pem": key}},
			render.ErrPrivate, []string{"files/dkim.pem: one of the campaign's own files: it is ", "a row never attaches the list, the campaign file or the DKIM key"}},
		{"the list, attachments_dir the campaign's", attachmentCase{row: "list.csv", cols: "attachments_dir = \".\"\n"},
			render.ErrPrivate, []string{"list.csv: one of the campaign's own files: it is "}},
		{"the campaign file, attachments_dir the campaign's", attachmentCase{row: "c.toml", cols: "attachments_dir = \".\"\n"},
			render.ErrPrivate, []string{"c.toml: one of the campaign's own files: it is "}},
		{"a link to the DKIM key", attachmentCase{row: "files/k.pem", tail: dkimAt("dkim.pem"), cols: "attachments_dir = \".\"\n", files: map[string]string{"dkim.pem": key}, setup: func(t *testing.T, dir string) {
			symlink(t, "../dkim.pem", filepath.Join(dir, "files", "k.pem"))
		}}, render.ErrPrivate, []string{"k.pem: one of the campaign's own files"}},
		{"a hard link to the list", attachmentCase{row: "files/copy.csv", setup: func(t *testing.T, dir string) {
			if err := os.Link(filepath.Join(dir, "list.csv"), filepath.Join(dir, "files", "copy.csv")); err != nil {
				t.Fatal(err)
			}
		}}, render.ErrPrivate, []string{"copy.csv: one of the campaign's own files"}},
		{"a hard link into .batch", attachmentCase{row: "files/j", files: map[string]string{".batch/x.journal": "state"}, setup: func(t *testing.T, dir string) {
			if err := os.Link(filepath.Join(dir, ".batch", "x.journal"), filepath.Join(dir, "files", "j")); err != nil {
				t.Fatal(err)
			}
		}}, render.ErrPrivate, []string{"files/j: one of the campaign's own files: it is ", ".batch/x.journal"}},
		{".batch", attachmentCase{row: ".batch/x", files: map[string]string{".batch/x": "state"}}, render.ErrOutside, []string{`".batch/x": not in the directory`}},
		{".batch, attachments_dir the campaign's", attachmentCase{row: ".batch/x", cols: "attachments_dir = \".\"\n", files: map[string]string{".batch/x": "state"}},
			render.ErrHidden, []string{".batch/x: a hidden file (a name that starts with a dot): batch never attaches one"}},
		{"a link into .batch", attachmentCase{row: "files/j", cols: "attachments_dir = \".\"\n", files: map[string]string{".batch/x": "state"}, setup: func(t *testing.T, dir string) {
			symlink(t, "../.batch/x", filepath.Join(dir, "files", "j"))
		}}, render.ErrHidden, []string{"files/j: a hidden file (a name that starts with a dot): a symbolic link to "}},
		{"a hidden file", attachmentCase{row: "files/.hidden", files: map[string]string{"files/.hidden": "h"}}, render.ErrHidden,
			[]string{"files/.hidden: a hidden file", "rename it without the leading dot"}},
		{"in a hidden directory", attachmentCase{row: "files/.git/config", files: map[string]string{"files/.git/config": "[core]"}}, render.ErrHidden, []string{"files/.git/config: a hidden file"}},
		{"a link to a hidden file", attachmentCase{row: "files/pub", files: map[string]string{"files/.secret/key": "k"}, setup: func(t *testing.T, dir string) {
			symlink(t, ".secret/key", filepath.Join(dir, "files", "pub"))
		}}, render.ErrHidden, []string{"files/pub: a hidden file (a name that starts with a dot): a symbolic link to "}},
		{"a link to /dev/zero", attachmentCase{row: "files/zero", setup: func(t *testing.T, dir string) {
			symlink(t, "/dev/zero", filepath.Join(dir, "files", "zero"))
		}}, render.ErrOutside, []string{"files/zero: not in the directory of the recipients' files: a symbolic link to /dev/zero"}},
		{"a named pipe", attachmentCase{row: "files/fifo", setup: func(t *testing.T, dir string) {
			mkfifo(t, filepath.Join(dir, "files", "fifo"))
		}}, render.ErrNotRegular, []string{"files/fifo: a named pipe (FIFO), not a regular file: name a regular file"}},
		{"a link to a named pipe", attachmentCase{row: "files/p", setup: func(t *testing.T, dir string) {
			mkfifo(t, filepath.Join(dir, "files", "fifo"))
			symlink(t, "fifo", filepath.Join(dir, "files", "p"))
		}}, render.ErrNotRegular, []string{"files/p: a named pipe (FIFO), not a regular file"}},
		{"a directory", attachmentCase{row: "files/sub", files: map[string]string{"files/sub/x.txt": "x"}}, render.ErrNotRegular, []string{"files/sub: a directory, not a regular file"}},
		{"an absolute path", attachmentCase{row: "/etc/passwd"}, render.ErrOutside, []string{`"/etc/passwd": not in the directory`}},
		{"a missing file", attachmentCase{row: "files/gone.pdf"}, fs.ErrNotExist, []string{"files/gone.pdf: no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.campaign(t)
			err := checkFinishes(t, c)
			p := problemsOf(t, err)
			if len(p) != 1 {
				t.Fatalf("%d problems, want 1:\n%v", len(p), err)
			}
			if !errors.Is(p[0], tt.kind) {
				t.Errorf("%v\nis not %v", p[0], tt.kind)
			}
			says(t, p[0], append(tt.want, "(in the message to row 1, ")...)
		})
	}
}

// says checks that err's message says each of want, in that order.
func says(t *testing.T, err error, want ...string) {
	t.Helper()
	msg := err.Error()
	rest := msg
	for _, w := range want {
		i := strings.Index(rest, filepath.FromSlash(w))
		if i < 0 {
			t.Errorf("the problem says\n\t%s\nwant it to say %q (after %q)", msg, w, strings.Join(want, "…"))
			return
		}
		rest = rest[i+len(w):]
	}
}

// TestAttachmentsDir: [columns] attachments_dir is a directory of its own,
// and must be there when the list has an attachments column.
func TestAttachmentsDir(t *testing.T) {
	tests := []struct {
		name, cols string
		want       []string
	}{
		{"missing", "", []string{"c.toml:8: columns.attachments: ", "/files: no such directory: the files the \"files\" column names are kept there; make it, or name another with [columns] attachments_dir"}},
		{"missing, named", "attachments_dir = \"tickets\"\n", []string{"c.toml:9: columns.attachments_dir: ", "/tickets: no such directory"}},
		{"a file", "attachments_dir = \"news.md\"\n", []string{"c.toml:9: columns.attachments_dir: ", "/news.md is not a directory"}},
		{"in .batch", "attachments_dir = \".batch/files\"\n", []string{"c.toml:9: columns.attachments_dir: ", "/.batch/files is in .batch, batch's run state, which is never attached"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{
				"list.csv":          "email,name,files\nada@example.org,Ada,\n",
				".batch/files/x":    "x",
				".batch/.gitignore": "*\n",
			}
			_, _, err := load(t, minimal+"[limits]\n[columns]\nattachments = \"files\"\n"+tt.cols, files)
			p := problemsOf(t, err)
			if len(p) != 1 {
				t.Fatalf("%d problems, want 1:\n%v", len(p), err)
			}
			says(t, p[0], tt.want...)
		})
	}
	// Without an attachments column, no directory is needed.
	if _, _, err := load(t, minimal+"[columns]\nattachments_dir = \"tickets\"\n", nil); err != nil {
		t.Errorf("a directory no column uses: %v", err)
	}
}

// TestAttachmentNotRegular: the files the campaign names itself, its
// attachments and the template's images, are held to the same rules:
// no pipe or device is opened, and check finishes.
func TestAttachmentNotRegular(t *testing.T) {
	tests := []struct {
		name string
		attachmentCase
		want []string
	}{
		{"a named pipe attached to every message", attachmentCase{top: "attachments = [\"files/fifo\"]\n", setup: func(t *testing.T, dir string) {
			mkfifo(t, filepath.Join(dir, "files", "fifo"))
		}}, []string{"c.toml:6: attachment ", "/files/fifo: a named pipe (FIFO), not a regular file: name a regular file"}},
		{"/dev/zero attached to every message", attachmentCase{top: "attachments = [\"/dev/zero\"]\n"}, []string{"c.toml:6: attachment /dev/zero: a character device, not a regular file: name a regular file"}},
		{"a named pipe as an image", attachmentCase{body: "![logo](logo.png)\n", setup: func(t *testing.T, dir string) {
			mkfifo(t, filepath.Join(dir, "logo.png"))
		}}, []string{`news.md:1: image "logo.png": `, "/logo.png: a named pipe (FIFO), not a regular file: name a regular file (in the message to row 1, "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkFinishes(t, tt.campaign(t))
			p := problemsOf(t, err)
			if len(p) != 1 || !errors.Is(p[0], render.ErrNotRegular) {
				t.Fatalf("got %v\nwant one problem, not a regular file", err)
			}
			says(t, p[0], tt.want...)
		})
	}
}

// TestAttachmentTooBig: a file over [limits] attachment, or a message's
// files over [limits] message, is a problem found by the files' sizes,
// before they are read: the 300 MB file here is sparse, and reading it
// would take a second and the memory of the whole file.
func TestAttachmentTooBig(t *testing.T) {
	big := func(name string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) { sparse(t, filepath.Join(dir, filepath.FromSlash(name)), 300<<20) }
	}
	kb := strings.Repeat("x", 6000)
	tests := []struct {
		name string
		attachmentCase
		size, limit int64 // of the SizeError
		want        []string
	}{
		{"a row's file", attachmentCase{row: "files/big.bin", setup: big("files/big.bin")}, 300 << 20, 25_000_000,
			[]string{"attachment ", "/files/big.bin: 300 MiB, more than the limit of 25 MB for a file: raise [limits] attachment in ", "c.toml, or send a link to it instead (in the message to row 1, "}},
		{"a row's file, the limit raised", attachmentCase{row: "files/big.bin", top: "[limits]\nattachment = \"100MiB\"\n", setup: big("files/big.bin")}, 300 << 20, 100 << 20,
			[]string{"/files/big.bin: 300 MiB, more than the limit of 100 MiB for a file: raise [limits] attachment in ", "c.toml:7, or send a link to it instead (in the message to row 1"}},
		{"an attachment of every message", attachmentCase{top: "attachments = [\"files/big.bin\"]\n", setup: big("files/big.bin")}, 300 << 20, 25_000_000,
			[]string{"c.toml:6: attachment ", "/files/big.bin: 300 MiB, more than the limit of 25 MB for a file: raise [limits] attachment in "}},
		{"an image", attachmentCase{body: "![x](big.png)\n", setup: big("big.png")}, 300 << 20, 25_000_000,
			[]string{`news.md:1: image "big.png": `, "/big.png: 300 MiB, more than the limit of 25 MB for a file: raise [limits] attachment in ", "(in the message to row 1, "}},
		{"a message's files together", attachmentCase{row: "files/a.txt;files/b.txt", top: "[limits]\nmessage = \"10KB\"\n",
			files: map[string]string{"files/a.txt": kb, "files/b.txt": kb}}, 12000, 10_000,
			[]string{"the message's images and attachments come to 12 KB, more than the limit of 10 KB for a message: raise [limits] message in ", "c.toml:7, or attach fewer or smaller files (in the message to row 1, "}},
		{"with the campaign's attachment", attachmentCase{row: "files/b.txt", top: "attachments = [\"files/a.txt\"]\n[limits]\nmessage = \"10KB\"\n",
			files: map[string]string{"files/a.txt": kb, "files/b.txt": kb}}, 12000, 10_000,
			[]string{"the message's images and attachments come to 12 KB, more than the limit of 10 KB for a message", "(in the message to row 1, "}},
		{"the campaign's attachments alone", attachmentCase{top: "attachments = [\"files/a.txt\", \"files/b.txt\"]\n[limits]\nmessage = \"10KB\"\n",
			files: map[string]string{"files/a.txt": kb, "files/b.txt": kb}}, 12000, 10_000,
			[]string{"c.toml:6: the message's images and attachments come to 12 KB, more than the limit of 10 KB for a message: raise [limits] message in ", "c.toml:8, or attach fewer or smaller files"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkFinishes(t, tt.campaign(t))
			p := problemsOf(t, err)
			var se *render.SizeError
			if len(p) != 1 || !errors.As(p[0], &se) {
				t.Fatalf("got %v\nwant one problem of size", err)
			}
			if se.Size != tt.size || se.Limit != tt.limit || se.Grew {
				t.Errorf("%+v: want %d bytes against %d, found by size", se, tt.size, tt.limit)
			}
			says(t, p[0], tt.want...)
		})
	}
}

// TestRecipientAttachmentIntact: the files a row may name arrive byte for
// byte, by a link inside the directory too, beside the campaign's own.
func TestRecipientAttachmentIntact(t *testing.T) {
	ticket := make([]byte, 100_000)
	if _, err := rand.Read(ticket); err != nil {
		t.Fatal(err)
	}
	ac := attachmentCase{
		row:   "files/ticket.bin; files/same.bin;files/sub/../notes.txt",
		top:   "attachments = [\"files/notes.txt\"]\n",
		files: map[string]string{"files/ticket.bin": string(ticket), "files/notes.txt": "bring a pen\n", "files/sub/x": ""},
		setup: func(t *testing.T, dir string) { symlink(t, "ticket.bin", filepath.Join(dir, "files", "same.bin")) },
	}
	c := ac.campaign(t)
	rec := &recorder{}
	if _, err := c.Send(context.Background(), rec.open, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	if len(rec.msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(rec.msgs))
	}
	got := attachedFiles(t, rec.msgs[0].Data)
	want := []struct{ name, data string }{
		{"notes.txt", "bring a pen\n"}, {"ticket.bin", string(ticket)}, {"same.bin", string(ticket)}, {"notes.txt", "bring a pen\n"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d attachments, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].name != w.name || got[i].data != w.data {
			t.Errorf("attachment %d: %q, %d bytes; want %q, %d bytes as on disk", i, got[i].name, len(got[i].data), w.name, len(w.data))
		}
	}
}

// attachedFiles decodes a message's attachments: file names and contents.
func attachedFiles(t *testing.T, data []byte) []struct{ name, data string } {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var out []struct{ name, data string }
	for {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if part.FileName() == "" {
			continue // the alternative
		}
		if enc := part.Header.Get("Content-Transfer-Encoding"); enc != "base64" {
			t.Fatalf("%s: %s, want base64", part.FileName(), enc)
		}
		b, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, part))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, struct{ name, data string }{part.FileName(), string(b)})
	}
}
