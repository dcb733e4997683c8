package render

import (
	"bytes"
	"errors"
	"fmt"
	htmlpkg "html"
	"mime"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/merge"
)

func TestStructure(t *testing.T) {
	f := newFixture(t)
	f.file("logo.png", testPNG)
	pdf := f.file("日程 安排.pdf", []byte("%PDF-1.4 test"))
	tests := []struct {
		name        string
		body        string
		attachments []string
		want        string
	}{
		{"text only", "Hello", nil, "multipart/alternative[text/plain text/html]"},
		{"image", "![logo](logo.png)", nil, "multipart/alternative[text/plain multipart/related[text/html image/png]]"},
		{"attachment", "Hello", []string{pdf}, "multipart/mixed[multipart/alternative[text/plain text/html] application/pdf]"},
		{"both", "![logo](logo.png)", []string{pdf},
			"multipart/mixed[multipart/alternative[text/plain multipart/related[text/html image/png]] application/pdf]"},
		{"remote image only", "![x](https://example.org/x.png)", nil, "multipart/alternative[text/plain text/html]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.renderer(tt.attachments...)
			m, err := r.Render(&Input{Seq: 1, To: mail.Address{Address: "a@example.com"}, Subject: "s", Markdown: []byte(tt.body)})
			if err != nil {
				t.Fatal(err)
			}
			_, root := parse(t, m.Data)
			if got := root.shape(); got != tt.want {
				t.Errorf("structure\n got %s\nwant %s", got, tt.want)
			}
			checkLines(t, m.Data, 78)
		})
	}
}

func TestImages(t *testing.T) {
	f := newFixture(t)
	f.file("img/logo.png", testPNG)
	f.file("other.png", append(append([]byte{}, testPNG...), 0))
	r := f.renderer()
	body := "![one](img/logo.png) ![two](img/logo.png) ![three](other.png)\n\n" +
		"![remote](https://cdn.example.org/a.png) ![pixel](https://t.example.org/p.gif?u={{.email}})"
	md := merged(t, body, map[string]string{"email": "a+b&c@example.com"})
	m, err := r.Render(&Input{Seq: 1, To: mail.Address{Address: "a+b&c@example.com"}, Subject: "s", Markdown: md})
	if err != nil {
		t.Fatal(err)
	}
	_, root := parse(t, m.Data)
	images := root.find("image/png")
	if len(images) != 2 {
		t.Fatalf("%d image parts, want 2 (the same file twice is one part)", len(images))
	}
	html := string(root.find("text/html")[0].body)
	for _, img := range images {
		cid := strings.Trim(mail.Header(img.header).Get("Content-ID"), "<>")
		if !strings.Contains(html, `src="cid:`+cid+`"`) {
			t.Errorf("no <img src=\"cid:%s\"> in the HTML", cid)
		}
		if d := mail.Header(img.header).Get("Content-Disposition"); !strings.HasPrefix(d, "inline") {
			t.Errorf("image Content-Disposition %q, want inline", d)
		}
		if !bytes.Equal(img.body, testPNG) && !bytes.Equal(img.body, append(append([]byte{}, testPNG...), 0)) {
			t.Error("an image part's bytes are not the file's")
		}
	}
	if !strings.Contains(html, `src="https://cdn.example.org/a.png"`) {
		t.Error("the remote image was changed")
	}
	src := regexp.MustCompile(`src="(https://t\.example\.org/[^"]*)"`).FindStringSubmatch(html)
	if src == nil {
		t.Fatalf("no tracking pixel in %s", html)
	}
	u, err := url.Parse(strings.ReplaceAll(src[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Query().Get("u"); got != "a+b&c@example.com" {
		t.Errorf("pixel query u=%q, want the address back", got)
	}
}

func TestImageErrors(t *testing.T) {
	f := newFixture(t)
	r := f.renderer()
	tests := []struct{ name, body, want string }{
		{"missing", "![x](nope.png)", "nope.png"},
		{"value picks a local file", "![x]({{.v}})", "never choose a local file"},
		{"value picks a host", "![x](https://{{.v}}/a.png)", "never choose a local file or a host"},
		{"value in raw HTML", `<img src="{{.v}}">`, "inside raw HTML"},
		{"value in inline raw HTML", `Hi <span title="{{.v}}">x</span>`, "inside raw HTML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := merged(t, tt.body, map[string]string{"v": "/etc/passwd"})
			_, err := r.Render(&Input{Seq: 1, To: mail.Address{Address: "a@example.com"}, Subject: "s", Markdown: md})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one that says %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "template.md") {
				t.Errorf("error %q does not name the template", err)
			}
		})
	}
}

// TestInert renders hostile values into every context a template offers and
// checks that none of them changes the message's markup, links or headers.
func TestInert(t *testing.T) {
	hostile := "*Bob* <script>x</script> [x](javascript:alert(1)) \r\nBcc: evil@example.org\n\n# h <b>&amp;</b> `c` https://evil.example.com www.evil.example"
	f := newFixture(t)
	r := f.renderer()
	body := "# Hi {{.v}}\n\n" +
		"Text {{.v}} and *emph {{.v}}* and `code {{.v}}`.\n\n" +
		"[link {{.v}}](https://example.org/p?x={{.v}}) and <https://example.org/a/{{.v}}>\n\n" +
		"![alt {{.v}}](https://example.org/i.png?{{.v}} \"title {{.v}}\")\n\n" +
		"- item {{.v}}\n\n| a | b |\n|---|---|\n| {{.v}} | x |\n\n" +
		"<div align=\"center\"><b>raw html by the author</b></div>\n"
	fields := map[string]string{"v": hostile}
	md := merged(t, body, fields)
	m, err := r.Render(&Input{Seq: 1, To: mail.Address{Name: hostile, Address: "to@example.com"},
		Subject: "s " + hostile, Markdown: md, Headers: []Field{{"X-Note", hostile}}})
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, m.Data, 78)
	msg, root := parse(t, m.Data)
	if bcc := msg.Header.Get("Bcc"); bcc != "" {
		t.Errorf("a value added Bcc: %q", bcc)
	}
	to, err := msg.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "to@example.com" {
		t.Fatalf("To = %v, %v; want exactly to@example.com", to, err)
	}
	html := string(root.find("text/html")[0].body)
	if strings.Contains(html, "<script") || strings.Contains(html, "javascript:") && strings.Contains(html, `href="javascript:`) {
		t.Errorf("a value became live HTML:\n%s", html)
	}
	// Every tag in the body is one the template wrote.
	tags := regexp.MustCompile(`<(/?[a-z0-9]+)`).FindAllStringSubmatch(html[strings.Index(html, "<body"):], -1)
	allowed := map[string]bool{}
	for _, tag := range strings.Fields("body /body table /table tr /tr td /td h1 /h1 p /p em /em code /code a /a img ul /ul li /li thead /thead tbody /tbody th /th div /div b /b /html") {
		allowed[tag] = true
	}
	for _, tag := range tags {
		if !allowed[tag[1]] {
			t.Errorf("unexpected tag <%s> in the HTML body", tag[1])
		}
	}
	// Links: the author's two, plus none from values.
	hrefs := regexp.MustCompile(`href="([^"]*)"`).FindAllStringSubmatch(html, -1)
	if len(hrefs) != 2 {
		t.Errorf("%d links in the HTML, want 2: %v", len(hrefs), hrefs)
	}
	for _, h := range hrefs {
		u, err := url.Parse(strings.ReplaceAll(h[1], "&amp;", "&"))
		if err != nil || u.Host != "example.org" {
			t.Errorf("link %q does not go to the template's host", h[1])
		}
	}
	if u, _ := url.Parse(strings.ReplaceAll(hrefs[0][1], "&amp;", "&")); u.Query().Get("x") != hostile {
		t.Errorf("the value in a link's query does not decode back: %q", u.Query().Get("x"))
	}
	if !strings.Contains(html, `<b>raw html by the author</b>`) {
		t.Error("the author's raw HTML was not kept")
	}
	text := string(root.find("text/plain")[0].body)
	if !strings.Contains(text, "Hi *Bob* <script>x</script> [x](javascript:alert(1))") {
		t.Errorf("the text part does not show the value as written:\n%s", text)
	}
	subject := decodeHeader(t, msg.Header.Get("Subject"))
	if strings.ContainsAny(subject, "\r\n") || !strings.Contains(subject, "*Bob* <script>x</script>") {
		t.Errorf("Subject %q", subject)
	}
	if got := decodeHeader(t, msg.Header.Get("X-Note")); got != strings.Join(strings.Fields(hostile), " ") {
		t.Errorf("X-Note %q", got)
	}
}

func TestHeaders(t *testing.T) {
	f := newFixture(t)
	r := f.renderer()
	longName := strings.Repeat("长", 120)
	m, err := r.Render(&Input{Seq: 7, To: mail.Address{Name: longName, Address: "z@example.com"},
		Subject: "来自SMTP的问候……" + strings.Repeat("很长的主题", 30), Markdown: []byte("x"),
		Headers: []Field{{"X-Campaign", "nov"}, {"List-Id", "News <news.example.org>"}}})
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, m.Data, 998)
	for _, line := range strings.Split(string(m.Data[:bytes.Index(m.Data, []byte("\r\n\r\n"))]), "\r\n") {
		if len(line) > 78 && !strings.HasPrefix(line, "To: =?utf-8?b?") {
			t.Errorf("line of %d octets: %.60s…", len(line), line)
		}
	}
	msg, _ := parse(t, m.Data)
	from, err := msg.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Python爱好者" || from[0].Address != "news@example.org" {
		t.Errorf("From = %v, %v", from, err)
	}
	to, err := msg.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Name != longName {
		t.Errorf("To = %v, %v", to, err)
	}
	rt, err := msg.Header.AddressList("Reply-To")
	if err != nil || len(rt) != 1 || rt[0].Name != "Team, Support" {
		t.Errorf("Reply-To = %v, %v", rt, err)
	}
	if got := decodeHeader(t, msg.Header.Get("Subject")); got != "来自SMTP的问候……"+strings.Repeat("很长的主题", 30) {
		t.Errorf("Subject = %q", got)
	}
	if got := msg.Header.Get("Message-ID"); got != "<"+m.ID+">" || !strings.HasSuffix(m.ID, "@example.org") {
		t.Errorf("Message-ID %q (ID %q), want one on the From domain", got, m.ID)
	}
	if d, err := msg.Header.Date(); err != nil || d.Unix() != 1764000000 {
		t.Errorf("Date = %v, %v", d, err)
	}
	// The order of the fields.
	var names []string
	for _, line := range strings.Split(string(m.Data[:bytes.Index(m.Data, []byte("\r\n\r\n"))]), "\r\n") {
		if line[0] != ' ' {
			names = append(names, line[:strings.IndexByte(line, ':')])
		}
	}
	want := "From To Reply-To Subject Date Message-ID MIME-Version X-Campaign List-Id Content-Type"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("fields\n got %s\nwant %s", got, want)
	}
}

func TestMessageID(t *testing.T) {
	a := MessageID("c", "Ada@Example.org", "example.net")
	if a != MessageID("c", "ada@example.org", "example.net") {
		t.Error("the Message-ID depends on the address's case")
	}
	if a == MessageID("d", "ada@example.org", "example.net") || a == MessageID("c", "bob@example.org", "example.net") {
		t.Error("two messages share a Message-ID")
	}
	if !regexp.MustCompile(`^[a-z2-7]{24}@example\.net$`).MatchString(a) {
		t.Errorf("Message-ID %q", a)
	}
}

// TestMessageIDOfTestSend: a test send's Message-ID is never the message's own,
// and stable: the same for the same campaign, recipient and test address.
func TestMessageIDOfTestSend(t *testing.T) {
	id := TestSendMessageID("c", "Ada@Example.org", "Me@Example.com", "example.net")
	if id != TestSendMessageID("c", "ada@example.org", "me@example.com", "example.net") {
		t.Error("the test Message-ID depends on the addresses' case")
	}
	if id == MessageID("c", "ada@example.org", "example.net") {
		t.Error("a test send has the recipient's own Message-ID")
	}
	for _, other := range []string{
		TestSendMessageID("d", "ada@example.org", "me@example.com", "example.net"),
		TestSendMessageID("c", "bob@example.org", "me@example.com", "example.net"),
		TestSendMessageID("c", "ada@example.org", "you@example.com", "example.net"),
		MessageID("c", "me@example.com", "example.net"),
	} {
		if other == id {
			t.Errorf("two messages share the Message-ID %s", id)
		}
	}
	if !regexp.MustCompile(`^test-[a-z2-7]{24}@example\.net$`).MatchString(id) {
		t.Errorf("test Message-ID %q", id)
	}
}

func TestReproducible(t *testing.T) {
	f := newFixture(t)
	f.file("logo.png", testPNG)
	pdf := f.file("a.pdf", []byte("%PDF"))
	in := func() *Input {
		return &Input{Seq: 1, To: mail.Address{Name: "管理员", Address: "a@example.com"}, Subject: "s",
			Markdown: []byte("![l](logo.png)"), Headers: []Field{{"X-A", "1"}, {"X-B", "2"}}}
	}
	m1, err := f.renderer(pdf).Render(in())
	if err != nil {
		t.Fatal(err)
	}
	m2, err := f.renderer(pdf).Render(in())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m1.Data, m2.Data) {
		t.Error("two renderings of the same message differ")
	}
}

func TestAttachmentNames(t *testing.T) {
	f := newFixture(t)
	names := []string{
		"plain.pdf",
		"活动日程.pdf",
		`quote "and" back\slash.txt`,
		strings.Repeat("很长的文件名", 12) + ".pdf",
		"emoji 🐍 file.txt",
	}
	var paths []string
	for _, n := range names {
		paths = append(paths, f.file(n, []byte("content of "+n)))
	}
	m, err := f.renderer(paths...).Render(&Input{Seq: 1, To: mail.Address{Address: "a@example.com"}, Subject: "s", Markdown: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, m.Data, 78)
	_, root := parse(t, m.Data)
	parts := root.children[1:]
	if len(parts) != len(names) {
		t.Fatalf("%d attachments, want %d", len(parts), len(names))
	}
	for i, p := range parts {
		_, params, err := mime.ParseMediaType(mail.Header(p.header).Get("Content-Disposition"))
		if err != nil {
			t.Fatalf("%s: %v", names[i], err)
		}
		if params["filename"] != names[i] {
			t.Errorf("filename %q, want %q", params["filename"], names[i])
		}
		if p.params["name"] != names[i] {
			t.Errorf("Content-Type name %q, want %q", p.params["name"], names[i])
		}
		if string(p.body) != "content of "+names[i] {
			t.Errorf("%s: body %q", names[i], p.body)
		}
	}
}

// TestRenderConcurrent renders from several goroutines at once, as the
// campaign does: the same bytes as one at a time, and no data race (-race).
func TestRenderConcurrent(t *testing.T) {
	f := newFixture(t)
	f.file("logo.png", testPNG)
	f.file("icon.png", append(append([]byte{}, testPNG...), 9))
	pdf := f.file("a.pdf", []byte("%PDF"))
	r := f.renderer(pdf)
	input := func(i int) *Input {
		name := []string{"Ada", "管理员", "*Bob*"}[i%3]
		md := merged(t, "![l](logo.png) ![i](icon.png)\n\n# Hi {{.name}}\n\n[x](https://example.org/?n={{.name}})\n", map[string]string{"name": name})
		return &Input{Seq: i, To: mail.Address{Name: name, Address: "r" + strconv.Itoa(i) + "@example.com"}, Subject: "s " + name, Markdown: md}
	}
	const n = 60
	want := make([][]byte, n)
	for i := range n {
		m, err := r.Render(input(i))
		if err != nil {
			t.Fatal(err)
		}
		want[i] = m.Data
	}
	r = f.renderer(pdf) // a fresh one, its image cache empty
	got := make([][]byte, n)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 6 {
				m, err := r.Render(input(i))
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = m.Data
			}
		}()
	}
	wg.Wait()
	for i := range n {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("message %d differs when rendered concurrently", i)
		}
	}
}

// TestShapes renders many recipients with one Renderer, whose cache of
// shapes (bodies with their values taken out) then serves most of them,
// and checks every message against a fresh Renderer's.
func TestShapes(t *testing.T) {
	f := newFixture(t)
	f.file("logo.png", testPNG)
	var body strings.Builder
	body.WriteString("![l](logo.png)\n\n# Hi {{.name}}\n\n{{if eq .plan \"pro\"}}Pro: [x](https://example.org/?n={{.name}}){{else}}Free{{end}}\n\n")
	body.WriteString("| who | where |\n|---|---|\n| {{.name}} | {{.city}} |\n\n")
	for k := range maxShapes + 6 {
		fmt.Fprintf(&body, "{{if eq .k %q}}variant %d{{end}}", strconv.Itoa(k), k)
	}
	// Values that look like the tokens values become, numbered or not.
	names := []string{"Ada", "\uE000v0\uE001", "%EE%80%80v1%EE%80%81", "\uE00061\uE001 %EE%80%8061%EE%80%81", "张伟"}
	render := func(r *Renderer, i int) ([]byte, map[string]string) {
		fields := map[string]string{"name": names[i%len(names)], "city": "Paris", "plan": []string{"pro", "free"}[i%2]}
		if i >= 20 {
			fields["k"] = strconv.Itoa(i - 20) // a shape each
		} else {
			fields["k"] = "-" // one of two shapes: pro, free
		}
		m, err := r.Render(&Input{Seq: i, To: mail.Address{Name: "N", Address: "r" + strconv.Itoa(i) + "@example.com"},
			Subject: "s", Markdown: merged(t, body.String(), fields), Fields: fields})
		if err != nil {
			t.Fatal(err)
		}
		return m.Data, fields
	}
	shared := f.renderer()
	for i := range 20 + maxShapes + 6 {
		got, fields := render(shared, i)
		want, _ := render(f.renderer(), i)
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d (%v) differs from a fresh renderer's", i, fields)
		}
		_, root := parse(t, got)
		text := strings.ReplaceAll(string(root.find("text/plain")[0].body), "\r\n", "\n") + "\n"
		html := string(root.find("text/html")[0].body)
		if !strings.Contains(text, "Hi "+fields["name"]+"\n") || !strings.Contains(text, "\n"+fields["name"]+"  Paris\n") {
			t.Errorf("message %d: the text part does not show the name %q as written:\n%s", i, fields["name"], text)
		}
		if !strings.Contains(html, ">Hi "+htmlpkg.EscapeString(fields["name"])+"</h1>") {
			t.Errorf("message %d: the HTML does not show the name %q as written", i, fields["name"])
		}
		if fields["plan"] == "pro" {
			href := regexp.MustCompile(`href="([^"]*)"`).FindStringSubmatch(html)
			if u, err := url.Parse(strings.ReplaceAll(href[1], "&amp;", "&")); err != nil || u.Query().Get("n") != fields["name"] {
				t.Errorf("message %d: link %q does not decode to the name %q", i, href[1], fields["name"])
			}
		}
		if k := fields["k"]; k != "-" && !strings.Contains(text, "variant "+k+"\n") {
			t.Errorf("message %d: the text part lacks variant %s", i, k)
		}
	}
	if n := len(shared.shapes.m); n != maxShapes {
		t.Errorf("%d shapes kept, want the limit, %d", n, maxShapes)
	}
}

// TestProblemLines: a problem is named at the template's line of the
// construct at fault, asked of the template, though a condition left lines
// out of the merged Markdown and a value came before it; without a
// template to ask, at the merged Markdown's line.
func TestProblemLines(t *testing.T) {
	f := newFixture(t)
	body := "Hi {{.v}}\n\n{{if not .v}}\none\n\ntwo\n{{end}}\n\n![x]({{.v}})\n\n![y](gone.png)\n"
	tmpl, err := merge.ParseBody("t.md", body)
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{"v": "a.png"}
	md := merged(t, body, fields)
	for _, tt := range []struct {
		template Lines
		want     []string
	}{
		{tmpl, []string{"t.md:9: image", "t.md:11: image"}},
		{nil, []string{"t.md:5: image", "t.md:7: image"}}, // the merged Markdown's lines
	} {
		r, err := New(Options{Campaign: "c", From: mail.Address{Address: "news@example.org"}, TemplateName: "t.md", Template: tt.template, ImageDir: f.dir, Date: time.Unix(0, 0)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Render(&Input{Seq: 1, To: mail.Address{Address: "a@example.com"}, Subject: "s", Markdown: md, Fields: fields})
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 2 {
			t.Fatalf("Render: %v, want two problems", err)
		}
		for i, want := range tt.want {
			if !strings.HasPrefix(errs[i].Error(), want) {
				t.Errorf("problem %q, want it at %q", errs[i], want)
			}
		}
	}
}

// TestShapeOf checks that ShapeOf is the key of the renderer's cache of
// shapes: the same for recipients who took the same branches, whatever
// their values, and another for another branch.
func TestShapeOf(t *testing.T) {
	f := newFixture(t)
	body := "# Hi {{.name}}\n\n{{if eq .plan \"pro\"}}A **reserved** seat.{{else}}[Upgrade](https://example.org/?who={{.name}}){{end}}\n"
	ada := merged(t, body, map[string]string{"name": "Ada *x*", "plan": "pro"})
	bob := merged(t, body, map[string]string{"name": "Bob\n# h", "plan": "pro"})
	cy := merged(t, body, map[string]string{"name": "Ada *x*", "plan": "free"})
	if !bytes.Equal(ShapeOf(ada), ShapeOf(bob)) {
		t.Errorf("two pro bodies have different shapes:\n%q\n%q", ShapeOf(ada), ShapeOf(bob))
	}
	if bytes.Equal(ShapeOf(ada), ShapeOf(cy)) {
		t.Errorf("a pro and a free body have the same shape %q", ShapeOf(ada))
	}
	if bytes.Contains(ShapeOf(ada), []byte("Ada")) {
		t.Errorf("the shape %q holds the value", ShapeOf(ada))
	}
	r := f.renderer()
	for i, md := range [][]byte{ada, bob, cy} {
		if _, err := r.Render(&Input{Seq: i + 1, To: mail.Address{Address: "r@example.org"}, Subject: "s", Markdown: md}); err != nil {
			t.Fatal(err)
		}
	}
	for _, md := range [][]byte{ada, cy} {
		if r.shapes.m[string(ShapeOf(md))] == nil {
			t.Errorf("the renderer has no shape under ShapeOf(%q)", md)
		}
	}
	if len(r.shapes.m) != 2 {
		t.Errorf("the renderer has %d shapes, want 2", len(r.shapes.m))
	}
}

// TestFiles checks that a renderer names the files it read: the
// campaign's attachments at once, an image once a message uses it.
func TestFiles(t *testing.T) {
	f := newFixture(t)
	logo := f.file("logo.png", testPNG)
	notes := f.file("notes.txt", []byte("notes\n"))
	r := f.renderer(notes)
	if got := r.Files(); !slices.Equal(got, []string{notes}) {
		t.Errorf("before any message: Files() = %q, want %q", got, []string{notes})
	}
	if _, err := r.Render(&Input{Seq: 1, To: mail.Address{Address: "r@example.org"}, Subject: "s", Markdown: []byte("![l](logo.png)\n")}); err != nil {
		t.Fatal(err)
	}
	want := []string{logo, notes}
	slices.Sort(want)
	if got := r.Files(); !slices.Equal(got, want) {
		t.Errorf("after a message with an image: Files() = %q, want %q", got, want)
	}
}
