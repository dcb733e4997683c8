package render

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/merge"
)

// inspected is what testdata/emlinspect.py reports of one message: Python's
// email package (policy=default) reading it, an independent parser.
type inspected struct {
	File          string          `json:"file"`
	Defects       []string        `json:"defects"`
	Headers       [][2]string     `json:"headers"`
	RawHeaderLine int             `json:"raw_header_lines"`
	RawMaxLine    int             `json:"raw_max_line"`
	NonASCII      bool            `json:"non_ascii_raw"`
	CRLF          bool            `json:"crlf"`
	From          []pyAddress     `json:"from"`
	To            []pyAddress     `json:"to"`
	ReplyTo       []pyAddress     `json:"reply_to"`
	Cc            []pyAddress     `json:"cc"`
	Bcc           []pyAddress     `json:"bcc"`
	Subject       string          `json:"subject"`
	MessageID     string          `json:"message_id"`
	Tree          json.RawMessage `json:"tree"`
}

type pyAddress struct{ Name, Addr string }

type pyPart struct {
	Type        string   `json:"type"`
	Children    []pyPart `json:"children"`
	Charset     *string  `json:"charset"`
	Disposition *string  `json:"disposition"`
	Filename    *string  `json:"filename"`
	ContentID   *string  `json:"content_id"`
	SHA256      string   `json:"sha256"`
	Text        *string  `json:"text"`
}

func (p pyPart) shape() string {
	if len(p.Children) == 0 {
		return p.Type
	}
	var s []string
	for _, c := range p.Children {
		s = append(s, c.shape())
	}
	return p.Type + "[" + strings.Join(s, " ") + "]"
}

func (p pyPart) leaves() []pyPart {
	if len(p.Children) == 0 {
		return []pyPart{p}
	}
	var out []pyPart
	for _, c := range p.Children {
		out = append(out, c.leaves()...)
	}
	return out
}

func python(t *testing.T) string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("no python3: the independent parser check needs Python's email package")
	return ""
}

// TestPythonParsesEveryMessage renders a campaign of awkward recipients and
// has Python's email package read every message: no defect anywhere, and
// names, subject, parts and file names decode to exactly what was meant.
func TestPythonParsesEveryMessage(t *testing.T) {
	py := python(t)
	f := newFixture(t)
	f.file("img/logo.png", testPNG)
	f.file("img/icon.png", append(append([]byte{}, testPNG...), 1, 2, 3))
	attachment := []byte("%PDF-1.4 schedule")
	pdf := f.file("活动日程 (final).pdf", attachment)
	r := f.renderer(pdf)

	names := []string{
		"管理员",
		"Python爱好者",
		"张三, 市场部",
		"😀 Emoji Name 🐍",
		strings.Repeat("龙", 120),
		"*Bob* <script>x</script> [x](javascript:alert(1))",
		"Eve\r\nBcc: someone@example.org",
		`O"Brien \ back`,
		"=?utf-8?b?SGk=?=",
		"Ada Lovelace",
		"",
		"Ünïcödé, Name; (comment) <not@addr>",
	}
	subject, err := merge.ParseLine("subject", "来自SMTP的问候……{{.name}}")
	if err != nil {
		t.Fatal(err)
	}
	body := "![logo](img/logo.png)\n\n# Hi {{.name}}\n\n![icon](img/icon.png) and again ![logo](img/logo.png)\n\n[site](https://example.org/?n={{.name}})\n"
	dir := t.TempDir()
	var files []string
	want := map[string]string{} // file → the name it should decode to
	for i, name := range names {
		fields := map[string]string{"name": name, "email": fmt.Sprintf("r%d@example.com", i)}
		subj, err := subject.Line(fields)
		if err != nil {
			t.Fatal(err)
		}
		m, err := r.Render(&Input{Seq: i + 1, To: mail.Address{Name: name, Address: fields["email"]},
			Subject: subj, Markdown: merged(t, body, fields), Fields: fields})
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		p := filepath.Join(dir, fmt.Sprintf("%02d.eml", i))
		if err := os.WriteFile(p, m.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
		want[p] = merge.OneLine(name)
	}
	out, err := exec.Command(py, append([]string{"testdata/emlinspect.py"}, files...)...).Output()
	if err != nil {
		t.Fatalf("emlinspect.py: %v", err)
	}
	var got []inspected
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(files) {
		t.Fatalf("%d reports for %d files", len(got), len(files))
	}
	sum := sha256.Sum256(attachment)
	for _, msg := range got {
		name := want[msg.File]
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			if len(msg.Defects) > 0 {
				t.Errorf("Python found defects:\n%s", strings.Join(msg.Defects, "\n"))
			}
			// Lines past 78 octets only for a long name (see address).
			limit := 78
			if len(name) > 40 {
				limit = 998
			}
			if msg.NonASCII || !msg.CRLF || msg.RawHeaderLine > limit || msg.RawMaxLine > 998 {
				t.Errorf("raw form: non-ASCII %v, CRLF %v, longest header line %d, longest line %d",
					msg.NonASCII, msg.CRLF, msg.RawHeaderLine, msg.RawMaxLine)
			}
			if len(msg.From) != 1 || msg.From[0] != (pyAddress{"Python爱好者", "news@example.org"}) {
				t.Errorf("From %+v", msg.From)
			}
			if len(msg.To) != 1 || msg.To[0].Name != name || !strings.HasSuffix(msg.To[0].Addr, "@example.com") {
				t.Errorf("To %+v, want exactly %q", msg.To, name)
			}
			if len(msg.ReplyTo) != 1 || msg.ReplyTo[0] != (pyAddress{"Team, Support", "team@example.org"}) {
				t.Errorf("Reply-To %+v", msg.ReplyTo)
			}
			if len(msg.Cc)+len(msg.Bcc) > 0 {
				t.Errorf("Cc %v, Bcc %v", msg.Cc, msg.Bcc)
			}
			if msg.Subject != "来自SMTP的问候……"+name {
				t.Errorf("Subject %q", msg.Subject)
			}
			var tree pyPart
			if err := json.Unmarshal(msg.Tree, &tree); err != nil {
				t.Fatal(err)
			}
			const shape = "multipart/mixed[multipart/alternative[text/plain multipart/related[text/html image/png image/png]] application/pdf]"
			if tree.shape() != shape {
				t.Fatalf("structure %s", tree.shape())
			}
			leaves := tree.leaves()
			text, html, logo, icon, att := leaves[0], leaves[1], leaves[2], leaves[3], leaves[4]
			if text.Text == nil || !strings.Contains(strings.Join(strings.Fields(*text.Text), " "), "Hi "+name) {
				t.Errorf("the text part does not greet %q", name)
			}
			if html.Text == nil {
				t.Fatal("no HTML text")
			}
			for _, img := range []pyPart{logo, icon} {
				if img.Disposition == nil || *img.Disposition != "inline" || img.ContentID == nil {
					t.Errorf("image %v: not an inline part with a Content-ID", img.Filename)
					continue
				}
				cid := strings.Trim(*img.ContentID, "<>")
				if !strings.Contains(*html.Text, `src="cid:`+cid+`"`) {
					t.Errorf("the HTML does not use image %s", cid)
				}
			}
			if att.Filename == nil || *att.Filename != "活动日程 (final).pdf" || *att.Disposition != "attachment" || att.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("attachment %+v", att)
			}
		})
	}
	// A byte-for-byte check that Go's own parser agrees on one message.
	data, _ := os.ReadFile(files[0])
	if _, root := parse(t, data); !bytes.Contains(root.find("text/plain")[0].body, []byte("Hi 管理员")) {
		t.Error("net/mail and Python disagree on the text part")
	}
}
