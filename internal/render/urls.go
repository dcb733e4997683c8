package render

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"html/template"
	"io"
	"strconv"
	"strings"
	tparse "text/template/parse"

	"github.com/yuin/goldmark/ast"

	"github.com/batch-mailer/batch/internal/merge"
)

// A merge field may be in a URL's path, query or fragment, never in its
// scheme, host, port or user name (merge.PlaceInURL): a value must not
// choose where a link goes. The Markdown's URLs are checked once per
// shape, the layout's once per campaign; a message only puts its values
// back.

// checkLink refuses a value in a Markdown link's or image's URL dest
// where it would choose where the URL goes, or a file when local (a
// relative URL is one); src is the shape.
func (r *Renderer) checkLink(what string, dest, src []byte, local bool, at func() string) error {
	before, _, ok := merge.Literals(dest)
	if !ok {
		return nil
	}
	place := merge.PlaceInURL(string(before))
	if local && place == merge.InPath {
		place = merge.InFile
	}
	if place == merge.InPath {
		return nil
	}
	return &merge.URLError{Pos: r.tokenPos(src, dest[len(before):], at), What: what, URL: merge.Elide(string(dest)), Place: place}
}

// checkAutoLink refuses a value in an autolink's URL (<https://…>) where
// it would choose where it goes.
func (r *Renderer) checkAutoLink(n *ast.AutoLink, src []byte, at func() string) error {
	u := n.URL(src)
	if n.AutoLinkType == ast.AutoLinkEmail && !bytes.HasPrefix(bytes.ToLower(u), []byte("mailto:")) {
		u = append([]byte("mailto:"), u...)
	}
	return r.checkLink("link", u, src, false, at)
}

// checkText refuses a value that text shows as part of a URL's host:
// "https://{{.x}}", or "https://example.org{{.x}}", which GFM links up to
// the value. A reader, and a mail client that makes links of the URLs in
// plain text, would take the value for part of the URL.
func (r *Renderer) checkText(n *ast.Text, src []byte, keep func(error), where func(off int) string) {
	for at := n.Segment.Start; at < n.Segment.Stop; at++ {
		i := bytes.Index(src[at:n.Segment.Stop], []byte(merge.TokenOpen))
		if i < 0 {
			return
		}
		at += i
		if u, ok := textURL(string(src[textStart(src, at):at])); ok {
			if place := merge.PlaceInURL(u); place != merge.InPath {
				keep(&merge.URLError{Pos: r.tokenPos(src, src[at:], func() string { return where(at) }), What: "URL", URL: u + "{{…}}", Place: place})
			}
		}
	}
}

// textURL returns the start of the URL that text, which a value follows,
// ends with, as a reader or a mail client that links the URLs in text
// takes it: its last word from a scheme and "://", or from "www.".
func textURL(text string) (string, bool) {
	word := text[strings.LastIndexAny(text, " \t\r\n()[]\"'`")+1:]
	lower := strings.ToLower(word)
	if i := strings.Index(lower, "://"); i > 0 {
		j := i
		for j > 0 && (isLetter(word[j-1]) || '0' <= word[j-1] && word[j-1] <= '9' || strings.IndexByte("+-.", word[j-1]) >= 0) {
			j--
		}
		if j < i {
			return strings.ReplaceAll(word[j:], ">", ""), true // <https://…> ends
		}
	}
	if i := strings.Index(lower, "www."); i == 0 || i > 0 && !isLetter(word[i-1]) {
		return "http://" + strings.ReplaceAll(word[i:], ">", ""), true
	}
	return "", false
}

// textStart returns where the template's text before src[at:] starts:
// at its line's start, or after the value before it on the line.
func textStart(src []byte, at int) int {
	start := bytes.LastIndexByte(src[:at], '\n') + 1
	if j := bytes.LastIndex(src[start:at], []byte(merge.TokenClose)); j >= 0 {
		start += j + len(merge.TokenClose)
	}
	return start
}

// tokenPos gives "file:line:column" in the template of the action that
// printed the value whose token tok starts with, found by the template's
// text before it on its line (its first use in the template), or else
// what at says (the template's line of the construct).
func (r *Renderer) tokenPos(src, tok []byte, at func() string) string {
	if end := bytes.Index(tok, []byte(merge.TokenClose)); end >= 0 {
		tok = tok[:end+len(merge.TokenClose)]
	}
	i := bytes.Index(src, tok)
	if i < 0 || len(tok) == 0 {
		return at()
	}
	text := string(src[textStart(src, i):i])
	if text == "" {
		return at()
	}
	source := r.opts.TemplateSource
	for _, s := range []string{text + "{{", text} {
		if k := strings.Index(source, s); k >= 0 {
			k += len(text)
			if rest, ok := strings.CutPrefix(source[k:], "{{"); ok {
				// The action's first word, where text/template places
				// it: after a trim marker ("{{- ") and spaces.
				if len(rest) > 1 && rest[0] == '-' && strings.IndexByte(" \t\r\n", rest[1]) >= 0 {
					rest = rest[1:]
				}
				k = len(source) - len(strings.TrimLeft(rest, " \t\r\n"))
			}
			upTo := source[:k]
			line := 1 + strings.Count(upTo, "\n")
			col := len(upTo) - strings.LastIndexByte(upTo, '\n')
			return r.opts.TemplateName + ":" + strconv.Itoa(line) + ":" + strconv.Itoa(col)
		}
	}
	return at()
}

// layoutURLs returns a problem for every value the layout writes into a
// URL where it would choose where the URL goes: its href, src and the
// other attributes html/template takes for URLs, srcset, and url() in
// CSS. It walks the layout's templates in the order they write, keeping,
// on each way through their branches, the text written since the last
// '<': enough to tell the tag, the attribute and the URL a value lands
// in. html/template's escaping, done here once, says which values it
// treats as URLs: one of those that this can't place is refused too.
func layoutURLs(t *template.Template) []error {
	var terr *template.Error
	if err := t.Execute(io.Discard, LayoutData{}); errors.As(err, &terr) {
		return nil // not escaped: every message reports it
	}
	if t.Tree == nil {
		return nil
	}
	w := &layoutWalk{t: t, tree: t.Tree, seen: map[tparse.Node]bool{}, walked: map[walkKey][]string{}}
	w.node(t.Tree.Root, []string{""}, dotRow, dotRow)
	if w.gaveUp {
		return []error{fmt.Errorf("%s: its templates call each other too deeply (or themselves) for batch to check the URLs they write: call fewer of them inside each other", t.Name())}
	}
	return w.errs
}

type layoutWalk struct {
	t      *template.Template
	tree   *tparse.Tree // the template being walked
	depth  int          // of {{template}} calls
	gaveUp bool         // past maxDepth or maxSteps
	seen   map[tparse.Node]bool
	errs   []error
	walked map[walkKey][]string // the ways out of a range's body or a template
	steps  int                  // nodes walked, up to maxSteps
}

// walkKey is a range's body or a template, walked with these dots and
// ways in: the same walk gives the same ways out and the same problems.
type walkKey struct {
	list      *tparse.ListNode
	dot, root dotKind
	in        string
}

// The walk's bounds: a layout's templates, each walked once for each way
// into it, are a few thousand nodes; a template that calls itself is
// refused when it is maxDepth deep.
const (
	maxDepth = 32
	maxSteps = 1 << 20
)

// list walks a range's body or a template's, once for each set of ways
// into it.
func (w *layoutWalk) list(n *tparse.ListNode, in []string, dot, root dotKind) []string {
	key := walkKey{n, dot, root, strings.Join(in, "\x02")}
	if out, ok := w.walked[key]; ok {
		return out
	}
	out := w.node(n, in, dot, root)
	w.walked[key] = out
	return out
}

// What the layout has written so far is kept as text since the last '<',
// with these for what actions wrote.
const (
	wroteValue   = "\x00" // an action's output, with no '<' in it (escaped)
	wroteUnknown = "\x01" // output that could be anything: too many ways, too deep
	maxWays      = 64
)

// dotKind is what dot (or $) is: the layout's data, the unsubscribe URL
// ({{with .Unsubscribe}}), or something else.
type dotKind int

const (
	dotRow dotKind = iota
	dotUnsubscribe
	dotOther
)

// node walks n, given the text written on each way to it, and returns
// the same after it.
func (w *layoutWalk) node(n tparse.Node, in []string, dot, root dotKind) []string {
	if w.steps++; w.steps > maxSteps {
		w.gaveUp = true
		return []string{wroteUnknown}
	}
	switch n := n.(type) {
	case *tparse.ListNode:
		if n == nil {
			return in
		}
		for _, c := range n.Nodes {
			in = w.node(c, in, dot, root)
		}
		return in
	case *tparse.TextNode:
		return w.text(n, in)
	case *tparse.ActionNode:
		return w.action(n, in, dot, root)
	case *tparse.IfNode:
		return w.branch(&n.BranchNode, in, dot, dot, root)
	case *tparse.WithNode:
		return w.branch(&n.BranchNode, in, withDot(n.Pipe, dot, root), dot, root)
	case *tparse.RangeNode:
		once := w.list(n.List, in, dotOther, root)
		twice := w.list(n.List, once, dotOther, root)
		out := append(append(append([]string(nil), in...), once...), twice...)
		if n.ElseList != nil {
			out = append(out, w.node(n.ElseList, in, dot, root)...)
		}
		return ways(out)
	case *tparse.TemplateNode:
		return w.template(n, in, dot, root)
	}
	return in // comments, break, continue
}

// text returns what is written on each way after n: the text since its
// last '<', or all of it added to what was before.
func (w *layoutWalk) text(n *tparse.TextNode, in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		if j := bytes.LastIndexByte(n.Text, '<'); j >= 0 {
			s = string(n.Text[j:])
		} else {
			s += string(n.Text)
		}
		out[i] = s
	}
	return ways(out)
}

// action checks an action that writes a list value where it lands, and
// returns what is written on each way after it.
func (w *layoutWalk) action(n *tparse.ActionNode, in []string, dot, root dotKind) []string {
	if len(n.Pipe.Decl) > 0 {
		return in
	}
	if refersToList(n.Pipe, dot, root) {
		w.check(n, in)
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = s + wroteValue
	}
	return ways(out)
}

// template walks the template that n calls, with the dot n passes it.
func (w *layoutWalk) template(n *tparse.TemplateNode, in []string, dot, root dotKind) []string {
	name, _, _ := strings.Cut(n.Name, "$htmltemplate_") // escaped for another context
	callee := w.t.Lookup(name)
	if callee == nil || callee.Tree == nil {
		return in // an empty template: escaping would have failed for a missing one
	}
	if w.depth >= maxDepth {
		w.gaveUp = true
		return []string{wroteUnknown}
	}
	arg := dotOther
	if n.Pipe != nil {
		arg = withDot(n.Pipe, dot, root)
	}
	tree := w.tree
	w.tree, w.depth = callee.Tree, w.depth+1
	out := w.list(callee.Tree.Root, in, arg, arg)
	w.tree, w.depth = tree, w.depth-1
	return out
}

// branch walks an if or a with: its list with dot, its else with outer.
func (w *layoutWalk) branch(n *tparse.BranchNode, in []string, dot, outer, root dotKind) []string {
	out := w.node(n.List, in, dot, root)
	if n.ElseList != nil {
		return ways(append(out, w.node(n.ElseList, in, outer, root)...))
	}
	return ways(append(out, in...))
}

// ways removes repeated texts; past maxWays, what was written is unknown.
func ways(s []string) []string {
	seen := make(map[string]bool, len(s))
	out := make([]string, 0, len(s))
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	if len(out) > maxWays {
		return []string{wroteUnknown}
	}
	return out
}

// check refuses a value that lands, on any way to it, where it would
// choose where a URL goes.
func (w *layoutWalk) check(n *tparse.ActionNode, in []string) {
	if w.seen[n] {
		return
	}
	asURL := escapedAsURL(n.Pipe)
	for _, s := range in {
		spot := urlSpot(s)
		place := merge.InPath
		switch spot.kind {
		case inSrcset:
			place = merge.InSrcset
		case inURL:
			place = placeAfter(spot.before)
		case inTextSpot:
			if u, ok := textURL(spot.before); ok {
				spot.what, spot.before, place = "URL", u, placeAfter(u)
			}
		default:
			if asURL { // html/template's URL, batch can't tell where in it
				spot.what, spot.before, place = "URL", "", merge.InUnknown
			}
		}
		if place == merge.InPath {
			continue
		}
		w.seen[n] = true
		shown := strings.ReplaceAll(spot.before, wroteValue, "{{…}}") + "{{…}}"
		w.errs = append(w.errs, &merge.URLError{Pos: merge.Position(w.tree, n), What: spot.what, URL: shown, Place: place})
		return
	}
}

// placeAfter is merge.PlaceInURL for the text of a URL before a value,
// in which other actions may have written: once a '/', '?' or '#' has
// ended the host, what they wrote can't change it; before, batch can't
// tell.
func placeAfter(before string) merge.URLPlace {
	switch i := strings.Index(before, wroteValue); {
	case i == 0:
		return merge.InUnknown
	case i > 0:
		return merge.PlaceInURL(before[:i])
	}
	return merge.PlaceInURL(before)
}

// escapedAsURL reports whether html/template escapes the action's value
// as (part of) a URL: in an attribute or in CSS's url(). (A CSS string,
// which it also escapes as one, is left out.)
func escapedAsURL(p *tparse.PipeNode) bool {
	has := map[string]bool{}
	for _, c := range p.Cmds {
		if id, ok := c.Args[0].(*tparse.IdentifierNode); ok {
			has[id.Ident] = true
		}
	}
	return has["_html_template_urlnormalizer"] || has["_html_template_urlescaper"] || has["_html_template_srcsetescaper"] ||
		has["_html_template_urlfilter"] && !has["_html_template_cssescaper"]
}

// refersToList reports whether a pipeline uses the recipient's data, that
// is anything of the layout's data but the unsubscribe URL (which is the
// campaign's: its host is the campaign file's).
func refersToList(n tparse.Node, dot, root dotKind) bool {
	switch n := n.(type) {
	case *tparse.PipeNode:
		for _, c := range n.Cmds {
			if refersToList(c, dot, root) {
				return true
			}
		}
	case *tparse.CommandNode:
		for _, a := range n.Args {
			if refersToList(a, dot, root) {
				return true
			}
		}
	case *tparse.FieldNode:
		return !(dot == dotRow && len(n.Ident) == 1 && n.Ident[0] == "Unsubscribe")
	case *tparse.VariableNode:
		return !(root == dotRow && len(n.Ident) == 2 && n.Ident[0] == "$" && n.Ident[1] == "Unsubscribe")
	case *tparse.DotNode:
		return dot != dotUnsubscribe
	case *tparse.ChainNode:
		return true
	}
	return false // functions and constants
}

// withDot is what dot becomes given p: {{with .Unsubscribe}} or
// {{template "x" .}} keep track of the unsubscribe URL and of the data.
func withDot(p *tparse.PipeNode, dot, root dotKind) dotKind {
	if len(p.Cmds) == 0 || len(p.Cmds[0].Args) != 1 {
		return dotOther
	}
	switch a := p.Cmds[0].Args[0].(type) {
	case *tparse.DotNode:
		if len(p.Cmds) == 1 {
			return dot
		}
	case *tparse.FieldNode:
		if dot == dotRow && len(a.Ident) == 1 && a.Ident[0] == "Unsubscribe" {
			return dotUnsubscribe
		}
	case *tparse.VariableNode:
		if root == dotRow && len(a.Ident) == 2 && a.Ident[0] == "$" && a.Ident[1] == "Unsubscribe" {
			return dotUnsubscribe
		}
	}
	return dotOther
}

// A spot is where in the HTML a value lands, told by the text written
// since the last '<' before it.
type spot struct {
	kind   spotKind
	what   string // "href attribute", "CSS url()"…
	before string // the URL's text before the value (entities decoded)
}

type spotKind int

const (
	notURL spotKind = iota
	inURL
	inSrcset
	inTextSpot // before: the text since the tag or the comment before it
)

// urlSpot reads the tag that s (the text since the last '<', or all of
// it before the first) starts with, up to the end, and tells where a
// value there lands: in an attribute's value, a <style> element, text,
// or elsewhere (a tag's name, a comment, a script, or unknown).
func urlSpot(s string) spot {
	rest, ok := strings.CutPrefix(s, "<")
	switch {
	case strings.Contains(s, wroteUnknown):
		return spot{}
	case !ok:
		return spot{kind: inTextSpot, before: html.UnescapeString(s)} // before the first tag
	case strings.HasPrefix(rest, "!--"):
		if _, text, ok := strings.Cut(rest[3:], "-->"); ok {
			return spot{kind: inTextSpot, before: html.UnescapeString(text)}
		}
		return spot{}
	case rest == "" || !isLetter(rest[0]): // an end tag, <!DOCTYPE…>
		if _, text, ok := strings.Cut(rest, ">"); ok {
			return spot{kind: inTextSpot, before: html.UnescapeString(text)}
		}
		return spot{}
	}
	end := strings.IndexAny(rest, htmlSpace+"/>")
	if end < 0 {
		return spot{} // in the tag's name
	}
	return tagSpot(strings.ToLower(rest[:end]), rest[end:])
}

// htmlSpace is the white space between a tag's attributes.
const htmlSpace = " \t\n\f\r"

// tagSpot is urlSpot in the attributes of a tag, rest, after its name.
func tagSpot(tag, rest string) spot {
	for {
		rest = strings.TrimLeft(rest, htmlSpace+"/")
		switch {
		case rest == "":
			return spot{} // between attributes
		case rest[0] == '>' && tag == "style":
			return cssSpot(rest[1:])
		case rest[0] == '>' && tag == "script":
			return spot{}
		case rest[0] == '>':
			return spot{kind: inTextSpot, before: html.UnescapeString(rest[1:])}
		}
		end := strings.IndexAny(rest[1:], htmlSpace+"/>=")
		if end < 0 {
			return spot{} // in an attribute's name
		}
		name := strings.ToLower(rest[:1+end])
		rest = strings.TrimLeft(rest[1+end:], htmlSpace)
		if rest == "" || rest[0] != '=' {
			continue // an attribute without a value
		}
		value, next, closed := cutAttrValue(strings.TrimLeft(rest[1:], htmlSpace))
		if !closed {
			return attrSpot(name, value)
		}
		rest = next
	}
}

// cutAttrValue cuts an attribute's value, quoted or not, from the start of
// s; ok is false for one that s ends in, value then being what is there of
// it.
func cutAttrValue(s string) (value, rest string, ok bool) {
	if s != "" && (s[0] == '"' || s[0] == '\'') {
		i := strings.IndexByte(s[1:], s[0])
		if i < 0 {
			return s[1:], "", false
		}
		return s[1 : 1+i], s[2+i:], true
	}
	i := strings.IndexAny(s, htmlSpace+">")
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i:], true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// attrSpot is a value in attribute name, after raw.
func attrSpot(name, raw string) spot {
	value := html.UnescapeString(raw)
	switch attr := urlAttr(name); {
	case attr == "srcset":
		return spot{kind: inSrcset, what: "srcset attribute", before: value}
	case attr == "style":
		return cssSpot(value)
	case attr != "":
		return spot{kind: inURL, what: name + " attribute", before: value}
	}
	return spot{}
}

// urlAttr returns "srcset" or "style" for those, name for an attribute
// whose value html/template takes for a URL, "" for others: its list and
// rules (html/template's attrType), as a value there is escaped as one.
func urlAttr(name string) string {
	short := name
	if s, ok := strings.CutPrefix(name, "data-"); ok {
		short = s
	} else if prefix, s, ok := strings.Cut(name, ":"); ok {
		if prefix == "xmlns" {
			return name
		}
		short = s
	}
	switch short {
	case "srcset", "style":
		return short
	case "action", "archive", "background", "cite", "classid", "codebase", "data", "formaction", "href",
		"icon", "longdesc", "manifest", "poster", "profile", "src", "usemap", "xmlns":
		return name
	}
	if strings.HasPrefix(short, "on") {
		return ""
	}
	if strings.Contains(short, "src") || strings.Contains(short, "uri") || strings.Contains(short, "url") {
		return name
	}
	return ""
}

// cssSpot is a value in CSS, after css: inside url(…) or not.
func cssSpot(css string) spot {
	i := strings.LastIndex(strings.ToLower(css), "url(")
	if i < 0 {
		return spot{}
	}
	rest := strings.TrimLeft(css[i+len("url("):], " \t\n\f\r")
	if rest != "" && (rest[0] == '"' || rest[0] == '\'') {
		if strings.IndexByte(rest[1:], rest[0]) >= 0 {
			return spot{} // the string is closed
		}
		rest = rest[1:]
	} else if strings.IndexByte(rest, ')') >= 0 {
		return spot{}
	}
	return spot{kind: inURL, what: "CSS url()", before: rest}
}
