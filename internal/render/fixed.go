package render

import (
	"html/template"
	"strings"
	tparse "text/template/parse"
)

// A layout is fixed when running it can't fail for one recipient's data
// and not for another's: once it has run without error for a message,
// Check needn't run it again for the next (Render always does: its output
// is the message). fixedLayout decides it from the layout's tree once
// html/template has escaped it (after its first run), by a whitelist of
// what can't fail; anything else is not fixed, and the layout is run for
// every message as before. A node that can fail only matters if it can be
// reached, but one reached under {{if}} or {{with}} for some recipients
// and not others fails for some only: so no node anywhere may be able to
// fail, not only the ones the first message ran.
//
// What can't fail, checked against text/template's execution (exec.go,
// funcs.go) and html/template's escapers (escape.go):
//   - text and comments; {{if}} and {{with}}, with their {{else}}, whose
//     pipelines can't fail (truth is defined for every value);
//   - a pipeline without declarations whose first command is a string
//     field of LayoutData (.Subject, .Body, .Email, .Name, .Preheader,
//     .Unsubscribe, .Lang) from dot at the top level or from $ anywhere,
//     .Fields.x likewise (a recipient's value, provided that recipient's
//     Fields has the key x: Check looks, for each, before it skips), dot
//     itself inside a {{with}} of such a value, a string constant, a
//     parenthesized pipeline of these, or the layout's own unsubscribe
//     function, which takes nothing and returns a string;
//   - later commands, and functions of such arguments, that return no
//     error for them: html/template's escapers (_html_template_*, and
//     _eval_args_), every one func(...any) string; print, println, html,
//     js, urlquery (func(...any) string); printf with a string first;
//     len of a string; not, and, or (of any value: they return one); eq
//     and ne of strings, with their number of arguments.
//
// Not fixed: range, template calls, break and continue, variables (but $),
// nil, numbers and booleans, index, slice, call, lt/le/gt/ge, a field of a
// string (.Email.X in {{with .Email}}), a field not named above, and
// anything this list doesn't name. The functions are those of New's
// layout (FuncMap) and the builtins: a function New gave the layout under
// a builtin's name would need its own entry here.

// kinds is a set of the types a value in a layout may have.
type kinds uint8

const (
	kString kinds = 1 << iota // string
	kHTML                     // template.HTML (Body): a string's kind, not assignable to string
	kBool
	kInt
	kData // LayoutData itself: dot at the top level, $
)

const kText = kString | kHTML // of a string's kind: eq, ne and len take them

// layoutSkip is what fixedLayout found: whether the layout is fixed, and
// the keys of Fields it prints, which a recipient's Fields must have for
// the layout to be fixed for that recipient.
type layoutSkip struct {
	ok   bool
	keys []string
}

// fixedLayout decides whether t, escaped, is fixed (see above).
func fixedLayout(t *template.Template) layoutSkip {
	if t == nil || t.Tree == nil || t.Tree.Root == nil {
		return layoutSkip{}
	}
	var f layoutSkip
	f.ok = f.list(t.Tree.Root, kData)
	if !f.ok {
		f.keys = nil
	}
	return f
}

// has reports whether fields has every key the layout prints.
func (f *layoutSkip) has(fields map[string]string) bool {
	for _, k := range f.keys {
		if _, ok := fields[k]; !ok {
			return false
		}
	}
	return true
}

// list: every node of n can't fail, dot being of kinds dot.
func (f *layoutSkip) list(n *tparse.ListNode, dot kinds) bool {
	if n == nil {
		return true
	}
	for _, node := range n.Nodes {
		if !f.node(node, dot) {
			return false
		}
	}
	return true
}

func (f *layoutSkip) node(n tparse.Node, dot kinds) bool {
	switch n := n.(type) {
	case *tparse.TextNode, *tparse.CommentNode:
		return true
	case *tparse.ListNode:
		return f.list(n, dot)
	case *tparse.ActionNode:
		// Every kind here prints (printValue fails only for what
		// can't: funcs, chans).
		_, ok := f.pipe(n.Pipe, dot)
		return ok
	case *tparse.IfNode:
		_, ok := f.pipe(n.Pipe, dot)
		return ok && f.list(n.List, dot) && f.list(n.ElseList, dot)
	case *tparse.WithNode:
		k, ok := f.pipe(n.Pipe, dot)
		return ok && f.list(n.List, k) && f.list(n.ElseList, dot)
	}
	return false
}

// pipe returns the kinds of p's value, and whether p can't fail.
func (f *layoutSkip) pipe(p *tparse.PipeNode, dot kinds) (kinds, bool) {
	if p == nil || len(p.Decl) > 0 || p.IsAssign || len(p.Cmds) == 0 {
		return 0, false
	}
	var final kinds // 0: none yet, the first command has no final argument
	for _, cmd := range p.Cmds {
		k, ok := f.command(cmd, dot, final)
		if !ok {
			return 0, false
		}
		final = k
	}
	return final, true
}

// command returns the kinds of cmd's value, given the previous command's
// (final, 0 for none).
func (f *layoutSkip) command(cmd *tparse.CommandNode, dot, final kinds) (kinds, bool) {
	if len(cmd.Args) == 0 {
		return 0, false
	}
	if id, ok := cmd.Args[0].(*tparse.IdentifierNode); ok {
		args := make([]kinds, 0, len(cmd.Args))
		for _, a := range cmd.Args[1:] {
			k, ok := f.arg(a, dot)
			if !ok {
				return 0, false
			}
			args = append(args, k)
		}
		if final != 0 {
			args = append(args, final)
		}
		return function(id.Ident, args)
	}
	// Anything but a function takes no arguments, nor a final one.
	if len(cmd.Args) != 1 || final != 0 {
		return 0, false
	}
	return f.arg(cmd.Args[0], dot)
}

// arg returns the kinds of the value of n, a function's argument or a
// command of its own.
func (f *layoutSkip) arg(n tparse.Node, dot kinds) (kinds, bool) {
	switch n := n.(type) {
	case *tparse.FieldNode:
		if dot != kData {
			return 0, false
		}
		return f.field(n.Ident)
	case *tparse.VariableNode:
		if n.Ident[0] != "$" || len(n.Ident) < 2 {
			return 0, false
		}
		return f.field(n.Ident[1:])
	case *tparse.DotNode:
		if dot == kData {
			return 0, false
		}
		return dot, true
	case *tparse.StringNode:
		return kString, true
	case *tparse.PipeNode:
		return f.pipe(n, dot)
	case *tparse.IdentifierNode:
		return function(n.Ident, nil)
	}
	return 0, false
}

// field returns the kinds of a field chain of LayoutData.
func (f *layoutSkip) field(chain []string) (kinds, bool) {
	switch {
	case len(chain) == 2 && chain[0] == "Fields":
		f.keys = append(f.keys, chain[1])
		return kString, true
	case len(chain) != 1:
		return 0, false
	}
	switch chain[0] {
	case "Subject", "Email", "Name", "Preheader", "Unsubscribe", "Lang":
		return kString, true
	case "Body":
		return kHTML, true
	}
	return 0, false
}

// function returns the kinds of what the function name returns given
// arguments of kinds args (the final one last), and whether it can't
// fail for them.
func function(name string, args []kinds) (kinds, bool) {
	switch name {
	case "print", "println", "html", "js", "urlquery", "_eval_args_":
		return kString, true
	case "printf":
		return kString, len(args) > 0 && args[0] == kString
	case "len":
		return kInt, len(args) == 1 && args[0]&^kText == 0
	case "not":
		return kBool, len(args) == 1
	case "and", "or":
		var k kinds
		for _, a := range args {
			k |= a
		}
		return k, len(args) > 0
	case "eq", "ne":
		if len(args) < 2 || name == "ne" && len(args) != 2 {
			return 0, false
		}
		for _, a := range args {
			if a&^kText != 0 {
				return 0, false
			}
		}
		return kBool, true
	case "unsubscribe":
		return kString, len(args) == 0
	}
	if strings.HasPrefix(name, "_html_template_") {
		return kString, true
	}
	return 0, false
}
