package merge

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"unicode"
	"unicode/utf8"
)

// valueFunc is the function appended to every printing action of a body
// template, the way html/template appends its escapers.
const valueFunc = "batchValue"

// Template is a parsed template: a body (Markdown, values inert as tokens) or
// a line (a header field, values on one line).
type Template struct {
	t      *template.Template
	name   string
	body   bool // values are inert tokens
	keyed  bool // named by a campaign file key, not a file of its own
	source string

	// simple is set when the template is text, {{.field}} and
	// {{unsubscribe}} alone: Execute writes segs without text/template,
	// with the same bytes (see compileSimple). textLen is the size of
	// the text segments.
	simple  bool
	segs    []segment
	textLen int

	marked     *template.Template // t, its text marked with where it is, for SourceLine
	markedOnce sync.Once
}

// Source returns the template's text.
func (t *Template) Source() string { return t.source }

// ParseBody parses a Markdown body template. name (the file, as the user
// named it) is used in messages.
func ParseBody(name, text string) (*Template, error) { return parse1(name, text, true, false) }

// ParseLine parses a one-line template: a subject or another header field.
func ParseLine(name, text string) (*Template, error) { return parse1(name, text, false, true) }

// parse1 parses a template; body makes its values inert tokens, and keyed
// names it by a key of the campaign file, whose problems carry no line and
// column of their own.
func parse1(name, text string, body, keyed bool) (*Template, error) {
	if i := strings.IndexAny(text, TokenOpen+TokenClose+UnsubscribeMarker); i >= 0 {
		return nil, fmt.Errorf("%s:%d: the characters U+E000 to U+E002 are reserved by batch: remove them",
			name, 1+strings.Count(text[:i], "\n"))
	}
	t := template.New(name).Option("missingkey=error").Funcs(funcs())
	tt := &Template{name: name, body: body, keyed: keyed, source: text}
	t, err := t.Parse(text)
	if err != nil {
		return nil, tt.clean(err)
	}
	tt.t = t
	tt.compileSimple()
	if body {
		for _, tt := range t.Templates() {
			if tt.Tree != nil {
				markActions(tt.Tree.Root)
			}
		}
	}
	return tt, nil
}

// funcs are the functions of every template.
func funcs() template.FuncMap {
	return template.FuncMap{
		valueFunc:     inert,
		"unsubscribe": func() string { return UnsubscribeMarker },
	}
}

// clean makes an error of text/template read as one of batch's, still
// wrapping it: without
// "template: ", and for a line template, whose name is a place in the
// campaign file, without the position inside the value.
func (t *Template) clean(err error) error {
	msg := strings.TrimPrefix(err.Error(), "template: ")
	if t.keyed && strings.HasPrefix(msg, t.name+":") {
		rest := strings.TrimLeft(msg[len(t.name)+1:], "0123456789:")
		msg = t.name + ": " + strings.TrimSpace(rest)
	}
	return &templateError{msg: msg, err: err}
}

// templateError is text/template's error as clean says it; it wraps the
// template's own (text/template's ExecError, for one).
type templateError struct {
	msg string
	err error
}

func (e *templateError) Error() string { return e.msg }
func (e *templateError) Unwrap() error { return e.err }

// markActions appends valueFunc to every action that prints, so that the
// printed value becomes an inert token whatever the pipeline computed.
func markActions(root parse.Node) {
	walk(root, true, func(n parse.Node, _ bool) {
		if n, ok := n.(*parse.ActionNode); ok && len(n.Pipe.Decl) == 0 && !isUnsubscribe(n.Pipe) {
			n.Pipe.Cmds = append(n.Pipe.Cmds, &parse.CommandNode{
				NodeType: parse.NodeCommand,
				Pos:      n.Pipe.Position(),
				Args:     []parse.Node{parse.NewIdentifier(valueFunc).SetPos(n.Pipe.Position())},
			})
		}
	})
}

// walk calls visit for n and every node under it, parent first, with
// whether dot is the row there (it is not in the body of a range or a
// with).
func walk(n parse.Node, top bool, visit func(n parse.Node, top bool)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		visit(n, top)
		for _, c := range n.Nodes {
			walk(c, top, visit)
		}
		return
	case *parse.PipeNode:
		if n == nil {
			return
		}
	}
	visit(n, top)
	switch n := n.(type) {
	case *parse.ActionNode:
		walk(n.Pipe, top, visit)
	case *parse.IfNode:
		walk(n.Pipe, top, visit)
		walk(n.List, top, visit)
		walk(n.ElseList, top, visit)
	case *parse.RangeNode:
		walk(n.Pipe, top, visit)
		walk(n.List, false, visit)
		walk(n.ElseList, top, visit)
	case *parse.WithNode:
		walk(n.Pipe, top, visit)
		walk(n.List, false, visit)
		walk(n.ElseList, top, visit)
	case *parse.TemplateNode:
		if n.Pipe != nil {
			walk(n.Pipe, top, visit)
		}
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			walk(c, top, visit)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			walk(a, top, visit)
		}
	}
}

// UnsubscribeMarker is what {{unsubscribe}} prints: a private-use
// character that the renderer replaces with the recipient's unsubscribe
// URL, escaped for where it landed. Unlike a value's token it is not made
// inert: the URL is the campaign's own, a link target.
const UnsubscribeMarker = "\uE002"

// isUnsubscribe reports whether a pipeline is just {{unsubscribe}}.
func isUnsubscribe(p *parse.PipeNode) bool {
	if len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	id, ok := p.Cmds[0].Args[0].(*parse.IdentifierNode)
	return ok && id.Ident == "unsubscribe"
}

// UsesUnsubscribe reports whether the template calls unsubscribe.
func (t *Template) UsesUnsubscribe() bool {
	for _, tt := range t.t.Templates() {
		if tt.Tree != nil && callsFunc(tt.Tree.Root, "unsubscribe") {
			return true
		}
	}
	return false
}

// callsFunc reports whether the tree under n calls the function name.
func callsFunc(n parse.Node, name string) bool {
	found := false
	walk(n, true, func(n parse.Node, _ bool) {
		if id, ok := n.(*parse.IdentifierNode); ok && id.Ident == name {
			found = true
		}
	})
	return found
}

// Execute writes the template merged with fields to w.
func (t *Template) Execute(w io.Writer, fields map[string]string) error {
	if t.simple {
		if ok, err := t.writeSimple(w, fields); ok {
			return err
		}
	}
	return t.execute(w, fields)
}

// execute is Execute by text/template, whatever the template.
func (t *Template) execute(w io.Writer, fields map[string]string) error {
	if err := t.t.Execute(w, fields); err != nil {
		return t.clean(err)
	}
	return nil
}

// merged returns the template merged with fields, as Execute writes it.
func (t *Template) merged(fields map[string]string) (string, error) {
	if t.simple {
		var buf [256]byte
		if b, ok := t.appendSimple(buf[:0], fields); ok {
			return string(b), nil
		}
	}
	var b strings.Builder
	if err := t.execute(&b, fields); err != nil {
		return "", err
	}
	return b.String(), nil
}

// SourceLine returns the line of the template, from 1, that wrote the byte
// at offset in what Execute writes for fields: the line of the text it is
// part of, or of the action that printed it. The merged text's lines are
// not the template's once a condition leaves some out or a range repeats
// them, and a problem found in the merged text is to be reported at the
// template's line. SourceLine runs the template again, its text marked, so
// it is for problems, not for every message; false when it can't tell.
func (t *Template) SourceLine(fields map[string]string, offset int) (int, bool) {
	t.markedOnce.Do(t.mark)
	if t.marked == nil {
		return 0, false
	}
	var b strings.Builder
	if err := t.marked.Execute(&b, fields); err != nil {
		return 0, false
	}
	out := b.String()
	pos, start, size := -1, 0, 0 // the text being written: its place in the template, in the output, its size
	at := 0                      // the output's offset at out, markers left out
	for {
		i := strings.Index(out, markOpen)
		if i < 0 {
			i = len(out)
		}
		if offset < at+i || i == len(out) {
			if pos < 0 || offset > at+i {
				return 0, false
			}
			p := min(pos+min(offset-start, size), len(t.source))
			return 1 + strings.Count(t.source[:p], "\n"), true
		}
		at += i
		mark, rest, ok := strings.Cut(out[i+len(markOpen):], TokenClose)
		p, n, ok2 := strings.Cut(mark, ",")
		var err1, err2 error
		pos, err1 = strconv.Atoi(p)
		size, err2 = strconv.Atoi(n)
		if !ok || !ok2 || err1 != nil || err2 != nil {
			return 0, false
		}
		start, out = at, rest
	}
}

// markOpen starts a mark of the marked template: markOpen, the place of
// what follows in the template and its size ("120,14"), TokenClose. No
// token starts so: a value's digits are hex.
const markOpen = TokenOpen + "@"

// mark makes t.marked: t with a mark before every text, giving its place
// in the template and its size, and before every action, its place (size
// 0), so that SourceLine can tell where each byte of the output comes from.
func (t *Template) mark() {
	m := template.New(t.t.Name()).Option("missingkey=error").Funcs(funcs())
	for _, tt := range t.t.Templates() {
		if tt.Tree == nil {
			continue
		}
		tree := tt.Tree.Copy()
		walk(tree.Root, true, func(n parse.Node, _ bool) {
			list, ok := n.(*parse.ListNode)
			if !ok {
				return
			}
			nodes := make([]parse.Node, 0, 2*len(list.Nodes))
			for _, c := range list.Nodes {
				switch c := c.(type) {
				case *parse.TextNode:
					c.Text = append(fmt.Appendf(nil, "%s%d,%d%s", markOpen, c.Pos, len(c.Text), TokenClose), c.Text...)
				case *parse.ActionNode:
					nodes = append(nodes, &parse.TextNode{NodeType: parse.NodeText, Pos: c.Pos,
						Text: fmt.Appendf(nil, "%s%d,0%s", markOpen, c.Pos, TokenClose)})
				}
				nodes = append(nodes, c)
			}
			list.Nodes = nodes
		})
		if _, err := m.AddParseTree(tt.Name(), tree); err != nil {
			return
		}
	}
	t.marked = m
}

// ParseURL parses a URL template, such as an unsubscribe link: every
// value is percent-encoded where it lands, so that it is one inert path
// segment or query value.
func ParseURL(name, text string) (*Template, error) { return parse1(name, text, true, true) }

// URL returns a URL template merged with fields.
func (t *Template) URL(fields map[string]string) (string, error) {
	s, err := t.merged(fields)
	if err != nil {
		return "", err
	}
	return ExpandString(s, EscapeURL), nil
}

// Line returns a line template merged with fields, on one line: every run of
// white space and control characters, from the template or a value, becomes
// one space.
func (t *Template) Line(fields map[string]string) (string, error) {
	s, err := t.merged(fields)
	if err != nil {
		return "", err
	}
	return OneLine(s), nil
}

// OneLine returns s with every run of white space and control characters
// (CR, LF, NUL, U+2028, …) made one space, and trimmed.
func OneLine(s string) string {
	if oneLine(s) {
		return s
	}
	return collapse(s)
}

// collapse is OneLine for a string that changes.
func collapse(s string) string {
	var b strings.Builder
	b.Grow(len(s)) // about its length: s may be a large value
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// oneLine reports whether OneLine would return s as it is: no white space
// or control character but single spaces between other characters, and
// nothing that isn't UTF-8.
func oneLine(s string) bool {
	space := true // as if at a start, where a space is not kept
	for _, r := range s {
		switch {
		case r == ' ':
			if space {
				return false
			}
			space = true
		case r < 0x80 && (r < ' ' || r == 0x7f):
			return false
		case r >= 0x80 && (unicode.IsSpace(r) || unicode.IsControl(r) || r == '\u2028' || r == '\u2029'):
			return false
		case r == utf8.RuneError: // a byte that isn't UTF-8, which collapse replaces
			return false
		default:
			space = false
		}
	}
	return !space || s == ""
}

// FieldError is a field a template names that is not a column of the list.
type FieldError struct {
	Pos     string   // file:line:column (1-based), or the line template's name
	Field   string   // the field named
	Columns []string // the list's columns
}

func (e *FieldError) Error() string {
	msg := fmt.Sprintf("%s: no column %q in the recipient list (its columns: %s)", e.Pos, e.Field, strings.Join(e.Columns, ", "))
	if s := closest(e.Field, e.Columns); s != "" {
		msg += fmt.Sprintf("; did you mean {{.%s}}?", s)
	}
	return msg
}

// CheckFields returns an error for every field the template names at the top
// level ({{.x}}, {{$.x}}, {{index . "x"}}) that is not one of columns, in
// the order they appear. Fields inside range and with blocks are left to
// Execute: their dot is not the row.
func (t *Template) CheckFields(columns []string) []*FieldError {
	have := make(map[string]bool, len(columns))
	for _, c := range columns {
		have[c] = true
	}
	var errs []*FieldError
	tmpls := t.t.Templates()
	sort.Slice(tmpls, func(i, j int) bool { return tmpls[i].Name() < tmpls[j].Name() })
	for _, tt := range tmpls {
		if tt.Tree == nil {
			continue
		}
		tree := tt.Tree
		visitFields(tree.Root, func(n parse.Node, field string) {
			if have[field] {
				return
			}
			pos := t.name
			if !t.keyed {
				pos = Position(tree, n)
			}
			errs = append(errs, &FieldError{Pos: pos, Field: field, Columns: columns})
		})
	}
	return errs
}

// Position gives "file:line:column" of n in tree, its column counted from 1
// as editors do (text/template counts from 0), in bytes as text/template
// does.
func Position(tree *parse.Tree, n parse.Node) string {
	loc, _ := tree.ErrorContext(n)
	i := strings.LastIndexByte(loc, ':')
	col, err := strconv.Atoi(loc[i+1:])
	if i < 0 || err != nil {
		return loc
	}
	return loc[:i+1] + strconv.Itoa(col+1)
}

// visitFields calls fn for every field of the row that the tree under
// root names.
func visitFields(root parse.Node, fn func(parse.Node, string)) {
	walk(root, true, func(n parse.Node, top bool) {
		switch n := n.(type) {
		case *parse.CommandNode: // {{index . "x"}}
			if len(n.Args) == 3 && top {
				if id, ok := n.Args[0].(*parse.IdentifierNode); ok && id.Ident == "index" {
					if _, ok := n.Args[1].(*parse.DotNode); ok {
						if s, ok := n.Args[2].(*parse.StringNode); ok {
							fn(n, s.Text)
						}
					}
				}
			}
		case *parse.FieldNode:
			if top {
				fn(n, n.Ident[0])
			}
		case *parse.VariableNode: // {{$.x}}: the row anywhere
			if len(n.Ident) > 1 && n.Ident[0] == "$" {
				fn(n, n.Ident[1])
			}
		}
	})
}

// closest returns the column most like field, if one is close enough to be
// a likely typo.
func closest(field string, columns []string) string {
	best, bestD := "", 3
	for _, c := range columns {
		if strings.EqualFold(c, field) {
			return c
		}
		if d := distance(strings.ToLower(field), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b, in bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
