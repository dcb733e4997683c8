package merge

import (
	"bytes"
	"io"
	"slices"
	"text/template/parse"
)

// A simple template is text, {{.field}} and {{unsubscribe}} alone, as
// almost every subject, header and body is. It is executed as a list of
// segments, without text/template's reflection, and writes what
// text/template would: a field's value (a body's as its token, as
// batchValue makes it), UnsubscribeMarker. A field missing from the row
// is left to text/template, whose error is the one users know.

// segKind is what a segment writes.
type segKind uint8

const (
	segText        segKind = iota // s, the template's text
	segValue                      // the value of the field s
	segToken                      // the value of the field s, as its token
	segUnsubscribe                // UnsubscribeMarker
)

// segment is a piece of a simple template.
type segment struct {
	kind segKind
	s    string // the text, or the field's name
}

// compileSimple sets t.simple, t.segs and t.textLen from t's tree, parsed
// and not yet marked by markActions. t is not simple when it defines
// another template, or has a node other than text or an action, or an
// action other than {{.field}} (one command of one field of one name, no
// variable) or {{unsubscribe}}.
func (t *Template) compileSimple() {
	if len(t.t.Templates()) != 1 || t.t.Tree == nil || t.t.Tree.Root == nil {
		return
	}
	field := segValue
	if t.body {
		field = segToken
	}
	nodes := t.t.Tree.Root.Nodes
	segs, size := make([]segment, 0, len(nodes)), 0
	for _, n := range nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			segs = append(segs, segment{kind: segText, s: string(n.Text)})
			size += len(n.Text)
		case *parse.ActionNode:
			if len(n.Pipe.Decl) > 0 {
				return
			}
			if isUnsubscribe(n.Pipe) {
				segs = append(segs, segment{kind: segUnsubscribe})
				continue
			}
			name, ok := fieldOnly(n.Pipe)
			if !ok {
				return
			}
			segs = append(segs, segment{kind: field, s: name})
		default:
			return
		}
	}
	t.simple, t.segs, t.textLen = true, segs, size
}

// fieldOnly returns the field's name of a pipeline that is {{.field}}.
func fieldOnly(p *parse.PipeNode) (string, bool) {
	if len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return "", false
	}
	f, ok := p.Cmds[0].Args[0].(*parse.FieldNode)
	if !ok || len(f.Ident) != 1 {
		return "", false
	}
	return f.Ident[0], true
}

// writeSimple writes a simple template merged with fields to w, into a
// bytes.Buffer's own free space; false, nothing written, when a field is
// not in fields.
func (t *Template) writeSimple(w io.Writer, fields map[string]string) (bool, error) {
	var dst []byte
	buf, _ := w.(*bytes.Buffer)
	if buf != nil {
		buf.Grow(t.textLen)
		dst = buf.AvailableBuffer()
	}
	dst, ok := t.appendSimple(dst, fields)
	if !ok {
		return false, nil
	}
	var err error
	if buf != nil {
		_, err = buf.Write(dst)
	} else {
		_, err = w.Write(dst)
	}
	if err != nil {
		return true, t.clean(err)
	}
	return true, nil
}

// appendSimple appends a simple template merged with fields to dst; false
// when a field is not in fields.
func (t *Template) appendSimple(dst []byte, fields map[string]string) ([]byte, bool) {
	dst = slices.Grow(dst, t.textLen)
	for _, s := range t.segs {
		switch s.kind {
		case segText:
			dst = append(dst, s.s...)
		case segUnsubscribe:
			dst = append(dst, UnsubscribeMarker...)
		default:
			v, ok := fields[s.s]
			if !ok {
				return dst, false
			}
			if s.kind == segToken {
				dst = appendToken(dst, v)
			} else {
				dst = append(dst, v...)
			}
		}
	}
	return dst, true
}
