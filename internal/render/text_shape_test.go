package render

import (
	"bytes"
	"strings"
	"testing"

	"github.com/yuin/goldmark/text"

	"github.com/batch-mailer/batch/internal/merge"
)

// textTemplates are bodies whose text a shape renders once (fixed) or not.
var textTemplates = []struct {
	body  string
	fixed bool
}{
	{benchTemplate, true},
	{"# Hi {{.v}}\n\nText {{.v}}, *em {{.v}}*, `code {{.v}}`.\n\n> quote {{.v}}\n\n- item {{.v}}\n  - nested {{.v}}\n\n1. one {{.v}}\n", true},
	{"[a link](https://example.org/p?x={{.v}}) and <https://example.org/a/{{.v}}> and <mailto:{{.v}}@example.org>\n", true},
	{"![alt {{.v}}](https://example.org/i.png?{{.v}})\n\n    code {{.v}}\n\n```\nfenced {{.v}}\n```\n", true},
	{"[mail me](mailto:{{.v}}@example.org) [x](https://x.example/{{.v}})\n", true},
	{"Line one {{.v}}  \nline two {{.v}}\\\nline three\n\n---\n\n- [x] done {{.v}}\n- [ ] todo\n", true},
	{"中文{{.v}}\n中文\n", true},
	{"Soft {{.v}}\n`code {{.v}}` and\n中文{{.v}}\n**粗体**\n[链接](https://x.example/)\n![i {{.v}}](https://x.example/i.png)\n{{.v}}\n{{.v}}\nend\n", true},
	{"~~struck {{.v}}~~ and ![alt {{.v}}](https://x.example/i.png) inline, ![](https://x.example/i.png)\n\n[![logo](https://x.example/i.png)](https://x.example/{{.v}})\n", true},
	{"| a | b |\n|---|---|\n| {{.v}} | x |\n", false},            // widths
	{"[{{.v}}](https://example.org/)\n", false},                  // the link's text
	{"[https://x.example/a](https://x.example/{{.v}})\n", false}, // text may equal the URL
	{"[x.example/a](mailto:x.example/{{.v}})\n", false},
}

var textValues = []string{
	"Ada", "张伟 🐍", "", "*Bob* <b>&amp;</b> [x](javascript:alert(1))", "a+b&c d/é?#",
	"\uE000v0\uE001", "%EE%80%80v0%EE%80%81", "\uE00061\uE001", "tab\there", "trailing space ",
	"x\ny", "\r\nBcc: x@example.org", "line\u2028sep", "\x00\x1b[31m",
}

// checkTextShape renders body with v both ways and compares.
func checkTextShape(t *testing.T, body, v string, wantFixed *bool) {
	t.Helper()
	md := merged(t, body, map[string]string{"v": v, "name": v, "city": v, "plan": v, "email": v})
	src, values := merge.Extract(nil, md)
	tree := newMarkdown().Parser().Parse(text.NewReader(src))
	cached, fixed := fixedText(tree, src)
	if wantFixed != nil && fixed != *wantFixed {
		t.Errorf("%q: fixed %v, want %v", body, fixed, *wantFixed)
	}
	if !fixed || !values.Plain() {
		return
	}
	walked := plainText(tree, src, values)
	if got := values.Expand(nil, cached, merge.EscapeText, merge.EscapeURL); !bytes.Equal(got, walked) {
		t.Errorf("%q with %q:\nonce: %q\nwalk: %q", body, v, got, walked)
	}
}

func TestFixedText(t *testing.T) {
	for _, tt := range textTemplates {
		for _, v := range textValues {
			checkTextShape(t, tt.body, v, &tt.fixed)
		}
	}
	for v, plain := range map[string]bool{"a": true, "b\nc": false, "d\r": false, "": false, "\x00\x1b": false, "\x00e": true} {
		if got := (merge.Values{"x", v}).Plain(); got != plain {
			t.Errorf("Values{x, %q}.Plain() = %v", v, got)
		}
	}
}

func FuzzFixedText(f *testing.F) {
	for i := range textTemplates {
		for _, v := range textValues {
			f.Add(uint8(i), v)
		}
	}
	f.Fuzz(func(t *testing.T, i uint8, v string) {
		checkTextShape(t, textTemplates[int(i)%len(textTemplates)].body, v, nil)
	})
}

// FuzzFixedTextMarkdown puts a value into arbitrary Markdown: where the
// shape's text is fixed, putting the value back gives what the walk gives.
func FuzzFixedTextMarkdown(f *testing.F) {
	for _, tt := range textTemplates {
		before, after, _ := strings.Cut(tt.body, "{{.v}}")
		f.Add(before, after, "Ada")
	}
	f.Add("| a |\n|---|\n| ", " |\n", "x")
	f.Add("[", "](https://x.example/)", "y")
	f.Add("* ", "\n  * b", "\uE000v0\uE001")
	f.Fuzz(func(t *testing.T, before, after, v string) {
		if strings.Contains(before+after, "{{") || strings.Contains(before+after, "}}") || strings.ContainsAny(before+after, "\uE000\uE001\uE002") {
			return // template actions and token characters are the template checker's business
		}
		if _, err := merge.ParseBody("t.md", before+"{{.v}}"+after); err != nil {
			return
		}
		checkTextShape(t, before+"{{.v}}"+after, v, nil)
	})
}
