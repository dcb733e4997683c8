package campaign

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"errors"
	"io"
	"maps"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// The hostile campaign uses every field of the list in every context a
// value can reach: the To name, the subject, the preheader, an extra
// header field, the unsubscribe URL's query, the body's text, emphasis,
// a code span, a heading, a table cell, a link's path, query and
// fragment, a remote image's path, the layout's text and an href's query,
// and the attachments column.
const hostileCampaign = `name = "hostile"
from = "News <news@example.org>"
subject = "News for {{.name}} in {{.city}}"
preheader = "{{.city}} and {{.note}}"
template = "t.md"
layout = "layout.html"
recipients = "r.csv"

[columns]
attachments = "files"

[headers]
X-City = "{{.city}}"

[unsubscribe]
url = "https://unsub.example.org/u?e={{.email}}&n={{.note}}"
`

const hostileTemplate = `# Hello {{.name}}

Welcome to *{{.city}}*, ` + "`{{.note}}`" + `, **{{.name}}**.

See [the map](https://example.org/map/{{.city}}?n={{.note}}#{{.name}}) and
<https://example.org/a/{{.note}}>.

![photo](https://img.example.org/{{.city}}.png)

| who | where |
|-----|-------|
| {{.name}} | {{.city}} |

- {{.note}}

[Unsubscribe]({{unsubscribe}})
`

const hostileLayout = `<!DOCTYPE html>
<html><head><title>{{.Subject}}</title></head>
<body><p>{{.Preheader}}</p>{{.Body}}
<p><a href="https://example.org/profile?c={{.Fields.city}}">{{.Fields.name}}</a></p>
<p><a href="{{.Unsubscribe}}">unsubscribe</a></p></body></html>
`

// hostileFiles are the files a row may attach, by name and content.
var hostileFiles = map[string]string{
	"files/a.txt": "attachment a\n",
	"files/b.txt": "attachment b\n",
}

// FuzzHostileList feeds arbitrary values, through a real CSV file, to a
// campaign that uses each field in every context, and checks that no value
// changes a message's structure: it has exactly the expected header fields,
// each once; one recipient, the row's; the same MIME parts as a harmless
// row; links and images only to the template's hosts; and only files of
// the attachments directory attached. A row the values make unsendable is a
// problem of the campaign, and then nothing is sent.
func FuzzHostileList(f *testing.F) {
	for _, s := range []string{
		"Ada", "管理员", "*Bob* <script>x</script> [x](javascript:alert(1))", "x\r\nBcc: evil@example.org",
		"=?utf-8?b?SGk=?=", `"quoted" \ back`, "\ue000616263\ue001", "%EE%80%80616263%EE%80%81",
		".evil.com", "@evil.com", "//evil.com", "evil.com/", ":8080", "../../etc/passwd", "files/a.txt",
		"files/../r.csv", "c.toml", ".batch/x", "files/a.txt;files/b.txt", "<https://evil.example>",
		"www.evil.example", "a\x00b\x1bc", "\u202eevil", "| a | b |\n|---|---|", "    code\n\n# heading",
		"&amp; &lt;b&gt;", "https://evil.example/x", "{{.email}}", "\r\n.\r\nMAIL FROM:<x@evil.com>",
	} {
		f.Add(s, "Paris", "note", "files/a.txt")
		f.Add("Ada", s, "note", "")
		f.Add("Ada", "Paris", s, "files/b.txt")
		f.Add("Ada", "Paris", "note", s)
	}
	dir := f.TempDir()
	files := map[string]string{"c.toml": hostileCampaign, "t.md": hostileTemplate, "layout.html": hostileLayout}
	for k, v := range hostileFiles {
		files[k] = v
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	list := filepath.Join(dir, "r.csv")
	send := func(t *testing.T, name, city, note, attach string) (*recorder, error) {
		var b bytes.Buffer
		w := csv.NewWriter(&b)
		w.Write([]string{"email", "name", "city", "note", "files"})
		w.Write([]string{"ada@example.org", name, city, note, attach})
		w.Flush()
		if err := os.WriteFile(list, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(filepath.Join(dir, "c.toml"))
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		rec := &recorder{}
		_, err = c.Send(context.Background(), rec.open, Options{Now: now})
		return rec, err
	}
	// What a harmless row gives, with an attachment and without: a
	// message with attachments is a multipart/mixed around the rest.
	baselines := map[bool]messageShape{}
	for _, attach := range []string{"", "files/a.txt"} {
		rec, err := send(&testing.T{}, "Ada", "Paris", "note", attach)
		if err != nil || len(rec.msgs) != 1 {
			f.Fatalf("the harmless row: %v, %d messages", err, len(rec.msgs))
		}
		baselines[attach != ""] = shapeOf(f, rec.msgs[0].Data)
	}
	if b := baselines[true]; len(b.attached) != 1 || len(b.urls) < 6 || !slices.Contains(b.fields, "X-City") {
		f.Fatalf("the harmless row's message: %d attachments, URLs %q, fields %v", len(b.attached), b.urls, b.fields)
	}

	f.Fuzz(func(t *testing.T, name, city, note, attach string) {
		for _, v := range []string{name, city, note, attach} {
			if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
				t.Skip("the CSV reader refuses text that is not UTF-8, and a NUL")
			}
		}
		rec, err := send(t, name, city, note, attach)
		if err != nil {
			var probs Problems
			if !errors.As(err, &probs) {
				t.Fatalf("Send: %v (%T), want the campaign's Problems", err, err)
			}
			if len(rec.msgs) != 0 {
				t.Fatalf("Send found problems (%v) but sent %d messages", err, len(rec.msgs))
			}
			return
		}
		if len(rec.msgs) != 1 {
			t.Fatalf("%d messages for one row", len(rec.msgs))
		}
		m := rec.msgs[0]
		if m.To != "ada@example.org" {
			t.Fatalf("envelope recipient %q", m.To)
		}
		got := shapeOf(t, m.Data)
		baseline := baselines[len(got.attached) > 0]
		if !slices.Equal(got.fields, baseline.fields) {
			t.Errorf("header fields %v, want %v", got.fields, baseline.fields)
		}
		if len(got.to) != 1 || got.to[0] != "ada@example.org" {
			t.Errorf("To holds %v, want ada@example.org alone", got.to)
		}
		if !slices.Equal(got.parts, baseline.parts) {
			t.Errorf("MIME parts %v, want %v", got.parts, baseline.parts)
		}
		for _, u := range got.urls {
			if !allowedURL(u) {
				t.Errorf("the HTML links to %q", u)
			}
		}
		for _, a := range got.attached {
			if !slices.Contains(slices.Collect(maps.Values(hostileFiles)), a) {
				t.Errorf("attached %q, not a file of files/", a)
			}
		}
	})
}

// messageShape is what no value may change: header field names in order,
// the addresses of To, the tree of parts (attachments left out, as their
// number is the row's), the URLs of the HTML, and the attachments' bytes.
type messageShape struct {
	fields   []string
	to       []string
	parts    []string
	urls     []string
	attached []string
}

var urlAttr = regexp.MustCompile(`(?i)\s(?:href|src)\s*=\s*"([^"]*)"`)

// shapeOf parses data with the standard library's parsers, not batch's.
func shapeOf(t testing.TB, data []byte) messageShape {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the message doesn't parse: %v", err)
	}
	var s messageShape
	head, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(head), "\r\n") {
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name, _, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("header line %q has no colon", line)
		}
		s.fields = append(s.fields, name)
	}
	to, err := msg.Header.AddressList("To")
	if err != nil {
		t.Fatalf("To: %v", err)
	}
	for _, a := range to {
		s.to = append(s.to, a.Address)
	}
	var walk func(h map[string][]string, body io.Reader, depth int)
	walk = func(h map[string][]string, body io.Reader, depth int) {
		ctype, params, err := mime.ParseMediaType(first(h["Content-Type"]))
		if err != nil {
			t.Fatalf("Content-Type %q: %v", first(h["Content-Type"]), err)
		}
		disposition, _, _ := mime.ParseMediaType(first(h["Content-Disposition"]))
		content, err := io.ReadAll(decoder(first(h["Content-Transfer-Encoding"]), body))
		if err != nil {
			t.Fatalf("a %s part doesn't decode: %v", ctype, err)
		}
		if disposition == "attachment" {
			s.attached = append(s.attached, string(content))
			return
		}
		s.parts = append(s.parts, strings.Repeat(" ", depth)+ctype)
		if ctype == "text/html" {
			for _, m := range urlAttr.FindAllStringSubmatch(string(content), -1) {
				s.urls = append(s.urls, m[1])
			}
		}
		if !strings.HasPrefix(ctype, "multipart/") {
			return
		}
		r := multipart.NewReader(bytes.NewReader(content), params["boundary"])
		for {
			p, err := r.NextRawPart()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatalf("%s: %v", ctype, err)
			}
			walk(p.Header, p, depth+1)
		}
	}
	walk(msg.Header, msg.Body, 0)
	return s
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func decoder(cte string, r io.Reader) io.Reader {
	switch strings.ToLower(cte) {
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, r)
	}
	return r
}

// allowedURL tells whether an href or src of the HTML goes where the
// template and layout say: one of their hosts, over https, or a cid: image.
func allowedURL(raw string) bool {
	raw = strings.ReplaceAll(raw, "&amp;", "&")
	if strings.HasPrefix(raw, "cid:") {
		return true
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Port() != "" {
		return false
	}
	switch u.Host {
	case "example.org", "img.example.org", "unsub.example.org":
		return true
	}
	return false
}
