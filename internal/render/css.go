package render

import (
	"bytes"
	"sort"
	"strings"

	"github.com/yuin/goldmark/ast"
	east "github.com/yuin/goldmark/extension/ast"
)

// CSS inlining. Many mail clients (the Gmail apps, much webmail) drop a
// message's <style> blocks, so the layout's rules for the elements the
// Markdown renders are also written into each element's style attribute.
// The <style> blocks stay in the layout for the clients that read them
// (@media queries work nowhere else).
//
// The layout's CSS is read once per campaign (parseStyles); a message only
// looks up its nodes' kinds (apply). What is inlined:
//
//   - rules whose selector ends in a plain element name the Markdown
//     renders (p, h1-h6, a, img, ul, ol, li, blockquote, pre, code, table,
//     th, td, hr, strong, em, del), with no class, id, attribute or pseudo
//     part on that element;
//   - whatever comes before that element is taken to be the layout's
//     wrapper around the body (".content p", "body td p", "table td") and
//     assumed to match, except: "pre code" (also "pre > code") styles the
//     <code> of code blocks only (a code span is never inside a <pre>),
//     which "code" rules style too; another ancestor the Markdown alone makes
//     ("blockquote p", "li p"), a sibling combinator ("h1 + p"), a child
//     combinator (".content > p") or a pseudo-class on an ancestor
//     (".x:hover p") make the selector one that can't be written as a
//     style per kind of element, and it is left to the <style> block;
//   - and one class: "img.inline" styles an image in a line of text (an
//     icon; the renderer gives it class="inline", see inText), which "img"
//     rules style too.
//
// Declarations cascade as in a browser: by !important, then specificity,
// then source order; each property appears once, in the order of the
// declarations that won, so a shorthand and its longhands keep their
// meaning. !important itself is not inlined, so that an @media rule with
// !important still overrides the inline style where it applies. Skipped:
// comments, at-rules (@media, @font-face, @import, @supports ...), <style>
// blocks inside HTML comments (Outlook's conditional comments) or with a
// media attribute, and declarations that hold a template action ("{{").
//
// What goldmark's HTML renderer does with a style attribute (v1.8.7): it
// writes it, HTML-escaped, for paragraphs, headings, links, autolinks,
// images, lists, list items, blockquotes, code spans, thematic breaks,
// emphasis, tables, table cells (appending its own text-align for aligned
// columns) and strikethrough. It writes no attributes at all for code
// blocks (<pre><code> is fixed text), so their styles reach the message
// only through codeBlockRenderer, which the Markdown renderer must
// register.
//
// Raw HTML written in the template is not styled.

// element is a kind of element the Markdown renders, as the layout's CSS
// names it; the index of its style in styles.
type element uint8

const (
	elP element = iota
	elH1
	elH2
	elH3
	elH4
	elH5
	elH6
	elA
	elImg
	elUl
	elOl
	elLi
	elBlockquote
	elPre
	elCode    // a code span
	elPreCode // the code of a code block: "code" and "pre code" rules
	elTable
	elTh
	elTd
	elHr
	elStrong
	elEm
	elDel
	elImgInline // an image in a line of text: "img" and "img.inline" rules
	elThAligned // th and td without the final ';', for goldmark to
	elTdAligned // append "text-align:..." to
	numElements
)

// elements are the element names that may end an inlined selector.
var elements = map[string]element{
	"p": elP, "h1": elH1, "h2": elH2, "h3": elH3, "h4": elH4, "h5": elH5, "h6": elH6,
	"a": elA, "img": elImg, "ul": elUl, "ol": elOl, "li": elLi, "blockquote": elBlockquote,
	"pre": elPre, "code": elCode, "table": elTable, "th": elTh, "td": elTd, "hr": elHr,
	"strong": elStrong, "em": elEm, "del": elDel,
}

// wrappers are the names in elements that a layout may also wrap the body
// in, so that an ancestor of that name is assumed to match.
var wrappers = map[string]bool{"table": true, "td": true, "th": true}

// codeStyleAttr is the attribute apply gives a code block for the style of
// its <code>; goldmark ignores it, codeBlockRenderer writes it.
const codeStyleAttr = "batch-code-style"

// styles are the layout's CSS declarations for each kind of element the
// Markdown renders, parsed once per campaign: the value of a style
// attribute (a []byte, as an any to be set without allocating), or nil,
// indexed by element. A nil styles sets nothing.
type styles []any

// parseStyles reads the <style> blocks of a layout.
func parseStyles(layout string) styles {
	var decls [numElements][]declaration
	order := 0
	for _, css := range styleBlocks(layout) {
		forEachRule(stripComments(css), func(prelude, block string) {
			ds := parseDeclarations(block)
			if len(ds) == 0 {
				return
			}
			for _, sel := range split(prelude, ',') {
				el, spec, ok := target(sel)
				if !ok {
					continue
				}
				for _, d := range ds {
					d.spec, d.order = spec, order
					order++
					decls[el] = append(decls[el], d)
					switch el {
					case elCode:
						decls[elPreCode] = append(decls[elPreCode], d)
					case elImg:
						decls[elImgInline] = append(decls[elImgInline], d)
					}
				}
			}
		})
	}
	s := make(styles, numElements)
	some := false
	for el := range elThAligned {
		style := cascade(decls[el])
		if style == "" {
			continue
		}
		some = true
		s[el] = []byte(style)
		switch el {
		case elTh:
			s[elThAligned] = []byte(strings.TrimSuffix(style, ";"))
		case elTd:
			s[elTdAligned] = []byte(strings.TrimSuffix(style, ";"))
		}
	}
	if !some {
		return nil
	}
	return s
}

// apply sets the style attribute of n from the layout's CSS.
func (s styles) apply(n ast.Node) {
	if s == nil {
		return
	}
	var el element
	switch n := n.(type) {
	case *ast.Paragraph:
		el = elP
	case *ast.Heading:
		if n.Level < 1 || n.Level > 6 {
			return
		}
		el = elH1 + element(n.Level-1)
	case *ast.Link, *ast.AutoLink:
		el = elA
	case *ast.Image:
		el = elImg
		if class, ok := n.AttributeString("class"); ok {
			if c, _ := class.([]byte); bytes.Equal(c, inlineClass.([]byte)) {
				el = elImgInline
			}
		}
	case *ast.List:
		el = elUl
		if n.IsOrdered() {
			el = elOl
		}
	case *ast.ListItem:
		el = elLi
	case *ast.Blockquote:
		el = elBlockquote
	case *ast.FencedCodeBlock, *ast.CodeBlock:
		if v := s[elPreCode]; v != nil {
			n.SetAttributeString(codeStyleAttr, v)
		}
		el = elPre
	case *ast.CodeSpan:
		el = elCode
	case *ast.ThematicBreak:
		el = elHr
	case *ast.Emphasis:
		el = elEm
		if n.Level == 2 {
			el = elStrong
		}
	case *east.Table:
		el = elTable
	case *east.TableCell:
		header := n.Parent() != nil && n.Parent().Kind() == east.KindTableHeader
		switch {
		case header && n.Alignment != east.AlignNone:
			el = elThAligned
		case header:
			el = elTh
		case n.Alignment != east.AlignNone:
			el = elTdAligned
		default:
			el = elTd
		}
	case *east.Strikethrough:
		el = elDel
	default:
		return
	}
	if v := s[el]; v != nil {
		n.SetAttributeString("style", v)
	}
}

// declaration is one "property: value" of a rule.
type declaration struct {
	property, value string
	important       bool
	spec            [3]int // the selector's specificity
	order           int    // place in the layout
}

// cascade merges the declarations for one kind of element into the value
// of a style attribute, "property: value; ...;", or "".
func cascade(ds []declaration) string {
	if len(ds) == 0 {
		return ""
	}
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.important != b.important {
			return b.important
		}
		if a.spec != b.spec {
			return a.spec[0] < b.spec[0] || a.spec[0] == b.spec[0] &&
				(a.spec[1] < b.spec[1] || a.spec[1] == b.spec[1] && a.spec[2] < b.spec[2])
		}
		return a.order < b.order
	})
	// Later wins: keep each property's last declaration, in the order of
	// those last declarations.
	last := map[string]int{}
	for i, d := range ds {
		last[d.property] = i
	}
	var b strings.Builder
	for i, d := range ds {
		if last[d.property] != i {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(d.property)
		b.WriteString(": ")
		b.WriteString(d.value)
		b.WriteByte(';')
	}
	return b.String()
}

// styleBlocks returns the text of a layout's <style> elements, leaving out
// those inside HTML comments and those for some media only.
func styleBlocks(layout string) []string {
	var out []string
	lower := strings.ToLower(layout)
	for i := 0; i < len(lower); {
		j := strings.IndexByte(lower[i:], '<')
		if j < 0 {
			break
		}
		i += j
		if strings.HasPrefix(lower[i:], "<!--") {
			end := strings.Index(lower[i+4:], "-->")
			if end < 0 {
				break
			}
			i += 4 + end + 3
			continue
		}
		if !strings.HasPrefix(lower[i:], "<style") || i+6 >= len(lower) ||
			!strings.ContainsRune(" \t\r\n\f>/", rune(lower[i+6])) {
			i++
			continue
		}
		tagEnd := strings.IndexByte(lower[i:], '>')
		if tagEnd < 0 {
			break
		}
		attrs := lower[i+6 : i+tagEnd]
		start := i + tagEnd + 1
		end := strings.Index(lower[start:], "</style")
		if end < 0 {
			end = len(lower) - start
		}
		if !strings.Contains(attrs, "media") {
			out = append(out, layout[start:start+end])
		}
		i = start + end
	}
	return out
}

// stripComments removes CSS comments and the HTML comment delimiters CSS
// ignores.
func stripComments(css string) string {
	var b strings.Builder
	for i := 0; i < len(css); {
		switch c := css[i]; {
		case c == '"' || c == '\'':
			end := skipString(css, i)
			b.WriteString(css[i:end])
			i = end
		case strings.HasPrefix(css[i:], "/*"):
			end := strings.Index(css[i+2:], "*/")
			if end < 0 {
				return b.String()
			}
			b.WriteByte(' ')
			i += 2 + end + 2
		case strings.HasPrefix(css[i:], "<!--"):
			b.WriteByte(' ')
			i += 4
		case strings.HasPrefix(css[i:], "-->"):
			b.WriteByte(' ')
			i += 3
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// skipString returns the index after the string that starts at s[i].
func skipString(s string, i int) int {
	q := s[i]
	for i++; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case q, '\n':
			return i + 1
		}
	}
	return len(s)
}

// scan returns the index of the first byte of s from i that is in stops
// and outside strings, parentheses, brackets and braces, or len(s).
func scan(s string, i int, stops string) int {
	depth := 0
	for i < len(s) {
		c := s[i]
		switch {
		case depth == 0 && strings.IndexByte(stops, c) >= 0:
			return i
		case c == '"' || c == '\'':
			i = skipString(s, i)
			continue
		case c == '\\':
			i++
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			if depth > 0 {
				depth--
			}
		}
		i++
	}
	return len(s)
}

// split splits s at sep where it is outside strings and brackets.
func split(s string, sep byte) []string {
	var out []string
	for {
		i := scan(s, 0, string(sep))
		out = append(out, s[:i])
		if i == len(s) {
			return out
		}
		s = s[i+1:]
	}
}

// forEachRule calls f with the selectors and the declaration block of each
// style rule of css, skipping at-rules.
func forEachRule(css string, f func(prelude, block string)) {
	for i := 0; i < len(css); {
		j := scan(css, i, "{;}")
		prelude := strings.TrimSpace(css[i:j])
		if j == len(css) {
			return
		}
		if css[j] != '{' { // the end of an @import, or a stray brace
			i = j + 1
			continue
		}
		end := scan(css, j+1, "}") // nested blocks are skipped whole
		if !strings.HasPrefix(prelude, "@") && prelude != "" {
			f(prelude, css[j+1:end])
		}
		i = end + 1
	}
}

// parseDeclarations parses a declaration block.
func parseDeclarations(block string) []declaration {
	var out []declaration
	for _, d := range split(block, ';') {
		colon := scan(d, 0, ":{")
		if colon == len(d) || d[colon] != ':' || strings.ContainsRune(d[colon:], '{') {
			continue // not a declaration, or a nested rule
		}
		property := strings.ToLower(strings.TrimSpace(d[:colon]))
		value := strings.Join(strings.Fields(d[colon+1:]), " ")
		if !isIdent(property) || value == "" || strings.Contains(value, "{{") ||
			strings.ContainsFunc(value, func(r rune) bool { return r >= 0xE000 && r <= 0xF8FF }) {
			continue // the last: private use, as merge's markers are
		}
		important := false
		if i := strings.LastIndexByte(value, '!'); i >= 0 &&
			strings.EqualFold(strings.TrimSpace(value[i+1:]), "important") {
			important = true
			value = strings.TrimSpace(value[:i])
			if value == "" {
				continue
			}
		}
		out = append(out, declaration{property: property, value: value, important: important})
	}
	return out
}

// isIdent reports whether s is a CSS property name.
func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c == '-' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// target returns the element a selector's declarations are inlined into
// and its specificity, or false for a selector that can't be inlined.
func target(sel string) (element, [3]int, bool) {
	var spec [3]int
	compounds, combinators := parseSelector(strings.TrimSpace(sel))
	if len(compounds) == 0 {
		return 0, spec, false
	}
	tail := compounds[len(compounds)-1]
	el, ok := elements[strings.ToLower(tail)]
	if len(tail) == len("img.inline") && strings.EqualFold(tail[:3], "img") && tail[3:] == ".inline" {
		el, ok = elImgInline, true // a class name is case-sensitive
	}
	if !ok {
		return 0, spec, false
	}
	names := make([]string, len(compounds))
	for i, c := range compounds {
		name, s, pseudo, ok := compound(c)
		if !ok || pseudo && i < len(compounds)-1 {
			return 0, spec, false // a state such as :hover can't be inlined
		}
		names[i] = name
		spec[0], spec[1], spec[2] = spec[0]+s[0], spec[1]+s[1], spec[2]+s[2]
	}
	last := len(compounds) - 1
	content := func(i int) bool { _, ok := elements[names[i]]; return ok && !wrappers[names[i]] }
	for i := range last {
		switch {
		case combinators[i] != ' ' && combinators[i] != '>':
			return 0, spec, false // "h1 + p": not every p
		case el == elCode && strings.EqualFold(compounds[i], "pre"):
			// "pre code": the code of code blocks; "pre > code" too, as a
			// code block's <code> is its <pre>'s child.
			if i != last-1 {
				return 0, spec, false // "pre span code": no such thing
			}
			el = elPreCode
		case content(i):
			return 0, spec, false // "blockquote p": not every p
		case combinators[i] == '>' && (i == last-1 || content(i+1)):
			return 0, spec, false // ".content > p": not every p
		}
	}
	return el, spec, true
}

// parseSelector splits a complex selector into its compound selectors and
// the combinators between them (' ', '>', '+' or '~').
func parseSelector(sel string) (compounds []string, combinators []byte) {
	for i := 0; i < len(sel); {
		comb := byte(0)
		for i < len(sel) && strings.IndexByte(" \t\r\n\f>+~", sel[i]) >= 0 {
			if sel[i] != ' ' && sel[i] != '\t' && sel[i] != '\r' && sel[i] != '\n' && sel[i] != '\f' {
				comb = sel[i]
			} else if comb == 0 {
				comb = ' '
			}
			i++
		}
		if i == len(sel) {
			break
		}
		if len(compounds) > 0 {
			combinators = append(combinators, comb)
		} else if comb != 0 && comb != ' ' {
			return nil, nil // a leading combinator
		}
		j := scan(sel, i, " \t\r\n\f>+~")
		compounds = append(compounds, sel[i:j])
		i = j
	}
	return compounds, combinators
}

// compound returns the element name of a compound selector (lower case,
// "" for none or *), its specificity and whether it has a pseudo-class or
// pseudo-element other than :root. ok is false where the compound is not
// CSS this parser understands.
func compound(c string) (name string, spec [3]int, pseudo, ok bool) {
	i := 0
	for i < len(c) && (isNameByte(c[i]) || c[i] == '*') {
		i++
	}
	name = strings.ToLower(c[:i])
	if name == "*" {
		name = ""
	} else if name != "" {
		spec[2]++
	}
	for i < len(c) {
		start := i
		switch c[i] {
		case '#':
			spec[0]++
		case '.':
			spec[1]++
		case '[':
			spec[1]++
			i = scan(c, i+1, "]")
		case ':':
			if strings.HasPrefix(c[i:], "::") {
				spec[2]++
				i++
			} else {
				spec[1]++
			}
		default:
			return "", spec, false, false
		}
		i++
		for i < len(c) && isNameByte(c[i]) {
			i++
		}
		if i < len(c) && c[i] == '(' {
			i = scan(c, i+1, ")") + 1
		}
		if c[start] == ':' && !strings.EqualFold(c[start:min(i, len(c))], ":root") {
			pseudo = true
		}
	}
	return name, spec, pseudo, true
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c >= 0x80
}
