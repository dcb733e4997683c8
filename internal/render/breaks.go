package render

import (
	"unicode"
	"unicode/utf8"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"

	"github.com/batch-mailer/batch/internal/merge"
)

// softBreaks is the goldmark extension that decides, once in the parsed
// tree, which soft line breaks (the line ends inside a paragraph) join
// their lines: those between two characters of a script written without
// spaces (Chinese, Japanese), by the segment break transformation rules of
// CSS Text 4 (https://drafts.csswg.org/css-text-4/#line-break-transform).
// Every other soft break is a space, as CommonMark has it: the HTML
// renderer writes it as a line end and the text renderer keeps the line.
//
// It marks a break that joins by clearing its Text's SoftLineBreak, so
// that both renderers only follow the flag. It replaces goldmark's
// WithEastAsianLineBreaks, which only compares a break's Text with a Text
// after it: a break before a code span, a link, emphasis or an image, or
// after one, was lost in any language ("in<code>server.go</code>"), and
// its CSS3Draft style drops any break beside ASCII punctuation
// ("example.org.See"). This looks through inline elements for the
// characters on either side, as a browser lays them out.
type softBreaks struct{}

// Extend implements goldmark.Extender.
func (softBreaks) Extend(m goldmark.Markdown) {
	m.Parser().AddOptions(parser.WithASTTransformers(util.Prioritized(softBreaks{}, 1000)))
}

// Transform implements parser.ASTTransformer.
func (softBreaks) Transform(doc *ast.Document, reader text.Reader, _ parser.Context) {
	src := reader.Source()
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		t, ok := n.(*ast.Text)
		if !entering || !ok || !t.SoftLineBreak() || t.HardLineBreak() {
			return ast.WalkContinue, nil
		}
		before, ok := lastRune(t, src)
		if !ok {
			before, ok = runeBeside(t, src, false)
		}
		if !ok {
			return ast.WalkContinue, nil
		}
		if after, ok := runeBeside(t, src, true); ok && joinsValues(before, after) {
			t.SetSoftLineBreak(false)
		}
		return ast.WalkContinue, nil
	})
}

// joinsValues is joins where a or b may be a merge field's value: the
// tree is a shape's, parsed once, where each value is a token of
// private-use characters (merge.Extract), its text not known yet. A value
// beside a wide character reads as the same script, a name in a Chinese
// sentence: the break joins. Beside anything else, or another value, it
// is a space.
func joinsValues(a, b rune) bool {
	switch va, vb := isValue(a), isValue(b); {
	case va && vb:
		return false
	case va:
		return wide(b)
	case vb:
		return wide(a)
	}
	return joins(a, b)
}

// isValue reports whether r is the first or last character of a value's
// token (merge.TokenOpen and merge.TokenClose, see merge.Extract).
func isValue(r rune) bool { return string(r) == merge.TokenOpen || string(r) == merge.TokenClose }

// joins reports whether a line break between a and b goes away (CSS Text
// 4's rules 1 to 3; a browser turns any other into a space):
//   - beside a zero-width space, which is already a break opportunity;
//   - between two East Asian wide characters (East Asian Width F, W or
//     H), neither of them Hangul: Korean puts spaces between words;
//   - between an ambiguous-width punctuation mark or symbol (“”, ……, —)
//     and a wide character other than Hangul.
func joins(a, b rune) bool {
	if a == '\u200B' || b == '\u200B' {
		return true
	}
	ambiguous := func(r rune) bool {
		return util.EastAsianWidth(r) == "A" && (unicode.IsPunct(r) || unicode.IsSymbol(r))
	}
	return wide(a) && wide(b) || wide(a) && ambiguous(b) || ambiguous(a) && wide(b)
}

// wide reports whether r is an East Asian wide character (F, W or H) of a
// script written without spaces: not Hangul.
func wide(r rune) bool {
	w := util.EastAsianWidth(r)
	return (w == "F" || w == "W" || w == "H") && !unicode.Is(unicode.Hangul, r)
}

// objectRune stands for what shows no text around a break (an image, raw
// HTML, a check box): U+FFFC, the object replacement character, as CSS
// treats an atomic inline; it joins nothing.
const objectRune = '\uFFFC'

// runeBeside finds the first character after n (after true) or the last
// before it, in n's siblings and, past the last of them, its parents'
// siblings, up to the block n is in.
func runeBeside(n ast.Node, src []byte, after bool) (rune, bool) {
	for ; n != nil && n.Type() == ast.TypeInline; n = n.Parent() {
		for s := sibling(n, after); s != nil; s = sibling(s, after) {
			if r, ok := edgeRune(s, src, after); ok {
				return r, true
			}
		}
	}
	return 0, false
}

func sibling(n ast.Node, after bool) ast.Node {
	if after {
		return n.NextSibling()
	}
	return n.PreviousSibling()
}

// edgeRune gives the first (first true) or the last character that n
// shows, looking into inline elements; false if n shows none.
func edgeRune(n ast.Node, src []byte, first bool) (rune, bool) {
	switch n := n.(type) {
	case *ast.Text:
		if first {
			return firstRune(n, src)
		}
		return lastRune(n, src)
	case *ast.String:
		return edge(n.Value, first)
	case *ast.AutoLink:
		return edge(n.Label(src), first)
	case *ast.Image, *ast.RawHTML, *east.TaskCheckBox:
		return objectRune, true
	}
	c := n.LastChild()
	if first {
		c = n.FirstChild()
	}
	for ; c != nil; c = sibling(c, first) {
		if r, ok := edgeRune(c, src, first); ok {
			return r, true
		}
	}
	return 0, false
}

func firstRune(t *ast.Text, src []byte) (rune, bool) { return edge(textValue(t, src), true) }
func lastRune(t *ast.Text, src []byte) (rune, bool)  { return edge(textValue(t, src), false) }

// textValue is what a Text shows: its source, escapes resolved.
func textValue(t *ast.Text, src []byte) []byte {
	v := t.Segment.Value(src)
	if t.IsRaw() {
		return v
	}
	return unescape(v)
}

func edge(b []byte, first bool) (rune, bool) {
	if len(b) == 0 {
		return 0, false
	}
	if first {
		r, _ := utf8.DecodeRune(b)
		return r, true
	}
	r, _ := utf8.DecodeLastRune(b)
	return r, true
}
