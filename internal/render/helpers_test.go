package render

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/templates"
)

// testPNG is a real 1x1 PNG.
var testPNG, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")

// fixture is a campaign directory with a template's images and attachments.
type fixture struct {
	t   *testing.T
	dir string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return &fixture{t: t, dir: t.TempDir()}
}

// file writes a file under the fixture and returns its path.
func (f *fixture) file(name string, data []byte) string {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// renderer returns a Renderer for the fixture with the given attachments.
func (f *fixture) renderer(attachments ...string) *Renderer {
	f.t.Helper()
	return f.rendererWith(func(o *Options) { o.Attachments = attachments })
}

// rendererWith returns a Renderer for the fixture with its options changed
// by set.
func (f *fixture) rendererWith(set func(*Options)) *Renderer {
	f.t.Helper()
	opts := Options{
		Campaign:     "test-campaign",
		From:         mail.Address{Name: "Python爱好者", Address: "news@example.org"},
		ReplyTo:      &mail.Address{Name: "Team, Support", Address: "team@example.org"},
		TemplateName: filepath.Join(f.dir, "template.md"),
		ImageDir:     f.dir,
		LayoutName:   "built-in layout",
		Layout:       templates.DefaultLayout,
		Date:         time.Unix(1764000000, 0).UTC(),
	}
	set(&opts)
	r, err := New(opts)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// merged executes a body template with fields, as the campaign does.
func merged(t testing.TB, body string, fields map[string]string) []byte {
	t.Helper()
	tmpl, err := merge.ParseBody("template.md", body)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, fields); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// node is a parsed MIME part: its media type, parameters, headers and, for a
// leaf, its decoded body.
type node struct {
	ctype    string
	params   map[string]string
	header   map[string][]string
	children []*node
	body     []byte
}

func (n *node) shape() string {
	if len(n.children) == 0 {
		return n.ctype
	}
	var parts []string
	for _, c := range n.children {
		parts = append(parts, c.shape())
	}
	return n.ctype + "[" + strings.Join(parts, " ") + "]"
}

// find returns the leaves of type ctype, depth first.
func (n *node) find(ctype string) []*node {
	if len(n.children) == 0 {
		if n.ctype == ctype {
			return []*node{n}
		}
		return nil
	}
	var out []*node
	for _, c := range n.children {
		out = append(out, c.find(ctype)...)
	}
	return out
}

// parse parses a message with Go's net/mail and mime/multipart, which share
// no code with how it was written.
func parse(t testing.TB, data []byte) (*mail.Message, *node) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("net/mail can't read the message: %v", err)
	}
	return msg, parsePart(t, msg.Header, msg.Body)
}

func parsePart(t testing.TB, h map[string][]string, body io.Reader) *node {
	t.Helper()
	ctype := mail.Header(h).Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		t.Fatalf("Content-Type %q: %v", ctype, err)
	}
	n := &node{ctype: mt, params: params, header: h}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", mt, err)
			}
			n.children = append(n.children, parsePart(t, p.Header, p))
		}
		return n
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	switch cte := strings.ToLower(mail.Header(h).Get("Content-Transfer-Encoding")); cte {
	case "quoted-printable":
		n.body, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw)))
	case "base64":
		n.body, err = io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(raw)))
	default:
		t.Fatalf("%s: unexpected Content-Transfer-Encoding %q", mt, cte)
	}
	if err != nil {
		t.Fatalf("%s: decoding body: %v", mt, err)
	}
	return n
}

// decodeHeader decodes RFC 2047 encoded-words.
func decodeHeader(t testing.TB, s string) string {
	t.Helper()
	d, err := new(mime.WordDecoder).DecodeHeader(s)
	if err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	return d
}

// checkLines fails unless every line of data is ASCII, ends in CRLF and is
// at most max octets (headers) or 998 (body).
func checkLines(t testing.TB, data []byte, headerMax int) {
	t.Helper()
	if i := bytes.IndexFunc(data, func(r rune) bool { return r > 127 }); i >= 0 {
		t.Errorf("non-ASCII byte at offset %d", i)
	}
	inHeader := true
	for i, line := range bytes.Split(data, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Errorf("line %d has a bare CR or LF: %q", i+1, line)
		}
		if len(line) == 0 {
			inHeader = false
		}
		limit := 998
		if inHeader {
			limit = headerMax
		}
		if len(line) > limit {
			t.Errorf("line %d is %d octets (limit %d): %.80q…", i+1, len(line), limit, line)
		}
	}
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		t.Error("the message does not end in CRLF")
	}
}
