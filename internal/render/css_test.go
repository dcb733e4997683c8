package render

import (
	"bytes"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tdewolff/parse/v2/css"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/text"

	"github.com/batch-mailer/batch/templates"
)

// allKinds is Markdown with every kind of element the Markdown renders.
const allKinds = `# One

## Two

### Three

#### Four

A paragraph with *em*, **strong**, ~~del~~, ` + "`code`" + `, [a link](https://example.org/)
and an autolink <https://example.net/> and ![an image](https://example.org/i.png).

> A quote.

- tight
- list

1. ordered

---

| left | centre |
|------|:------:|
| a    | b      |
`

// startTags returns the start tags of the elements called name in s.
func startTags(s, name string) []string {
	return regexp.MustCompile(`<`+name+`(?:\s[^>]*)?>`).FindAllString(s, -1)
}

// htmlBody renders md with r and returns the HTML part from <body> on.
func htmlBody(t *testing.T, r *Renderer, in *Input) string {
	t.Helper()
	if in.To.Address == "" {
		in.To = mail.Address{Address: "a@example.com"}
	}
	if in.Subject == "" {
		in.Subject = "s"
	}
	m, err := r.Render(in)
	if err != nil {
		t.Fatal(err)
	}
	_, root := parse(t, m.Data)
	html := string(root.find("text/html")[0].body)
	i := strings.Index(html, "<body")
	if i < 0 {
		t.Fatalf("no <body> in\n%s", html)
	}
	return html[i:]
}

// TestInlineDefaultLayout: the built-in layout's rules for the body are in
// the style attributes of a rendered message's elements.
func TestInlineDefaultLayout(t *testing.T) {
	body := htmlBody(t, newFixture(t).renderer(), &Input{Markdown: []byte(allKinds)})
	const cell = "border: 1px solid #d0d7de; padding: 6px 10px; text-align: left;"
	want := map[string][]string{
		"h1":         {`<h1 style="font-size: 24px; line-height: 1.3; margin: 0 0 16px;">`},
		"h2":         {`<h2 style="font-size: 20px; line-height: 1.3; margin: 24px 0 12px;">`},
		"h3":         {`<h3 style="font-size: 17px; line-height: 1.3; margin: 20px 0 8px;">`},
		"h4":         {`<h4>`},
		"p":          {`<p style="margin: 0 0 16px;">`, `<p style="margin: 0 0 16px;">`},
		"em":         {`<em>`},
		"strong":     {`<strong>`},
		"del":        {`<del>`},
		"code":       {`<code style="font-family: Menlo, Consolas, monospace; font-size: 14px; background: #f3f4f6; padding: 1px 4px; border-radius: 3px;">`},
		"a":          {`<a href="https://example.org/" style="color: #1a62c7;">`, `<a href="https://example.net/" style="color: #1a62c7;">`},
		"img":        {`<img src="https://example.org/i.png" alt="an image" class="inline" style="max-width: 100%; height: auto; border: 0; vertical-align: middle; max-height: 1.5em;">`},
		"blockquote": {`<blockquote style="margin: 0 0 16px; border-left: 3px solid #d0d7de; padding: 0 0 0 12px; color: #57606a;">`},
		"ul":         {`<ul style="margin: 0 0 16px;">`},
		"ol":         {`<ol style="margin: 0 0 16px;">`},
		"li":         {`<li>`, `<li>`, `<li>`},
		"hr":         {`<hr style="border: 0; border-top: 1px solid #d0d7de; margin: 24px 0;">`},
		"th":         {`<th style="` + cell + `">`, `<th style="` + strings.TrimSuffix(cell, ";") + `;text-align:center">`},
		"td":         {`<td style="` + cell + `">`, `<td style="` + strings.TrimSuffix(cell, ";") + `;text-align:center">`},
	}
	content := body[strings.Index(body, `class="card content"`):]
	content = content[strings.IndexByte(content, '>')+1 : strings.Index(content, `<td class="footer"`)]
	for name, tags := range want {
		if got := startTags(content, name); strings.Join(got, "\n") != strings.Join(tags, "\n") {
			t.Errorf("<%s> tags\n got %q\nwant %q", name, got, tags)
		}
	}
	if got := startTags(content, "table"); len(got) != 1 || got[0] != `<table style="margin: 0 0 16px; border-collapse: collapse;">` {
		t.Errorf("the Markdown's table: %q", got)
	}
}

// TestInlineImages: an image in a line of text has class="inline" and the
// style of "img.inline" rules, over the "img" ones; an image with only
// images beside it, in its paragraph, heading, cell or list item, has
// neither.
func TestInlineImages(t *testing.T) {
	afterAlt := regexp.MustCompile(` alt="[^"]*" (.*)$`)
	const (
		block  = `style="max-width: 100%; vertical-align: middle;">`
		inline = `class="inline" style="max-width: 100%; vertical-align: middle; max-height: 1.5em;">`
	)
	r, err := New(Options{
		Campaign: "c", From: mail.Address{Address: "news@example.org"}, TemplateName: "t.md", LayoutName: "layout.html",
		Layout: "<style>.x img.inline { max-height: 1.5em } img { max-width: 100%; vertical-align: middle }</style>" +
			`<body><div class="x">{{.Body}}</div></body>`,
		Date: time.Unix(0, 0).UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, md string
		want     []string // the images' attributes after alt, in order
	}{
		{"alone", "![a long alt text](https://example.org/a.png)", []string{block}},
		{"in a sentence", "A star ![star](https://example.org/a.png) for you.", []string{inline}},
		{"after the text", "Starred ![star](https://example.org/a.png)", []string{inline}},
		{"on the next line", "![star](https://example.org/a.png)\nwrapped text", []string{inline}},
		{"only images", "![a](https://example.org/a.png) ![b](https://example.org/b.png)\n![c](https://example.org/c.png)", []string{block, block, block}},
		{"linked, alone", "[![a](https://example.org/a.png)](https://example.org/)", []string{block}},
		{"linked, in text", "See [the ![a](https://example.org/a.png) badge](https://example.org/).", []string{inline}},
		{"emphasis", "**![a](https://example.org/a.png) new**", []string{inline}},
		{"code beside it", "![a](https://example.org/a.png) `x`", []string{inline}},
		{"autolink beside it", "![a](https://example.org/a.png) <https://example.org/>", []string{inline}},
		{"heading", "# Title ![a](https://example.org/a.png)", []string{inline}},
		{"cells", "| head |\n|---|\n| ![a](https://example.org/a.png) |\n| x ![b](https://example.org/b.png) |", []string{block, inline}},
		{"list items", "- ![a](https://example.org/a.png)\n- item ![b](https://example.org/b.png)", []string{block, inline}},
		{"task", "- [x] ![a](https://example.org/a.png)", []string{inline}},
		{"a value beside it", "{{.v}} ![a](https://example.org/a.png)", []string{inline}},
		{"its own paragraph", "Text above.\n\n![a](https://example.org/a.png)\n\nText below.", []string{block}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			md := merged(t, strings.ReplaceAll(tt.md, `\n`, "\n"), map[string]string{"v": "value"})
			body := htmlBody(t, r, &Input{Markdown: md})
			var got []string
			for _, tag := range startTags(body, "img") {
				got = append(got, afterAlt.FindStringSubmatch(tag)[1])
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("%q: images\n got %q\nwant %q", tt.md, got, tt.want)
			}
		})
	}
}

// TestInlineCodeBlocks: with codeBlockRenderer registered in newMarkdown,
// the built-in layout's rules for pre and "pre code" reach code blocks.
func TestInlineCodeBlocks(t *testing.T) {
	body := htmlBody(t, newFixture(t).renderer(), &Input{Markdown: []byte("```go\nx := 1\n```\n")})
	want := `<pre style="margin: 0 0 16px; background: #f3f4f6; padding: 12px; overflow-x: auto; border-radius: 4px;">` +
		`<code class="language-go" style="font-family: Menlo, Consolas, monospace; font-size: 14px; border-radius: 3px; background: none; padding: 0;">`
	if !strings.Contains(body, want) {
		t.Errorf("no %s in\n%s", want, body)
	}
}

// TestStyleBlockKept: the layout's <style> block is sent as written.
func TestStyleBlockKept(t *testing.T) {
	m, err := newFixture(t).renderer().Render(&Input{To: mail.Address{Address: "a@example.com"}, Subject: "s", Markdown: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	_, root := parse(t, m.Data)
	html := strings.ReplaceAll(string(root.find("text/html")[0].body), "\r\n", "\n")
	i, j := strings.Index(templates.DefaultLayout, "<style>"), strings.Index(templates.DefaultLayout, "</style>")
	if !strings.Contains(html, templates.DefaultLayout[i:j]) {
		t.Error("the <style> block is not the layout's")
	}
}

// customLayout has rules to inline, rules not to, comments and at-rules.
const customLayout = `<!DOCTYPE html>
<html><head>
<style type="text/css">
  /* p { color: blue; } a comment, not a rule */
  @import url("https://example.org/fonts.css");
  @font-face { font-family: X; src: url(x.woff2) format("woff2"); }
  @media (max-width: 600px) { p { font-size: 18px !important; } a { color: black; } }
  a { color: #c00; text-decoration: none }
  .x p { margin: 0 0 8px; color: #333; font-family: "Segoe UI", serif; }
  p { color: #444; line-height: 1.5 }   /* less specific than .x p: its color loses */
  a:hover, p.lead, h1 + p, .x > p, blockquote p, li p, div, h2::first-line { color: green; }
  <!-- h3 { color: green } -->
</style>
<!--[if mso]><style>p { mso-line-height-rule: exactly; }</style><![endif]-->
<style media="screen and (max-width: 600px)">h1 { font-size: 30px; }</style>
</head><body><div class="x">{{.Body}}</div></body></html>
`

func TestInlineCustomLayout(t *testing.T) {
	r, err := New(Options{
		Campaign: "c", From: mail.Address{Address: "news@example.org"}, TemplateName: "t.md",
		LayoutName: "layout.html", Layout: customLayout, Date: time.Unix(0, 0).UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	body := htmlBody(t, r, &Input{Markdown: []byte("# Title\n\nSee [the site](https://example.org/).\n\n> quoted\n\n## Two\n")})
	for _, want := range []string{
		`<h1>Title</h1>`,
		`<p style="line-height: 1.5; margin: 0 0 8px; color: #333; font-family: &quot;Segoe UI&quot;, serif;">See <a href="https://example.org/" style="color: #c00; text-decoration: none;">the site</a>.</p>`,
		`<blockquote>`,
		`<p style="line-height: 1.5; margin: 0 0 8px; color: #333; font-family: &quot;Segoe UI&quot;, serif;">quoted</p>`,
		`<h2>Two</h2>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %s in\n%s", want, body)
		}
	}
	for _, not := range []string{"green", "18px", "black", "mso-line-height-rule", "30px", "blue"} {
		if strings.Contains(body, not) {
			t.Errorf("%q was inlined:\n%s", not, body)
		}
	}
}

// style returns the style parseStyles gave el, or "".
func (s styles) style(el element) string {
	if s == nil || s[el] == nil {
		return ""
	}
	return string(s[el].([]byte))
}

func TestParseStyles(t *testing.T) {
	tests := []struct {
		name, css string
		want      map[element]string // every element not named has no style
	}{
		{"none", "", nil},
		{"no rules for the body", "body { margin: 0 } .card { padding: 1px } div p span { color: red }", nil},
		{"later wins", "p { color: red } p { color: blue }", map[element]string{elP: "color: blue;"}},
		{"merged", "p { margin: 0 } p { color: red; }", map[element]string{elP: "margin: 0; color: red;"}},
		{"once each", "p { margin: 0; color: red; margin: 1px }", map[element]string{elP: "color: red; margin: 1px;"}},
		{"specificity", ".c p { color: red } p { color: blue }", map[element]string{elP: "color: red;"}},
		{"id", "#main p { color: red } .a .b p { color: blue }", map[element]string{elP: "color: red;"}},
		{"important", "p { color: red !important } .c p { color: blue }", map[element]string{elP: "color: red;"}},
		{"shorthand after longhand", "p { background-color: red } p { background: none }",
			map[element]string{elP: "background-color: red; background: none;"}},
		{"longhand set again", "p { margin: 0 } p { margin-top: 4px } p { margin: 1px }",
			map[element]string{elP: "margin-top: 4px; margin: 1px;"}},
		{"whitespace and case", "P\n{\n  COLOR :  red\n   ;  margin:0   0\t1px }", map[element]string{elP: "color: red; margin: 0 0 1px;"}},
		{"strings", `p { font-family: "a;b}", serif; color: red } a { content: "/* not a comment */" }`,
			map[element]string{elP: `font-family: "a;b}", serif; color: red;`, elA: `content: "/* not a comment */";`}},
		{"url with semicolon", "hr { background: url(data:image/png;base64,AAAA) }",
			map[element]string{elHr: "background: url(data:image/png;base64,AAAA);"}},
		{"list of selectors", "h1, h2 , .x h3,em,strong,del { color: red }", map[element]string{
			elH1: "color: red;", elH2: "color: red;", elH3: "color: red;", elEm: "color: red;", elStrong: "color: red;", elDel: "color: red;"}},
		{"every heading", "h4 { a: 4 } h5 { a: 5 } h6 { a: 6 }", map[element]string{elH4: "a: 4;", elH5: "a: 5;", elH6: "a: 6;"}},
		{"pre code", "code { background: #eee; padding: 1px } pre code { background: none } pre { padding: 9px }", map[element]string{
			elCode: "background: #eee; padding: 1px;", elPreCode: "padding: 1px; background: none;", elPre: "padding: 9px;"}},
		{"pre > code", ".content pre > code { color: red }", map[element]string{elPreCode: "color: red;"}},
		{"cells", "th, td { padding: 1px }", map[element]string{elTh: "padding: 1px;", elTd: "padding: 1px;",
			elThAligned: "padding: 1px", elTdAligned: "padding: 1px"}},
		{"wrappers", "table td { a: 1 } td p { a: 2 } :root .x p { b: 3 } html body [dir] ul { a: 4 } * li { a: 5 }", map[element]string{
			elTd: "a: 1;", elTdAligned: "a: 1", elP: "a: 2; b: 3;", elUl: "a: 4;", elLi: "a: 5;"}},
		{"not every element of its kind", "a:hover, p.lead, p#x, p[title], h1 + p, h1 ~ p, .x > p, td > p, blockquote p, li p, p a, " +
			"h2::first-line, .x:hover p, .x > pre code, pre.x code, pre span code, pre p, * { color: red }", nil},
		{"not CSS this understands", `p\:x, p|q, 1p, { color: red } ol { color: blue }`, map[element]string{elOl: "color: blue;"}},
		{"at-rules", `@charset "utf-8"; @import url(x.css); @media screen { p { color: red } } ` +
			`@supports (display: grid) { p { color: red } } @font-face { font-family: X } @page { margin: 0 } img { border: 0 }`,
			map[element]string{elImg: "border: 0;", elImgInline: "border: 0;"}},
		{"inline images", ".c img.inline { height: 1em } img { border: 0 } IMG.inline { margin: 0 } " +
			"img.INLINE, img.inline.x, img.inline:hover, img.other, p img.inline { color: red }",
			map[element]string{elImg: "border: 0;", elImgInline: "border: 0; margin: 0; height: 1em;"}},
		{"comments", "/* p { color: red } */ ul /* list */ { margin: 0 /* none */ } /* unterminated p { color: red }",
			map[element]string{elUl: "margin: 0;"}},
		{"template action", "p { color: {{.color}}; margin: 0 }", map[element]string{elP: "margin: 0;"}},
		{"bad declarations", "p { : red; color; 1x: 2; color: ; margin: 0; width: !important }", map[element]string{elP: "margin: 0;"}},
		{"nested rule", "p { color: red; & a { color: blue } margin: 0 } a { color: green }",
			map[element]string{elP: "color: red;", elA: "color: green;"}},
		{"merge markers", "p { content: \"\uE000x\uE001\"; color: red }", map[element]string{elP: "color: red;"}},
		{"unbalanced", "p { color: red", map[element]string{elP: "color: red;"}},
		{"stray braces", "} p { color: red } }", map[element]string{elP: "color: red;"}},
		{"strings as written", `p { content: "a  b` + "\t" + `c"; font-family: 'x\'y;z', serif } a { content: "{"; color: red }`,
			map[element]string{elP: `content: "a  b` + "\t" + `c"; font-family: 'x\'y;z', serif;`, elA: `content: "{"; color: red;`}},
		{"broken string or url", "p { font-family: \"a\n; color: red } hr { background: url(a b.png); margin: 0 }",
			map[element]string{elP: "color: red;", elHr: "margin: 0;"}},
		{"url", `hr { background: url( "a b.png" ) no-repeat, url(x\)y.png) }`,
			map[element]string{elHr: `background: url( "a b.png" ) no-repeat, url(x\)y.png);`}},
		{"escapes", `.x\:y p { color: red } p\:x, p\.inline, \70 { color: blue }`, map[element]string{elP: "color: red;"}},
		{"important with spaces", "p { color: red ! IMPORTANT } .c p { color: blue }", map[element]string{elP: "color: red;"}},
		{"custom properties", "p { --accent: #c00; color: var(--accent) }", map[element]string{elP: "--accent: #c00; color: var(--accent);"}},
		{"html comment delimiters", "<!-- h3 { color: red } -->", map[element]string{elH3: "color: red;"}},
		{"brackets pair by kind", "p { margin: 0; color: [); padding: 0 } a { color: red }", map[element]string{elP: "margin: 0;"}},
		{"commas in functions", ".a:not(.b, .c) p, :is(.x, em) { color: red } :where(.x, .y) li, h1 { color: blue }",
			map[element]string{elH1: "color: blue;"}},
		{"not selectors", "0 p, .5x p, # p, . p, a* p, p >, p ~ { color: red }", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := parseStyles("<html><head><style>" + tt.css + "</style></head></html>")
			if len(tt.want) == 0 && s != nil {
				t.Errorf("styles %q, want none", s)
			}
			for el := range numElements {
				if got := s.style(el); got != tt.want[el] {
					t.Errorf("element %d: %q, want %q", el, got, tt.want[el])
				}
			}
		})
	}
}

func TestStyleBlocks(t *testing.T) {
	layout := `<STYLE>p{a:1}</STYLE><styles>x</styles><style
type="text/css">a{b:2}</style><!-- <style>p{c:3}</style> --><style media="print">p{d:4}</style>` +
		`<!--[if mso]><style>p{e:5}</style><![endif]--><style>ul{f:6}`
	got := styleBlocks(layout)
	want := []string{"p{a:1}", "a{b:2}", "ul{f:6}"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("style blocks %q, want %q", got, want)
	}
	// Text before the <style> that strings.ToLower makes longer: a Turkish
	// title, bytes that are not UTF-8 (a layout in Latin-1).
	for _, before := range []string{"<title>İstanbul İzmir</title>", "<title>Caf\xe9 \xc0 la carte</title>"} {
		for _, layout := range []string{before + "<STYLE>p { color: red }</STYLE>", before + "<style>p { color: red }"} {
			if got := styleBlocks(layout); len(got) != 1 || got[0] != "p { color: red }" {
				t.Errorf("%q: style blocks %q", layout, got)
			}
		}
	}
}

// TestApply: each kind of node gets its element's style, and goldmark's
// HTML renderer writes it, except for code blocks.
func TestApply(t *testing.T) {
	var css strings.Builder
	for name := range elements {
		css.WriteString(name + " { x: " + name + " }\n")
	}
	s := parseStyles("<style>" + css.String() + "</style>")
	md := allKinds + "\n```go\ncode block\n```\n\n    indented\n\n- loose\n\n- list\n\n<https://example.com/> www.example.com\n"
	got := renderStyled(t, stockMarkdown(), s, md)
	for _, want := range []string{
		`<h1 style="x: h1;">`, `<h2 style="x: h2;">`, `<h3 style="x: h3;">`, `<h4 style="x: h4;">`,
		`<p style="x: p;">A paragraph`, `<em style="x: em;">`, `<strong style="x: strong;">`, `<del style="x: del;">`,
		`<code style="x: code;">`, `<a href="https://example.org/" style="x: a;">`, `<a href="https://example.net/" style="x: a;">`,
		`<a href="https://example.com/" style="x: a;">`, `<a href="http://www.example.com" style="x: a;">`,
		`<img src="https://example.org/i.png" alt="an image" style="x: img;">`,
		`<blockquote style="x: blockquote;">`, "<ul style=\"x: ul;\">\n<li style=\"x: li;\">tight</li>", `<ol style="x: ol;">`,
		"<li style=\"x: li;\">\n<p style=\"x: p;\">loose</p>", `<hr style="x: hr;">`, `<table style="x: table;">`,
		`<th style="x: th;">left</th>`, `<th style="x: th;text-align:center">centre</th>`,
		`<td style="x: td;">a</td>`, `<td style="x: td;text-align:center">b</td>`,
		// goldmark writes no attributes for code blocks.
		"<pre><code class=\"language-go\">code block\n", "<pre><code>indented\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %s in\n%s", want, got)
		}
	}
	if n := strings.Count(got, "style="); n != 33 {
		t.Errorf("%d style attributes, want 33:\n%s", n, got)
	}
}

// renderStyled parses md with m, applies s to every node as the Renderer
// does and renders the HTML.
func renderStyled(t *testing.T, m goldmark.Markdown, s styles, md string) string {
	t.Helper()
	doc := m.Parser().Parse(text.NewReader([]byte(md)))
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			s.apply(n)
		}
		return ast.WalkContinue, nil
	})
	var b bytes.Buffer
	if err := m.Renderer().Render(&b, []byte(md), doc); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestApplyNone(t *testing.T) {
	for _, s := range []styles{nil, parseStyles(""), parseStyles("<style>body { margin: 0 }</style>")} {
		if s != nil {
			t.Errorf("styles %q, want nil", s)
		}
		if got, want := renderStyled(t, newMarkdown(), s, allKinds), renderStyled(t, newMarkdown(), nil, allKinds); got != want || strings.Count(got, "style=") != 2 {
			t.Errorf("a layout without rules changed the HTML:\n%s", got)
		}
	}
}

// TestStyleEscaped: a style is an attribute value, whatever the CSS holds.
func TestStyleEscaped(t *testing.T) {
	s := parseStyles(`<style>p { font-family: "A&B" , '<x>' }</style>`)
	got := renderStyled(t, newMarkdown(), s, "text")
	if want := `<p style="font-family: &quot;A&amp;B&quot; , '&lt;x&gt;';">text</p>`; !strings.Contains(got, want) {
		t.Errorf("got %s, want %s", got, want)
	}
}

// BenchmarkParseStyles is the once-per-campaign cost.
func BenchmarkParseStyles(b *testing.B) {
	for b.Loop() {
		parseStyles(templates.DefaultLayout)
	}
}

// FuzzParseStyles: any CSS is read without a panic, and a style read from
// CSS whose strings and brackets close reads back as itself, as the
// declarations of a rule: no token of a value is lost or changed.
func FuzzParseStyles(f *testing.F) {
	for _, tt := range []string{customLayout, templates.DefaultLayout, "p { color: red } a { color: blue !important }",
		`hr { background: url( "a b.png" ) no-repeat } p { font-family: "a;b}", serif; margin: 0 /* none */ }`} {
		f.Add(tt)
	}
	f.Fuzz(func(t *testing.T, sheet string) {
		s := parseStyles("<style>" + sheet + "</style>")
		if !closed(tokenize(sheet)) {
			return
		}
		for el := range elThAligned {
			style := s.style(el)
			if style == "" {
				continue
			}
			if again := parseStyles("<style>p {" + style + "}</style>").style(elP); again != style {
				t.Errorf("%q: element %d: %q reads back as %q", sheet, el, style, again)
			}
		}
	})
}

// closed reports whether the strings and brackets of toks close.
func closed(toks []token) bool {
	var ends []css.TokenType
	for _, tk := range toks {
		switch tk.tt {
		case css.BadStringToken, css.BadURLToken:
			return false
		case css.StringToken:
			if len(tk.text) < 2 || tk.text[len(tk.text)-1] != tk.text[0] || strings.HasSuffix(tk.text, `\`+tk.text[:1]) {
				return false // at the end of the CSS
			}
		case css.RightBraceToken, css.RightBracketToken, css.RightParenthesisToken:
			if len(ends) == 0 || ends[len(ends)-1] != tk.tt {
				return false
			}
			ends = ends[:len(ends)-1]
		}
		if end := closing(tk.tt); end != css.ErrorToken {
			ends = append(ends, end)
		}
	}
	return len(ends) == 0
}
