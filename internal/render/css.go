package render

import (
	"bytes"
	"slices"
	"sort"
	"strings"

	tdparse "github.com/tdewolff/parse/v2"
	"github.com/tdewolff/parse/v2/css"

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
// media attribute, and declarations that hold a template action ("{{"),
// a nested rule, or a string or url() that the lexer found broken (a line
// end inside quotes).
//
// The CSS is split into tokens by tdewolff/parse's lexer (CSS Syntax Level
// 3: strings, escapes, url(), comments, brackets that pair by kind); the
// rules, declarations and selectors are read from the tokens here. Its
// parser (css.NewParser) is not used, as it writes values for a minifier:
// it drops the white space around ",", "/", ":", "!" and "=", so that the
// built-in layout's "font-family: Menlo, Consolas, monospace" would be
// inlined as "Menlo,Consolas,monospace", and reads the declarations after
// a nested rule ("p { color: red; & a { color: blue } margin: 0 }") as the
// outer rule's, where batch drops the text up to the next ';'. A value is
// inlined as written, each run of white space and comments outside its
// strings one space.
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
	for _, sheet := range styleBlocks(layout) {
		forEachRule(tokenize(sheet), func(prelude, block []token) {
			ds := parseDeclarations(block)
			if len(ds) == 0 {
				return
			}
			for _, sel := range split(prelude, css.CommaToken) {
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
	el, ok := elementOf(n)
	if !ok {
		return
	}
	if el == elPre {
		if v := s[elPreCode]; v != nil {
			n.SetAttributeString(codeStyleAttr, v)
		}
	}
	if v := s[el]; v != nil {
		n.SetAttributeString("style", v)
	}
}

// elementOf returns the kind of element n is written as, or false for one
// the layout's CSS is not inlined into.
func elementOf(n ast.Node) (element, bool) {
	switch n := n.(type) {
	case *ast.Paragraph:
		return elP, true
	case *ast.Heading:
		if n.Level < 1 || n.Level > 6 {
			return 0, false
		}
		return elH1 + element(n.Level-1), true
	case *ast.Link, *ast.AutoLink:
		return elA, true
	case *ast.Image:
		return imageElement(n), true
	case *ast.List:
		if n.IsOrdered() {
			return elOl, true
		}
		return elUl, true
	case *ast.ListItem:
		return elLi, true
	case *ast.Blockquote:
		return elBlockquote, true
	case *ast.FencedCodeBlock, *ast.CodeBlock:
		return elPre, true
	case *ast.CodeSpan:
		return elCode, true
	case *ast.ThematicBreak:
		return elHr, true
	case *ast.Emphasis:
		if n.Level == 2 {
			return elStrong, true
		}
		return elEm, true
	case *east.Table:
		return elTable, true
	case *east.TableCell:
		return cellElement(n), true
	case *east.Strikethrough:
		return elDel, true
	}
	return 0, false
}

// imageElement is img, or img.inline for an image of that class.
func imageElement(n *ast.Image) element {
	if class, ok := n.AttributeString("class"); ok {
		if c, _ := class.([]byte); bytes.Equal(c, inlineClass.([]byte)) {
			return elImgInline
		}
	}
	return elImg
}

// cellElement is th or td, aligned or not.
func cellElement(n *east.TableCell) element {
	header := n.Parent() != nil && n.Parent().Kind() == east.KindTableHeader
	switch {
	case header && n.Alignment != east.AlignNone:
		return elThAligned
	case header:
		return elTh
	case n.Alignment != east.AlignNone:
		return elTdAligned
	}
	return elTd
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
	// The tags' names in lower case, byte for byte, so that an index in
	// lower is one in layout (strings.ToLower makes İ and a byte that is
	// not UTF-8 longer).
	lower := []byte(layout)
	for i, c := range lower {
		if 'A' <= c && c <= 'Z' {
			lower[i] = c + 'a' - 'A'
		}
	}
	for i := 0; i < len(lower); {
		j := bytes.IndexByte(lower[i:], '<')
		if j < 0 {
			break
		}
		i += j
		if bytes.HasPrefix(lower[i:], []byte("<!--")) {
			end := bytes.Index(lower[i+4:], []byte("-->"))
			if end < 0 {
				break
			}
			i += 4 + end + 3
			continue
		}
		if !bytes.HasPrefix(lower[i:], []byte("<style")) || i+6 >= len(lower) ||
			!strings.ContainsRune(" \t\r\n\f>/", rune(lower[i+6])) {
			i++
			continue
		}
		tagEnd := bytes.IndexByte(lower[i:], '>')
		if tagEnd < 0 {
			break
		}
		attrs := lower[i+6 : i+tagEnd]
		start := i + tagEnd + 1
		end := bytes.Index(lower[start:], []byte("</style"))
		if end < 0 {
			end = len(lower) - start
		}
		if !bytes.Contains(attrs, []byte("media")) {
			out = append(out, layout[start:start+end])
		}
		i = start + end
	}
	return out
}

// token is a CSS token of a <style> block: its type and its text, a part
// of the block. Comments and the HTML comment delimiters CSS ignores
// ("<!--", "-->") are white space, and a run of white space is one token
// whose text is " ".
type token struct {
	tt   css.TokenType
	text string
}

// tokenize splits a <style> block's CSS into tokens, by tdewolff/parse's
// lexer (CSS Syntax Level 3: strings, escapes, url(), comments).
func tokenize(sheet string) []token {
	l := css.NewLexer(tdparse.NewInputString(sheet))
	// A layout's CSS has a token for every 2.5 to 3 bytes.
	out := make([]token, 0, len(sheet)/2)
	at := 0 // where the token starts in sheet: tokens follow each other
	for {
		tt, data := l.Next()
		if tt == css.ErrorToken {
			return out // the end of sheet: the lexer reads memory, and has no other error
		}
		text := sheet[at : at+len(data)]
		at += len(data)
		switch tt {
		case css.CommentToken, css.CDOToken, css.CDCToken, css.WhitespaceToken:
			if len(out) > 0 && out[len(out)-1].tt == css.WhitespaceToken {
				continue
			}
			tt, text = css.WhitespaceToken, " "
		}
		out = append(out, token{tt, text})
	}
}

// closing returns the token that ends the block tt opens, or
// css.ErrorToken where tt opens none.
func closing(tt css.TokenType) css.TokenType {
	switch tt {
	case css.LeftBraceToken:
		return css.RightBraceToken
	case css.LeftBracketToken:
		return css.RightBracketToken
	case css.LeftParenthesisToken, css.FunctionToken:
		return css.RightParenthesisToken
	}
	return css.ErrorToken
}

// ruleEnds are the tokens that end a rule's selectors, for scan.
const ruleEnds = 1<<css.SemicolonToken | 1<<css.LeftBraceToken | 1<<css.RightBraceToken

// scan returns the index of the first token of toks from i that is in
// stops (a set of 1<<type) and outside the blocks that start from i
// ((), [], {}, a function's arguments), or len(toks). A closing bracket
// that closes no block is an ordinary token.
func scan(toks []token, i int, stops uint64) int {
	var in [8]css.TokenType
	ends := in[:0] // the closing tokens of the blocks toks[i] is in
	for ; i < len(toks); i++ {
		tt := toks[i].tt
		switch {
		case len(ends) == 0 && stops&(1<<tt) != 0:
			return i
		case len(ends) > 0 && tt == ends[len(ends)-1]:
			ends = ends[:len(ends)-1]
		case closing(tt) != css.ErrorToken:
			ends = append(ends, closing(tt))
		}
	}
	return len(toks)
}

// blockEnd returns the index of the token that ends the block toks[i]
// opens, or len(toks) where it is not closed.
func blockEnd(toks []token, i int) int {
	return scan(toks, i+1, 1<<closing(toks[i].tt))
}

// after returns the index after the block toks[i] opens.
func after(toks []token, i int) int {
	return min(blockEnd(toks, i)+1, len(toks))
}

// split splits toks at the tokens of type sep outside blocks.
func split(toks []token, sep css.TokenType) [][]token {
	var out [][]token
	for {
		i := scan(toks, 0, 1<<sep)
		out = append(out, toks[:i])
		if i == len(toks) {
			return out
		}
		toks = toks[i+1:]
	}
}

// trim returns toks without the white space at either end.
func trim(toks []token) []token {
	for len(toks) > 0 && toks[0].tt == css.WhitespaceToken {
		toks = toks[1:]
	}
	for len(toks) > 0 && toks[len(toks)-1].tt == css.WhitespaceToken {
		toks = toks[:len(toks)-1]
	}
	return toks
}

// join returns the text of toks.
func join(toks []token) string {
	if len(toks) == 1 {
		return toks[0].text
	}
	var b strings.Builder
	for _, t := range toks {
		b.WriteString(t.text)
	}
	return b.String()
}

// forEachRule calls f with the selectors and the declaration block of each
// style rule of toks, skipping at-rules. A ';' or a '}' before a rule's
// '{' ends what comes before it (the end of an @import, a stray brace).
func forEachRule(toks []token, f func(prelude, block []token)) {
	for i := 0; i < len(toks); {
		j := scan(toks, i, ruleEnds)
		if j == len(toks) {
			return
		}
		if toks[j].tt != css.LeftBraceToken {
			i = j + 1
			continue
		}
		end := blockEnd(toks, j) // nested blocks are skipped whole
		prelude := trim(toks[i:j])
		if len(prelude) > 0 && prelude[0].tt != css.AtKeywordToken {
			f(prelude, toks[j+1:end])
		}
		i = end + 1
	}
}

// parseDeclarations parses a declaration block.
func parseDeclarations(block []token) []declaration {
	var out []declaration
	for _, d := range split(block, css.SemicolonToken) {
		if decl, ok := parseDeclaration(trim(d)); ok {
			out = append(out, decl)
		}
	}
	return out
}

// parseDeclaration parses one "property: value", trimmed; ok is false for
// one that is left out.
func parseDeclaration(d []token) (declaration, bool) {
	if len(d) == 0 || d[0].tt != css.IdentToken && d[0].tt != css.CustomPropertyNameToken {
		return declaration{}, false
	}
	property := strings.ToLower(d[0].text)
	d = trim(d[1:])
	if len(d) == 0 || d[0].tt != css.ColonToken || !isIdent(property) {
		return declaration{}, false
	}
	d, important := cutImportant(trim(d[1:]))
	if len(d) == 0 || slices.ContainsFunc(d, func(t token) bool {
		// a nested rule, or a value the lexer gave up on
		return t.tt == css.LeftBraceToken || t.tt == css.BadStringToken || t.tt == css.BadURLToken
	}) {
		return declaration{}, false
	}
	value := join(d)
	if strings.Contains(value, "{{") ||
		strings.ContainsFunc(value, func(r rune) bool { return r >= 0xE000 && r <= 0xF8FF }) {
		return declaration{}, false // the last: private use, as merge's markers are
	}
	return declaration{property: property, value: value, important: important}, true
}

// cutImportant returns a value without its "!important", trimmed, and
// whether it had one.
func cutImportant(d []token) ([]token, bool) {
	n := len(d)
	if n < 2 || d[n-1].tt != css.IdentToken || !strings.EqualFold(d[n-1].text, "important") {
		return d, false
	}
	bang := trim(d[:n-1])
	if len(bang) == 0 || bang[len(bang)-1].tt != css.DelimToken || bang[len(bang)-1].text != "!" {
		return d, false
	}
	return trim(bang[:len(bang)-1]), true
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
func target(sel []token) (element, [3]int, bool) {
	var spec [3]int
	compounds, combinators, ok := parseSelector(trim(sel))
	if !ok || len(compounds) == 0 {
		return 0, spec, false
	}
	tail := compounds[len(compounds)-1]
	el, ok := elements[tail.name]
	switch {
	case tail.inline:
		el = elImgInline
	case !ok || !tail.bare:
		return 0, spec, false
	}
	for i, c := range compounds {
		if c.pseudo && i < len(compounds)-1 {
			return 0, spec, false // a state such as :hover can't be inlined
		}
		spec[0], spec[1], spec[2] = spec[0]+c.spec[0], spec[1]+c.spec[1], spec[2]+c.spec[2]
	}
	el, ok = ancestors(el, compounds, combinators)
	if !ok {
		return 0, spec, false
	}
	return el, spec, true
}

// ancestors returns the element that el, the last of compounds, is with
// the compounds before it, or false where those make it not every el.
func ancestors(el element, compounds []compound, combinators []byte) (element, bool) {
	last := len(compounds) - 1
	content := func(i int) bool { _, ok := elements[compounds[i].name]; return ok && !wrappers[compounds[i].name] }
	for i := range last {
		switch {
		case combinators[i] != ' ' && combinators[i] != '>':
			return 0, false // "h1 + p": not every p
		case el == elCode && compounds[i].bare && compounds[i].name == "pre":
			// "pre code": the code of code blocks; "pre > code" too, as a
			// code block's <code> is its <pre>'s child.
			if i != last-1 {
				return 0, false // "pre span code": no such thing
			}
			el = elPreCode
		case content(i):
			return 0, false // "blockquote p": not every p
		case combinators[i] == '>' && (i == last-1 || content(i+1)):
			return 0, false // ".content > p": not every p
		}
	}
	return el, true
}

// compound is a compound selector: "p", ".content", "img.inline", "a:hover".
type compound struct {
	name   string // its element name, lower case; "" for none or *
	spec   [3]int
	pseudo bool // it has a pseudo-class or pseudo-element other than :root
	bare   bool // it is an element name alone
	inline bool // it is img.inline
}

// combinator returns the combinator t is (' ' for white space, '>', '+' or
// '~'), or 0.
func combinator(t token) byte {
	switch {
	case t.tt == css.WhitespaceToken:
		return ' '
	case t.tt == css.DelimToken && (t.text == ">" || t.text == "+" || t.text == "~"):
		return t.text[0]
	}
	return 0
}

// parseSelector splits a complex selector into its compound selectors and
// the combinators between them (' ', '>', '+' or '~'). ok is false where
// the selector is not CSS this parser understands.
func parseSelector(sel []token) (compounds []compound, combinators []byte, ok bool) {
	for i := 0; i < len(sel); {
		comb := byte(0)
		for ; i < len(sel) && combinator(sel[i]) != 0; i++ {
			if c := combinator(sel[i]); c != ' ' || comb == 0 {
				comb = c
			}
		}
		if len(compounds) > 0 {
			combinators = append(combinators, comb)
		} else if comb != 0 && comb != ' ' {
			return nil, nil, false // a leading combinator
		}
		if i == len(sel) {
			return nil, nil, false // a combinator at the end
		}
		j := i
		for j < len(sel) && combinator(sel[j]) == 0 {
			if closing(sel[j].tt) != css.ErrorToken {
				j = after(sel, j)
			} else {
				j++
			}
		}
		c, ok := parseCompound(sel[i:j])
		if !ok {
			return nil, nil, false
		}
		compounds = append(compounds, c)
		i = j
	}
	return compounds, combinators, true
}

// parseCompound reads a compound selector; ok is false where it is not CSS
// this parser understands.
func parseCompound(toks []token) (c compound, ok bool) {
	i := 0
	switch t := toks[0]; {
	case t.tt == css.IdentToken:
		c.name = strings.ToLower(t.text)
		c.spec[2]++
		i++
	case t.tt == css.DelimToken && t.text == "*":
		i++
	}
	c.bare = i == len(toks) && c.name != ""
	c.inline = c.name == "img" && isInlineClass(toks[1:])
	for i < len(toks) {
		switch t := toks[i]; {
		case t.tt == css.HashToken:
			c.spec[0]++
			i++
		case t.tt == css.DelimToken && t.text == "." && i+1 < len(toks) && toks[i+1].tt == css.IdentToken:
			c.spec[1]++
			i += 2
		case t.tt == css.LeftBracketToken:
			c.spec[1]++
			i = after(toks, i)
		case t.tt == css.ColonToken:
			if i, ok = c.pseudoClass(toks, i+1); !ok {
				return c, false
			}
		default:
			return c, false
		}
	}
	return c, true
}

// isInlineClass reports whether toks, after a compound's type selector, are
// ".inline" and nothing else: the class of an image in a line of text (a
// class name is case-sensitive).
func isInlineClass(toks []token) bool {
	return len(toks) == 2 && toks[0].tt == css.DelimToken && toks[0].text == "." &&
		toks[1].tt == css.IdentToken && toks[1].text == "inline"
}

// pseudoClass reads the pseudo-class or pseudo-element at toks[i], after
// its ':', into c and returns the index after it; ok is false where it is
// not CSS this parser understands.
func (c *compound) pseudoClass(toks []token, i int) (int, bool) {
	element := i < len(toks) && toks[i].tt == css.ColonToken // ::first-line
	if element {
		c.spec[2]++
		i++
	} else {
		c.spec[1]++
	}
	if i == len(toks) {
		return i, false
	}
	switch toks[i].tt {
	case css.IdentToken:
		c.pseudo = c.pseudo || element || !strings.EqualFold(toks[i].text, "root")
		return i + 1, true
	case css.FunctionToken: // :not(.x), :nth-child(2n+1)
		c.pseudo = true
		return after(toks, i), true
	}
	return i, false
}
