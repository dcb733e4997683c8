package render

import (
	"bytes"
	"errors"
	"html"
	"html/template"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	texttemplate "text/template"
)

// TestLayoutPreheader: the built-in layout shows the preheader as hidden
// preview text, first in the body, and links the unsubscribe URL in the
// footer; without them, neither.
func TestLayoutPreheader(t *testing.T) {
	const unsubscribe = "https://news.example.org/unsubscribe?e=ada%40example.org&t=AbC-12_x~&list=may+june"
	r := newFixture(t).renderer()
	body := htmlBody(t, r, &Input{
		Markdown:    []byte("First paragraph of the body."),
		Preheader:   `Seats for "pro" members <b>now</b> & more`,
		Unsubscribe: unsubscribe,
	})
	body = strings.ReplaceAll(body, "\r\n", "\n")

	// The preview text: the first thing after <body>, hidden, escaped,
	// then padding.
	pre := regexp.MustCompile(`^<body[^>]*>\n<div style="([^"]*)">\n([^\n]*)\n((?:&#847;&zwnj;&nbsp;)+\n)+</div>\n`).FindStringSubmatch(body)
	if pre == nil {
		t.Fatalf("the body does not start with the hidden preheader:\n%.1200s", body)
	}
	for _, decl := range []string{"display:none;", "max-height:0;", "opacity:0;", "overflow:hidden;", "mso-hide:all;"} {
		if !strings.Contains(pre[1], decl) {
			t.Errorf("the preheader's style %q has no %s", pre[1], decl)
		}
	}
	if want := "Seats for &#34;pro&#34; members &lt;b&gt;now&lt;/b&gt; &amp; more"; pre[2] != want {
		t.Errorf("preheader %q, want %q", pre[2], want)
	}
	if n := strings.Count(pre[0], "&#847;&zwnj;&nbsp;"); n < 30 {
		t.Errorf("%d padding entities, want a few dozen", n)
	}
	if i := strings.Index(body, "First paragraph"); i < len(pre[0]) {
		t.Error("the body text comes before the preheader")
	}

	// The footer link, its URL intact: escaped only for HTML.
	links := regexp.MustCompile(`<a href="([^"]*)" style="color:#57606a;">Unsubscribe</a>`).FindAllStringSubmatch(body, -1)
	if len(links) != 1 {
		t.Fatalf("%d unsubscribe links in the footer, want 1:\n%s", len(links), body)
	}
	if got := html.UnescapeString(links[0][1]); got != unsubscribe {
		t.Errorf("unsubscribe link %q, want %q", got, unsubscribe)
	}
	if footer := body[strings.Index(body, "This message was sent to"):]; !strings.Contains(footer, links[0][0]) {
		t.Error("the unsubscribe link is not in the footer")
	}

	// Without them.
	body = htmlBody(t, r, &Input{Markdown: []byte("First paragraph of the body.")})
	for _, not := range []string{"display:none", "&#847;", "Unsubscribe", "<a "} {
		if strings.Contains(body, not) {
			t.Errorf("without a preheader or unsubscribe URL, the body has %q:\n%s", not, body)
		}
	}
	if !regexp.MustCompile(`^<body[^>]*>\r?\n<table`).MatchString(body) {
		t.Errorf("without a preheader, the body does not start with the layout's table:\n%.300s", body)
	}
}

// TestLayoutUnsubscribeUnsafe: html/template keeps a URL that isn't http(s)
// out of the href.
func TestLayoutUnsubscribeUnsafe(t *testing.T) {
	body := htmlBody(t, newFixture(t).renderer(), &Input{Markdown: []byte("x"), Unsubscribe: `javascript:alert("x")`})
	if strings.Contains(body, "javascript:") || !strings.Contains(body, `<a href="#ZgotmplZ"`) {
		t.Errorf("a javascript: URL in the footer:\n%s", body)
	}
}

// TestLayoutLang: the built-in layout's <html> has the campaign's lang,
// and no lang attribute at all without one (not "und").
func TestLayoutLang(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct{ lang, html string }{{"zh-CN", `<html lang="zh-CN">`}, {"", "<html>"}} {
		html, _ := parts(t, f.rendererWith(func(o *Options) { o.Lang = tt.lang }), &Input{Markdown: []byte("x")})
		tag := regexp.MustCompile(`<html[^>]*>`).FindAllString(html, -1)
		if len(tag) != 1 || tag[0] != tt.html {
			t.Errorf("with lang %q, the HTML's <html> tags are %q, want one %s", tt.lang, tag, tt.html)
		}
	}
	// A layout of one's own gets it as {{.Lang}}.
	r := f.rendererWith(func(o *Options) { o.Lang, o.Layout = "ja", `<html lang="{{.Lang}}">{{.Body}}</html>` })
	if html, _ := parts(t, r, &Input{Markdown: []byte("x")}); !strings.HasPrefix(html, `<html lang="ja">`) {
		t.Errorf("a layout's {{.Lang}} is not the campaign's lang:\n%s", html)
	}
}

// TestLayoutUnsubscribeWithout: a layout or a template that prints
// {{unsubscribe}} for a message without an unsubscribe URL is
// ErrNoUnsubscribe; with one, the URL is printed.
func TestLayoutUnsubscribeWithout(t *testing.T) {
	const layout = "<!DOCTYPE html>\n<html><body>{{.Body}}<a href=\"{{unsubscribe}}\">leave</a></body></html>\n"
	r := newFixture(t).rendererWith(func(o *Options) { o.Layout = layout })
	if _, err := r.Render(&Input{To: mail.Address{Address: "a@example.com"}, Markdown: []byte("Hi")}); !errors.Is(err, ErrNoUnsubscribe) {
		t.Errorf("the layout's {{unsubscribe}} without a URL: %v, want ErrNoUnsubscribe", err)
	}
	r = newFixture(t).renderer()
	if _, err := r.Render(&Input{To: mail.Address{Address: "a@example.com"}, Markdown: merged(t, "[leave]({{unsubscribe}})", nil)}); !errors.Is(err, ErrNoUnsubscribe) {
		t.Errorf("the template's {{unsubscribe}} without a URL: %v, want ErrNoUnsubscribe", err)
	}
	r = newFixture(t).rendererWith(func(o *Options) { o.Layout = layout })
	m, err := r.Render(&Input{To: mail.Address{Address: "a@example.com"}, Markdown: []byte("Hi"), Unsubscribe: "https://example.org/u?e=1"})
	if err != nil || !bytes.Contains(m.Data, []byte("https://example.org/u?e=3D1")) {
		t.Errorf("with a URL: %v, want it printed", err)
	}
}

// TestLayoutError: a layout that fails for a message says so in batch's
// words, the layout's name and line first, without "html/template:" or
// "template:",
// and keeps the template's own error for errors.As: text/template's
// ExecError for an action that fails, html/template's *Error for a
// layout it can't escape.
func TestLayoutError(t *testing.T) {
	in := &Input{To: mail.Address{Address: "a@example.com"}, Markdown: []byte("Hi")}
	r := newFixture(t).rendererWith(func(o *Options) {
		o.Layout, o.LayoutName = "<html><body>{{.Body}}\n{{call .Email}}</body></html>", "layout.html"
	})
	_, err := r.Render(in)
	var exec texttemplate.ExecError
	if !errors.As(err, &exec) || !strings.HasPrefix(err.Error(), "layout.html:2:") {
		t.Errorf("a failing action: %v, want an ExecError at layout.html:2", err)
	}
	if cerr := r.Check(in); !errors.As(cerr, &exec) {
		t.Errorf("Check of a failing action: %v, want an ExecError", cerr)
	}
	r = newFixture(t).rendererWith(func(o *Options) {
		o.Layout, o.LayoutName = "<html><body>{{if .Name}}<a href=\"{{end}}{{.Body}}</body></html>", "layout.html"
	})
	_, err = r.Render(in)
	var escape *template.Error
	if !errors.As(err, &escape) || !strings.HasPrefix(err.Error(), "layout.html:1:") {
		t.Errorf("a layout that can't be escaped: %v, want a *template.Error at layout.html:1", err)
	}
}
