package render

import (
	"bytes"
	"html"
	"strconv"
	"strings"
	"unicode"

	"github.com/yuin/goldmark/ast"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/util"

	"github.com/batch-mailer/batch/internal/merge"
)

// plainText renders the document as text that reads as text: no Markdown
// syntax but "~~" around struck text, which has no other plain form;
// paragraphs and headings separated by a blank line; "• " and "1. " list
// items; quotes behind "> " (mail's own quoting); code indented by four
// spaces; links as "text (URL)"; images by their alt text, in brackets
// inside a sentence; tables as aligned columns. goldmark has no text
// renderer, so this walks its tree. Values are put back as text, and
// inside link URLs percent-encoded.
func plainText(doc ast.Node, src []byte, values merge.Values) []byte {
	t := &textRenderer{src: src, values: values}
	out := bytes.TrimRight(t.blocks(doc), "\n")
	return append(out, '\n')
}

// fixedText renders a shape's text once, its values left as tokens, for
// Values.Expand to put back in each message, escaped as plainText would
// (a URL's tokens made percent-encoded, so that they are put back
// percent-encoded). It reports false when the text's form depends on the
// values: a table with a value in a cell (its widths), a link with a value
// in its text, or one whose text might equal its URL once the value is in.
// The values of a message must also be plain (merge.Values.Plain): one
// that is empty or holds a line end can change how lines are indented or
// trimmed.
func fixedText(doc ast.Node, src []byte) ([]byte, bool) {
	t := &textRenderer{src: src, keep: true, fixed: true}
	out := bytes.TrimRight(t.blocks(doc), "\n")
	return append(out, '\n'), t.fixed
}

type textRenderer struct {
	src    []byte
	values merge.Values
	keep   bool // values left as tokens (fixedText)
	fixed  bool // with keep: nothing depends on the values yet
}

// put appends text from the source to out, values put back: each where it
// is read, so that no value is ever read twice (one that looks like a
// token stays as it is).
func (t *textRenderer) put(out, text []byte) []byte {
	if t.keep {
		return append(out, text...)
	}
	return t.values.Expand(out, text, merge.EscapeText, merge.EscapeURL)
}

// url gives a link's URL, its values percent-encoded.
func (t *textRenderer) url(dest []byte) []byte {
	if t.keep {
		return merge.URLTokens(dest)
	}
	return t.values.Expand(nil, dest, merge.EscapeURL, merge.EscapeURL)
}

// blocks renders the block children of n, separated by blank lines (or by
// line ends in a tight list).
func (t *textRenderer) blocks(n ast.Node) []byte {
	var out []byte
	tight := false
	if l, ok := n.Parent().(*ast.List); ok && n.Kind() == ast.KindListItem {
		tight = l.IsTight
	}
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		b := t.block(c)
		if len(b) == 0 {
			continue
		}
		if len(out) > 0 {
			if tight {
				out = append(out, '\n')
			} else {
				out = append(out, "\n\n"...)
			}
		}
		out = append(out, bytes.TrimRight(b, "\n")...)
	}
	return out
}

func (t *textRenderer) block(n ast.Node) []byte {
	switch n := n.(type) {
	case *ast.Paragraph, *ast.TextBlock, *ast.Heading:
		return t.inlines(n)
	case *ast.ThematicBreak:
		return []byte("──────────")
	case *ast.CodeBlock, *ast.FencedCodeBlock:
		var out []byte
		lines := n.Lines()
		for i := 0; i < lines.Len(); i++ {
			seg := lines.At(i)
			out = append(out, "    "...)
			out = t.put(out, bytes.TrimRight(seg.Value(t.src), "\r\n"))
			out = append(out, '\n')
		}
		return out
	case *ast.HTMLBlock:
		return stripTags(segments(n.Lines(), t.src))
	case *ast.Blockquote:
		return prefixLines(t.blocks(n), "> ", "> ")
	case *ast.List:
		var out []byte
		num := n.Start
		for item := n.FirstChild(); item != nil; item = item.NextSibling() {
			marker := "• "
			if n.IsOrdered() {
				marker = strconv.Itoa(num) + ". "
				num++
			}
			body := t.blocks(item)
			if len(out) > 0 {
				if n.IsTight {
					out = append(out, '\n')
				} else {
					out = append(out, "\n\n"...)
				}
			}
			out = append(out, prefixLines(body, marker, strings.Repeat(" ", len([]rune(marker))))...)
		}
		return out
	case *east.Table:
		return t.table(n)
	default:
		if n.Type() == ast.TypeBlock {
			return t.blocks(n)
		}
		return t.inlines(n)
	}
}

// inlines renders the inline children of n as one run of text.
func (t *textRenderer) inlines(n ast.Node) []byte {
	var out []byte
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		out = t.inline(out, c)
	}
	return out
}

func (t *textRenderer) inline(out []byte, n ast.Node) []byte {
	switch n := n.(type) {
	case *ast.Text, *ast.String, *ast.CodeSpan:
		out = t.text(out, n)
	case *ast.Image:
		// An image's alt text stands for it: as it is where the image
		// stands alone, in brackets inside a sentence, so that it doesn't
		// read as one of its words.
		alt := t.inlines(n)
		if len(alt) > 0 && !alone(n, t.src) {
			out = append(out, '[')
			out = append(out, alt...)
			return append(out, ']')
		}
		out = append(out, alt...)
	case *east.Strikethrough:
		// Struck text is still read, and must read as struck.
		out = append(out, "~~"...)
		out = append(out, t.inlines(n)...)
		out = append(out, "~~"...)
	case *ast.Link:
		label := t.inlines(n)
		if t.keep && !fixedLink(label, n.Destination) {
			t.fixed = false
		}
		out = appendLink(out, label, t.url(n.Destination))
	case *ast.AutoLink:
		// The URL is what the reader needs; its label is the same URL.
		dest := t.url(n.URL(t.src))
		out = appendLink(out, dest, dest)
	case *ast.RawHTML:
		if raw := segments(n.Segments, t.src); bytes.HasPrefix(bytes.ToLower(raw), []byte("<br")) {
			out = append(out, '\n')
		}
	case *east.TaskCheckBox:
		out = append(out, taskBox(n.IsChecked)...)
	default:
		out = append(out, t.inlines(n)...)
	}
	return out
}

// text renders a run of text: a Text, a String or a CodeSpan.
func (t *textRenderer) text(out []byte, n ast.Node) []byte {
	switch n := n.(type) {
	case *ast.Text:
		v := n.Segment.Value(t.src)
		if n.IsRaw() {
			out = t.put(out, v)
		} else {
			out = t.put(out, unescape(v))
		}
		if n.HardLineBreak() || n.SoftLineBreak() { // joined ones cleared (softBreaks)
			out = append(out, '\n')
		}
	case *ast.String:
		if n.IsCode() || n.IsRaw() {
			out = t.put(out, n.Value)
		} else {
			out = t.put(out, unescape(n.Value))
		}
	case *ast.CodeSpan:
		for c := n.FirstChild(); c != nil; c = c.NextSibling() {
			if s, ok := c.(*ast.Text); ok {
				out = t.put(out, s.Segment.Value(t.src))
			} else if s, ok := c.(*ast.String); ok {
				out = t.put(out, s.Value)
			}
		}
	}
	return out
}

// alone reports whether img is all its block (paragraph, heading, table
// cell) shows: nothing else there but white space, or the link or
// emphasis that holds it.
func alone(img ast.Node, src []byte) bool {
	block := img.Parent()
	for block != nil && block.Type() == ast.TypeInline {
		block = block.Parent()
	}
	if block == nil {
		return true
	}
	only := true
	_ = ast.Walk(block, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering || n == block {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Image:
			if n == img {
				return ast.WalkSkipChildren, nil // its alt text is its own
			}
			only = false
		case *ast.Text:
			only = len(bytes.TrimSpace(n.Segment.Value(src))) == 0
		case *ast.String:
			only = len(bytes.TrimSpace(n.Value)) == 0
		case *ast.AutoLink, *east.TaskCheckBox:
			only = false
		}
		if !only {
			return ast.WalkStop, nil
		}
		return ast.WalkContinue, nil
	})
	return only
}

// fixedLink reports whether appendLink writes a link the same way whatever
// its values: none in its text, and none in its URL, or a text that can't
// equal the URL once the values are in, as it doesn't start with what
// comes before the first of them or doesn't end with what comes after the
// last.
func fixedLink(label, dest []byte) bool {
	if merge.HasValue(label) {
		return false
	}
	before, after, ok := merge.Literals(dest)
	if !ok {
		return true
	}
	shown := before
	if bytes.HasPrefix(bytes.ToLower(before), []byte("mailto:")) {
		shown = before[len("mailto:"):]
	}
	return !bytes.HasSuffix(label, after) || !bytes.HasPrefix(label, before) && !bytes.HasPrefix(label, shown)
}

// appendLink writes a link as its text and, unless the text already says
// it, its URL in brackets; mailto: links as the address.
func appendLink(out, label, dest []byte) []byte {
	shown := dest
	if bytes.HasPrefix(bytes.ToLower(dest), []byte("mailto:")) {
		shown = dest[len("mailto:"):]
	}
	switch {
	case len(dest) == 0:
		return append(out, label...)
	case len(label) == 0:
		return append(out, shown...)
	case bytes.Equal(label, shown) || bytes.Equal(label, dest):
		return append(out, shown...)
	}
	out = append(out, label...)
	out = append(out, " ("...)
	out = append(out, shown...)
	return append(out, ')')
}

func (t *textRenderer) table(n *east.Table) []byte {
	var rows [][]string
	for r := n.FirstChild(); r != nil; r = r.NextSibling() {
		var row []string
		for c := r.FirstChild(); c != nil; c = c.NextSibling() {
			cell := t.inlines(c)
			if t.keep && merge.HasValue(cell) {
				t.fixed = false // the widths are the values'
			}
			row = append(row, merge.OneLine(string(cell)))
		}
		rows = append(rows, row)
	}
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], width(cell))
		}
	}
	var out []byte
	for ri, row := range rows {
		for i, cell := range row {
			out = append(out, cell...)
			if i < len(row)-1 {
				out = append(out, strings.Repeat(" ", widths[i]-width(cell)+2)...)
			}
		}
		out = append(bytes.TrimRight(out, " "), '\n')
		if ri == 0 {
			for i, w := range widths {
				out = append(out, strings.Repeat("─", w)...)
				if i < len(widths)-1 {
					out = append(out, "  "...)
				}
			}
			out = append(out, '\n')
		}
	}
	return out
}

// width is the number of terminal columns s takes: two for East Asian wide
// characters, one for the rest.
func width(s string) int {
	w := 0
	for _, r := range s {
		w++
		if unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hangul, r) || unicode.Is(unicode.Hiragana, r) ||
			unicode.Is(unicode.Katakana, r) || r >= 0xFF00 && r <= 0xFF60 || r >= 0x3000 && r <= 0x303F ||
			r >= 0x1F300 && r <= 0x1FAFF {
			w++
		}
	}
	return w
}

// prefixLines puts first before the first line of b and rest before every
// other non-empty line.
func prefixLines(b []byte, first, rest string) []byte {
	var out []byte
	for i, line := range bytes.Split(b, []byte("\n")) {
		p := rest
		if i == 0 {
			p = first
		}
		if len(line) == 0 && i > 0 {
			out = append(out, strings.TrimRight(p, " ")...)
		} else {
			out = append(out, p...)
			out = append(out, line...)
		}
		out = append(out, '\n')
	}
	return bytes.TrimRight(out, "\n")
}

// unescape turns Markdown source text into what it says: backslash escapes
// and character references resolved.
func unescape(v []byte) []byte {
	if bytes.IndexByte(v, '\\') < 0 && bytes.IndexByte(v, '&') < 0 {
		return v
	}
	v = util.UnescapePunctuations(v)
	v = util.ResolveNumericReferences(v)
	return util.ResolveEntityNames(v)
}

// stripTags gives the text of a raw HTML block: tags dropped, character
// references resolved, white space collapsed, <br> and block ends as lines.
func stripTags(raw []byte) []byte {
	var out []byte
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '<')
		if i < 0 {
			out = append(out, raw...)
			break
		}
		out = append(out, raw[:i]...)
		j := bytes.IndexByte(raw[i:], '>')
		if j < 0 {
			break
		}
		tag := bytes.ToLower(raw[i+1 : i+j])
		for _, b := range []string{"br", "/p", "/div", "/h", "/li", "/tr", "/table"} {
			if bytes.HasPrefix(tag, []byte(b)) {
				out = append(out, '\n')
				break
			}
		}
		raw = raw[i+j+1:]
	}
	var lines []string
	for _, l := range strings.Split(html.UnescapeString(string(out)), "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			lines = append(lines, l)
		}
	}
	return []byte(strings.Join(lines, "\n"))
}
