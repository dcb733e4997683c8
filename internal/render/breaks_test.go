package render

import (
	"bytes"
	"net/mail"
	"strings"
	"testing"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// shownBlocks reads an HTML document as a browser shows it: the text of
// each paragraph, list item and heading, its text nodes joined and white
// space collapsed (an image as its alt text in brackets, to see the
// spaces around it).
func shownBlocks(t *testing.T, doc []byte) []string {
	t.Helper()
	root, err := html.Parse(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var text func(n *html.Node, b *strings.Builder)
	text = func(n *html.Node, b *strings.Builder) {
		switch {
		case n.Type == html.TextNode:
			b.WriteString(n.Data)
		case n.DataAtom == atom.Img:
			for _, a := range n.Attr {
				if a.Key == "alt" {
					b.WriteString("[" + a.Val + "]")
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			text(c, b)
		}
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		switch n.DataAtom {
		case atom.P, atom.Li, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
			var b strings.Builder
			text(n, &b)
			blocks = append(blocks, strings.Join(strings.Fields(b.String()), " "))
			return
		case atom.Head:
			return
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(root)
	return blocks
}

// shownText reads a text part as a reader does: paragraphs apart, the
// lines of each joined, white space collapsed.
func shownText(text []byte) []string {
	var out []string
	for _, p := range strings.Split(strings.ReplaceAll(string(text), "\r\n", "\n"), "\n\n") {
		if p = strings.Join(strings.Fields(p), " "); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// hardWrapped is a template written as people write Markdown, a line
// break wherever the line got long: the break after punctuation, before
// and after a code span, a link, emphasis and an image, between Chinese
// characters, and between Chinese and English, inside and outside inline
// elements.
const hardWrapped = `Plain line one.
Plain line two.
See example.org.
See https://example.org/docs for more, end,
next in
` + "`server.go`" + ` read
the [docs](https://example.org/docs) and
*emphasis*
and **strong** text
![star](star.png) after a break.

中文段落，
换行不会插入空格。中文和
English 混排。
English and
中文 mixed.

这是**粗体**
和` + "`代码`" + `，
**粗体**
中文，[链接](https://example.org/)
之后。他说“你好”
然后走了。

한국어
문장은 띄어 씁니다.

欢迎{{.name}}
参加。Dear {{.name}}
{{.name}},
welcome.

Hard break  
here, and\
here.
`

func TestSoftBreaks(t *testing.T) {
	f := newFixture(t)
	f.file("star.png", testPNG)
	r := f.renderer()
	m, err := r.Render(&Input{Seq: 1, To: mail.Address{Address: "a@example.com"}, Subject: "s",
		Markdown: merged(t, hardWrapped, map[string]string{"name": "张伟"})})
	if err != nil {
		t.Fatal(err)
	}
	_, root := parse(t, m.Data)
	want := []string{
		"Plain line one. Plain line two. See example.org. See https://example.org/docs for more, end, next in server.go read " +
			"the docs and emphasis and strong text [star] after a break.",
		"中文段落，换行不会插入空格。中文和 English 混排。 English and 中文 mixed.",
		"这是粗体和代码，粗体中文，链接之后。他说“你好”然后走了。",
		// Korean puts spaces between words.
		"한국어 문장은 띄어 씁니다.",
		// A value beside a break reads as the script on the break's
		// other side: the shape is rendered once, before the values.
		"欢迎张伟参加。Dear 张伟 张伟, welcome.",
		"Hard break here, and here.",
	}
	got := shownBlocks(t, root.find("text/html")[0].body)
	if len(got) < len(want) {
		t.Fatalf("%d blocks in the HTML, want %d at least:\n%q", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("HTML paragraph %d shows\n %q\nwant\n %q", i+1, got[i], want[i])
		}
	}

	// The text part joins the same lines, and keeps the others.
	want[0] = strings.Replace(want[0], "the docs and", "the docs (https://example.org/docs) and", 1)
	want[2] = strings.Replace(want[2], "链接之后", "链接 (https://example.org/)之后", 1)
	text := root.find("text/plain")[0].body
	got = shownText(text)
	if len(got) < len(want) {
		t.Fatalf("%d paragraphs in the text, want %d at least:\n%s", len(got), len(want), text)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("text paragraph %d reads\n %q\nwant\n %q", i+1, got[i], want[i])
		}
	}
	for _, line := range []string{"Plain line one.\r\n", "\r\nPlain line two.\r\n", "中文段落，换行不会插入空格。中文和\r\nEnglish", "Hard break\r\nhere, and\r\nhere."} {
		if !bytes.Contains(text, []byte(line)) {
			t.Errorf("the text part has no %q: a soft break that is a space keeps its line, a joining one doesn't:\n%s", line, text)
		}
	}
}

func TestJoins(t *testing.T) {
	for _, tt := range []struct {
		a, b rune
		join bool
	}{
		{'中', '文', true},
		{'。', '中', true},  // wide punctuation
		{'中', '，', true},  // fullwidth
		{'あ', 'ア', true},  // kana
		{'ｱ', 'ｲ', true},  // halfwidth katakana (H)
		{'”', '然', true},  // ambiguous punctuation beside a wide character
		{'中', '…', true},  // and the other way
		{'한', '국', false}, // Hangul
		{'中', '한', false},
		{'”', '한', false},
		{'中', 'E', false},
		{'E', '中', false},
		{'.', 'S', false},
		{',', 'n', false},
		{'.', '中', false},
		{'”', 'S', false},
		{'\u200B', 'a', true}, // a zero-width space is the break already
		{'a', '\u200B', true},
		{objectRune, '中', false}, // an image
		{'中', objectRune, false},
		// A value (its token's first or last character) beside a wide
		// character is taken to be of its script.
		{'\uE001', '中', true},
		{'中', '\uE000', true},
		{'\uE001', 'a', false},
		{'a', '\uE000', false},
		{'\uE001', '\uE000', false},
		{'\uE001', '한', false},
		{'\uE001', '”', false},
	} {
		if got := joinsValues(tt.a, tt.b); got != tt.join {
			t.Errorf("joinsValues(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.join)
		}
	}
}
