package render

import (
	"errors"
	"fmt"
	htmlpkg "html"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/templates"
)

// hostileURLValues are cells that would move a URL to another host, port
// or scheme if a value could reach one of those.
var hostileURLValues = []string{
	".evil.com", "@evil.com", "evil.com/", "//evil.com", ":8080", "javascript:alert(1)", "evil.com",
	"/evil.com", `\evil.com`, `\\evil.com`, "%2F%2Fevil.com", "\r\n//evil.com", "\r\nhttps://evil.com/",
	"x\" href=\"https://evil.com/", "?x=1#frag", "evil.com:443@example.org", "ada+news&x=1@example.org",
}

// urlRenderer is a renderer for a template (its source, for positions)
// and a layout ("" for the built-in one), and the error New returns.
func (f *fixture) urlRenderer(body, layout string) (*Renderer, error) {
	f.t.Helper()
	opts := Options{
		Campaign:       "test-campaign",
		From:           mail.Address{Address: "news@example.org"},
		TemplateName:   "template.md",
		TemplateSource: body,
		ImageDir:       f.dir,
		LayoutName:     "built-in layout",
		Layout:         templates.DefaultLayout,
		Date:           time.Unix(1764000000, 0).UTC(),
	}
	if layout != "" {
		opts.LayoutName, opts.Layout = "layout.html", layout
	}
	return New(opts)
}

// The URLs of an HTML document as goldmark and html/template write it,
// where no '<' or '>' is left unescaped in text or in an attribute: its
// tags, their attributes, CSS's url()s in style attributes and sheets.
var (
	htmlTagRE  = regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9]*)([^>]*)>`)
	htmlAttrRE = regexp.MustCompile(`\s([a-zA-Z:-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?`)
	cssURLRE   = regexp.MustCompile(`(?i)url\(\s*(?:"([^"]*)"|'([^']*)'|([^)]*))\)`)
)

// urlsIn returns the URLs of doc, entities decoded: those of href, src,
// background and srcset attributes, and of url() in CSS.
func urlsIn(doc string) []string {
	var out []string
	css := func(s string) {
		for _, m := range cssURLRE.FindAllStringSubmatch(s, -1) {
			out = append(out, m[1]+m[2]+strings.TrimSpace(m[3]))
		}
	}
	for _, tag := range htmlTagRE.FindAllStringSubmatchIndex(doc, -1) {
		name := strings.ToLower(doc[tag[2]:tag[3]])
		for _, a := range htmlAttrRE.FindAllStringSubmatch(doc[tag[4]:tag[5]], -1) {
			value := htmlpkg.UnescapeString(a[2] + a[3] + a[4])
			switch strings.ToLower(a[1]) {
			case "href", "src", "background":
				out = append(out, value)
			case "srcset":
				for _, c := range strings.Split(value, ",") {
					out = append(out, strings.Fields(c)[0])
				}
			case "style":
				css(value)
			}
		}
		if name == "style" {
			css(doc[tag[1]:][:strings.Index(doc[tag[1]:], "</style>")])
		}
	}
	return out
}

// hostOf returns where a URL goes as a browser reads it (line ends and
// tabs dropped, backslashes slashes): its host, or a mailto: URL's
// addresses, or "" for a relative URL; scheme is its scheme.
func hostOf(t *testing.T, raw string) (scheme, host string) {
	t.Helper()
	s := strings.NewReplacer("\t", "", "\r", "", "\n", "", `\`, "/").Replace(strings.TrimSpace(raw))
	u, err := url.Parse(s)
	if err != nil {
		t.Errorf("URL %q: %v", raw, err)
		return "", ""
	}
	if u.Scheme == "mailto" {
		addr, err := url.PathUnescape(u.Opaque)
		if err != nil {
			t.Errorf("URL %q: %v", raw, err)
		}
		return u.Scheme, addr
	}
	return u.Scheme, u.Host
}

// checkHosts fails unless every URL goes to example.org (https), to
// team@example.org (mailto), or is relative with a path in /u/.
func checkHosts(t *testing.T, urls []string, value string) {
	t.Helper()
	for _, u := range urls {
		scheme, host := hostOf(t, u)
		switch {
		case scheme == "https" && host == "example.org":
		case scheme == "mailto" && host == "team@example.org":
		case scheme == "" && host == "" && strings.HasPrefix(u, "/u/"):
		default:
			t.Errorf("value %q: URL %q goes to %s %q", value, u, scheme, host)
		}
	}
}

// textURLRE finds what a mail client would link in plain text.
var textURLRE = regexp.MustCompile(`(?i)\b(?:https?://|www\.)[^\s()<>]*`)

// TestMarkdownURLs: wherever a template may put a value in a URL — a
// link, an autolink, an image, a reference, a bare URL, mailto: — no value
// moves it to another host or scheme, in the HTML or in the text, and a
// value in a query decodes back to itself.
func TestMarkdownURLs(t *testing.T) {
	body := "[a](https://example.org/p/{{.v}}?q={{.v}}#{{.v}}) <https://example.org/a/{{.v}}>\n\n" +
		"![i](https://example.org/i.png?u={{.v}}) [ref][r] and [rel](/u/{{.v}})\n\n" +
		"See https://example.org/x/{{.v}} or https://example.org/?{{.v}}.\n\n" +
		"[mail](mailto:team@example.org?subject={{.v}}&body={{.v}}) [leave]({{unsubscribe}})\n\n" +
		"[r]: https://example.org/r/{{.v}}\n"
	const links = 9 // a, autolink, image, ref, rel, two bare URLs, mail, leave
	f := newFixture(t)
	r, err := f.urlRenderer(body, "<html><body>{{.Body}}</body></html>")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range hostileURLValues {
		md := merged(t, body, map[string]string{"v": v})
		m, err := r.Render(&Input{Seq: 1, To: mail.Address{Address: "a@example.com"}, Subject: "s", Markdown: md,
			Unsubscribe: "https://example.org/unsubscribe?e=a%40example.com"})
		if err != nil {
			t.Fatalf("value %q: %v", v, err)
		}
		_, root := parse(t, m.Data)
		doc := string(root.find("text/html")[0].body)
		urls := urlsIn(doc)
		if len(urls) != links {
			t.Errorf("value %q: %d URLs in the HTML, want %d: %q", v, len(urls), links, urls)
		}
		checkHosts(t, urls, v)
		if u, err := url.Parse(urls[0]); err != nil || u.Query().Get("q") != v {
			t.Errorf("value %q: the link's query %q does not decode back to it", v, urls[0])
		}
		// In the text, the value shows as it is: a URL in it is the
		// value's (its scheme and host are in the value), every other
		// one goes to the template's host.
		text := string(root.find("text/plain")[0].body)
		for _, u := range textURLRE.FindAllString(text, -1) {
			scheme, host := hostOf(t, u)
			if host != "example.org" && !strings.Contains(v, scheme+"://"+host) {
				t.Errorf("value %q: the text's URL %q goes to %q", v, u, host)
			}
		}
	}
}

// TestMarkdownURLProblems: a field in a URL's scheme, host, port or user
// name, a mailto: address, a URL without a host or a local image's path is
// a problem of the shape, named by the template's line and column.
func TestMarkdownURLProblems(t *testing.T) {
	// ‸ marks where the problem is: the offending action's first word.
	tests := []struct {
		name, body string
		place      merge.URLPlace
	}{
		{"host ended by a value", "[x](https://example.org{{‸.v}}/)", merge.InAuthority},
		{"host from a value", "Hi\n\n[Log in](https://{{‸.v}})", merge.InAuthority},
		{"whole URL", "[x]({{‸.v}})", merge.InScheme},
		{"whole URL, spaced action", "[x]({{- ‸.v -}})", merge.InScheme},
		{"scheme", "[x]({{‸.v}}://example.org/)", merge.InScheme},
		{"end of the scheme", "[x](java{{‸.v}})", merge.InScheme},
		{"port", "[x](https://example.org:{{‸.v}}/)", merge.InAuthority},
		{"user name", "[x](https://{{‸.v}}@example.org/)", merge.InAuthority},
		{"host without a scheme", "[x](//{{‸.v}}/)", merge.InAuthority},
		{"after a lone slash", "[x](/{{‸.v}})", merge.InAuthority},
		{"title is fine, URL not", `[x](https://{{‸.v}} "t {{.v}}")`, merge.InAuthority},
		{"autolink", "<https://{{‸.v}}.example.org/>", merge.InAuthority},
		{"bare URL the value ends", "See https://example.org{{‸.v}} now", merge.InAuthority},
		{"bare www URL the value ends", "See www.example.org{{‸.v}}", merge.InAuthority},
		{"scheme and value in text", "Log in at https://{{‸.v}}", merge.InAuthority},
		{"after an autolink", "<https://example.org>{{‸.v}}", merge.InAuthority},
		{"reference", "[x][r]\n\n[r]: https://{{‸.v}}/", merge.InAuthority},
		{"image host", "![x](https://{{‸.v}}/a.png)", merge.InAuthority},
		{"image file", "![x](images/{{‸.v}}.png)", merge.InFile},
		{"image, whole", "![x]({{‸.v}})", merge.InScheme},
		{"mailto address", "[m](mailto:{{‸.v}}@example.org)", merge.InMailto},
		{"mailto bcc", "[m](mailto:team@example.org?bcc={{‸.v}})", merge.InMailto},
		{"javascript", "[x](javascript:alert('{{‸.v}}'))", merge.InOpaque},
		{"tel", "[x](tel:{{‸.v}})", merge.InOpaque},
	}
	f := newFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, pos := marked(tt.body)
			r, err := f.urlRenderer(body, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range []string{"harmless", "evil.com"} { // the shape's, whatever the value
				md := merged(t, body, map[string]string{"v": v})
				_, err := r.Render(&Input{Seq: 1, To: mail.Address{Address: "a@example.com"}, Subject: "s", Markdown: md})
				var ue *merge.URLError
				if !errors.As(err, &ue) {
					t.Fatalf("value %q: error %v, want a URLError", v, err)
				}
				if ue.Place != tt.place || ue.Pos != "template.md:"+pos {
					t.Errorf("value %q: place %d at %s, want %d at template.md:%s (%v)", v, ue.Place, ue.Pos, tt.place, pos, err)
				}
				if strings.Contains(err.Error(), v) {
					t.Errorf("the problem %q shows the value", err)
				}
			}
		})
	}
}

// marked returns s without its mark ‸, and the line and column (in bytes,
// from 1, as text/template counts) where it was.
func marked(s string) (string, string) {
	i := strings.Index(s, "‸")
	if i < 0 {
		panic("no mark in " + s)
	}
	line := 1 + strings.Count(s[:i], "\n")
	col := i - strings.LastIndexByte(s[:i], '\n')
	return s[:i] + s[i+len("‸"):], strconv.Itoa(line) + ":" + strconv.Itoa(col)
}

// TestMarkdownURLsAllowed: fields in the path, query or fragment, in a
// link's text or title, and {{unsubscribe}} as a whole URL, are fine.
func TestMarkdownURLsAllowed(t *testing.T) {
	for _, body := range []string{
		"[x](https://example.org/{{.v}})", "[x](https://example.org?q={{.v}})", "[x](https://example.org#{{.v}})",
		"[x](HTTPS://Example.org/a/{{.v}})", `[{{.v}}](https://example.org/ "{{.v}}")`, "[x](./{{.v}})",
		"<https://example.org/{{.v}}>", "https://example.org/{{.v}}", "www.example.org/{{.v}}", "Hi {{.v}}: https://example.org",
		"[x](mailto:team@example.org?subject={{.v}})", "![x](https://example.org/p.gif?u={{.v}})", "[x]({{unsubscribe}})",
		"`https://example.org/{{.v}}`", "email me at team@example.org, {{.v}}", "[x][r]\n\n[r]: https://example.org/{{.v}}",
	} {
		r, err := newFixture(t).urlRenderer(body, "")
		if err != nil {
			t.Fatal(err)
		}
		md := merged(t, body, map[string]string{"v": "//evil.com"})
		if _, err := r.Render(&Input{Seq: 1, To: mail.Address{Address: "a@example.com"}, Subject: "s", Markdown: md,
			Unsubscribe: "https://example.org/u"}); err != nil {
			t.Errorf("%q: %v", body, err)
		}
	}
}

// goodLayout puts values in every place of a URL a layout may.
const goodLayout = `<!DOCTYPE html>
<html><head><style>td { background: url(https://example.org/bg/{{.Fields.v}}.png) }</style></head>
<body><table background="https://example.org/t/{{.Fields.v}}.png"><tr><td>{{.Body}}</td></tr></table>
<a href="https://example.org/{{.Fields.v}}">a</a>
<a href='https://example.org/p?q={{.Fields.v}}&amp;e={{.Email}}'>b</a>
<a href=https://example.org#{{.Fields.v}}>c</a>
<img src="https://example.org/i/{{.Fields.v}}.png" alt="{{.Fields.v}}" title="https://{{.Fields.v}}">
<a href="mailto:team@example.org?subject={{.Subject}}&amp;body={{.Fields.v}}">d</a>
<div style="color: red; background-image: url('https://example.org/s/{{.Fields.v}}')">e</div>
{{if .Fields.v}}<a href="https://example.org/if/{{.Fields.v}}">f</a>{{else}}<a href="https://example.org/">f</a>{{end}}
{{range $k, $v := .Fields}}<a href="https://example.org/r/{{$v}}">{{$k}}</a>{{end}}
{{define "link"}}<a href="https://example.org/t/{{.}}">g</a>{{end}}{{template "link" .Fields.v}}
<a href="{{.Unsubscribe}}">u</a>{{with .Unsubscribe}}<a href="{{.}}">u</a>{{end}}<a href="{{unsubscribe}}">u</a>
<p>{{.Name}} {{.Fields.v}}</p>
</body></html>
`

// TestLayoutURLs: a layout's values in the paths, queries and fragments of
// its URLs keep them on the layout's host, whatever the values.
func TestLayoutURLs(t *testing.T) {
	f := newFixture(t)
	r, err := f.urlRenderer("Hello", goodLayout)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range hostileURLValues {
		doc := htmlBody(t, r, &Input{Markdown: []byte("Hello"), Fields: map[string]string{"v": v}, Subject: v,
			Unsubscribe: "https://example.org/unsubscribe?e=a%40example.com"})
		urls := urlsIn(doc)
		if len(urls) != 13 {
			t.Errorf("value %q: %d URLs, want 13: %q", v, len(urls), urls)
		}
		checkHosts(t, urls, v)
		if u, err := url.Parse(urls[2]); err != nil || u.Query().Get("q") != v {
			t.Errorf("value %q: the query of %q does not decode back to it", v, urls[2])
		}
	}
	// And the style sheet, in the head.
	m, err := r.Render(&Input{Seq: 1, To: mail.Address{Address: "a@example.com"}, Subject: "s", Markdown: []byte("x"),
		Fields: map[string]string{"v": "//evil.com"}, Unsubscribe: "https://example.org/u"})
	if err != nil {
		t.Fatal(err)
	}
	_, root := parse(t, m.Data)
	head := string(root.find("text/html")[0].body)
	checkHosts(t, urlsIn(head[:strings.Index(head, "<body")]), "//evil.com")
}

// TestLayoutURLProblems: a layout that writes a value where it would
// choose where a URL goes is refused by New, naming the layout's line and
// column; the rest of the layout is fine.
func TestLayoutURLProblems(t *testing.T) {
	// ‸ marks where the problem is: the offending action's first word.
	tests := []struct {
		name, layout string
		place        merge.URLPlace
	}{
		{"host", `<a href="https://{{‸.Fields.v}}/">`, merge.InAuthority},
		{"end of the host", `<a href="https://example.org{{‸.Fields.v}}/">`, merge.InAuthority},
		{"port", `<a href="https://example.org:{{‸.Fields.v}}/">`, merge.InAuthority},
		{"user name", `<a href="https://{{‸.Email}}@example.org/">`, merge.InAuthority},
		{"whole URL", `<img src="{{‸.Fields.v}}">`, merge.InScheme},
		{"unquoted", "<p>x</p>\n<a class=x href={{ ‸.Fields.v }}>", merge.InScheme},
		{"single quotes", `<a href='//{{‸.Name}}/'>`, merge.InAuthority},
		{"after a lone slash", `<a href="/{{‸.Fields.v}}">`, merge.InAuthority},
		{"upper case", `<A HREF="HTTPS://{{‸.Fields.v}}/">`, merge.InAuthority},
		{"entity in the URL", `<a href="https&#58;//{{‸.Fields.v}}/">`, merge.InAuthority},
		{"another URL attribute", `<table background="https://{{‸.Fields.v}}/a.png">`, merge.InAuthority},
		{"xlink:href", `<svg><a xlink:href="https://{{‸.Fields.v}}/">`, merge.InAuthority},
		{"data-url", `<div data-url="https://{{‸.Fields.v}}/">`, merge.InAuthority},
		{"mailto address", `<a href="mailto:{{‸.Email}}">`, merge.InMailto},
		{"mailto cc", `<a href="mailto:team@example.org?cc={{‸.Email}}">`, merge.InMailto},
		{"javascript", `<a href="javascript:go('{{‸.Fields.v}}')">`, merge.InOpaque},
		{"srcset", `<img srcset="https://example.org/{{‸.Fields.v}} 2x">`, merge.InSrcset},
		{"style url()", `<div style="background: url(https://{{‸.Fields.v}}/bg.png)">`, merge.InAuthority},
		{"style url() quoted", `<div style="background: url(&quot;//{{‸.Fields.v}}/bg.png&quot;)">`, merge.InAuthority},
		{"style sheet url()", "<style>\ntd { background: url(https://{{‸.Fields.v}}/bg.png) }\n</style>", merge.InAuthority},
		{"subject", `<a href="https://{{‸.Subject}}/">`, merge.InAuthority},
		{"preheader", `<a href="https://{{‸.Preheader}}/">`, merge.InAuthority},
		{"through functions", `<a href="https://{{‸printf "%s" .Fields.v | urlquery}}/">`, merge.InAuthority},
		{"one branch's host", `<a href="{{if .Fields.v}}https://example.org/{{else}}https://{{end}}{{‸.Fields.v}}">`, merge.InAuthority},
		{"a template's host", `{{define "u"}}https://{{end}}<a href="{{template "u"}}{{‸.Fields.v}}/">`, merge.InAuthority},
		{"in a defined template", `{{define "a"}}<a href="https://{{‸.}}/">{{end}}{{template "a" .Fields.v}}`, merge.InAuthority},
		{"after the unsubscribe URL", `<a href="{{.Unsubscribe}}{{‸.Fields.v}}">`, merge.InUnknown},
		{"range", `{{range .Fields}}<a href="https://{{‸.}}/">{{end}}`, merge.InAuthority},
		{"a column named Unsubscribe", `{{with .Fields}}<a href="https://{{‸.Unsubscribe}}/">{{end}}`, merge.InAuthority},
		{"$ of a template", `{{define "a"}}<a href="https://{{‸$.Unsubscribe}}/">{{end}}{{template "a" .Fields}}`, merge.InAuthority},
		{"meta refresh", `<meta http-equiv="refresh" content="0;url=https://{{‸.Fields.v}}/">`, merge.InUnknown},
		{"text", `<p>Log in at https://{{‸.Fields.v}}</p>`, merge.InAuthority},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layout, pos := marked(tt.layout)
			_, err := newFixture(t).urlRenderer("x", layout+"<p>{{.Body}} {{.Fields.v}} <a href=\"https://example.org/{{.Fields.v}}\">x</a></p>")
			var ue *merge.URLError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v, want a URLError", err)
			}
			if ue.Place != tt.place || ue.Pos != "layout.html:"+pos {
				t.Errorf("place %d at %s, want %d at layout.html:%s (%v)", ue.Place, ue.Pos, tt.place, pos, err)
			}
			if errs, ok := err.(Errors); ok {
				t.Errorf("%d problems, want 1: %v", len(errs), err)
			}
		})
	}
}

// TestLayoutURLsBounded: a template called many times inside others is
// walked once for each way into it, and one that calls itself is a
// problem, not a long wait.
func TestLayoutURLsBounded(t *testing.T) {
	var b strings.Builder
	for i := range 10 {
		fmt.Fprintf(&b, "{{define \"t%d\"}}<p>%s</p>{{end}}", i, strings.Repeat(fmt.Sprintf("{{template \"t%d\" .}}", i+1), 10))
	}
	b.WriteString(`{{define "t10"}}<a href="https://{{.Fields.v}}/">x</a>{{end}}{{template "t0" .}}{{.Body}}`)
	_, err := newFixture(t).urlRenderer("x", b.String())
	var ue *merge.URLError
	if !errors.As(err, &ue) || ue.Place != merge.InAuthority || ue.Pos != "layout.html:1:"+strconv.Itoa(strings.Index(b.String(), "{{.Fields.v}}")+3) {
		t.Errorf("10¹⁰ calls of the template: %v, want its problem", err)
	}
	if errs, ok := err.(Errors); ok {
		t.Errorf("%d problems, want the one: %v", len(errs), err)
	}

	layout := `{{define "a"}}<p>{{range .}}{{template "a" .}}{{end}}</p>{{end}}{{template "a" .Fields}}{{.Body}}`
	_, err = newFixture(t).urlRenderer("x", layout)
	if err == nil || !strings.Contains(err.Error(), "layout.html: its templates call each other too deeply (or themselves) for batch to check the URLs they write") {
		t.Errorf("a template that calls itself: %v", err)
	}
}

// FuzzLinkHosts puts a value into arbitrary Markdown: where the check lets
// the template be, no hostile value sends any of the HTML's URLs to
// another scheme or host than a harmless value does.
func FuzzLinkHosts(f *testing.F) {
	for _, s := range [][2]string{
		{"[a](https://example.org/", ")"}, {"[a](https://example.org", "/)"}, {"<https://example.org/", ">"},
		{"See https://example.org/", " now"}, {"![i](https://example.org/i.png?u=", ")"}, {"[r]\n\n[r]: https://example.org/", ""},
		{"[a](mailto:team@example.org?subject=", ")"}, {"[a](", ")"}, {"[a](/", ")"}, {"www.example.org", ""},
	} {
		f.Add(s[0], s[1])
	}
	fx := &fixture{t: &testing.T{}, dir: f.TempDir()}
	f.Fuzz(func(t *testing.T, before, after string) {
		if strings.Contains(before+after, "{{") || strings.Contains(before+after, "}}") || strings.ContainsAny(before+after, "\uE000\uE001\uE002") {
			return // template actions and token characters are the template checker's business
		}
		body := before + "{{.v}}" + after
		if _, err := merge.ParseBody("t.md", body); err != nil {
			return
		}
		r, err := fx.urlRenderer(body, "<html><body>{{.Body}}</body></html>")
		if err != nil {
			t.Fatal(err)
		}
		hosts := func(v string) ([]string, error) {
			md := merged(t, body, map[string]string{"v": v})
			m, err := r.Render(&Input{Seq: 1, To: mail.Address{Address: "a@example.com"}, Subject: "s", Markdown: md})
			if err != nil {
				return nil, err
			}
			_, root := parse(t, m.Data)
			var out []string
			for _, u := range urlsIn(string(root.find("text/html")[0].body)) {
				s := strings.NewReplacer("\t", "", "\r", "", "\n", "", `\`, "/").Replace(strings.TrimSpace(u))
				p, err := url.Parse(s)
				if err != nil {
					out = append(out, "unparsed")
					continue
				}
				out = append(out, strings.ToLower(p.Scheme)+"://"+p.User.String()+"@"+p.Host+" "+p.Opaque)
			}
			return out, nil
		}
		want, err := hosts("x")
		if err != nil {
			return // refused: a problem check reports
		}
		for _, v := range hostileURLValues {
			got, err := hosts(v)
			if err != nil {
				t.Fatalf("%q: value %q: %v, but x was fine", body, v, err)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("%q: value %q sends the URLs to\n%q\nwhere x sends them to\n%q", body, v, got, want)
			}
		}
	})
}
