package render

import "github.com/yuin/goldmark/ast"

// styles are the layout's CSS declarations for each kind of element the
// Markdown renders, parsed once per campaign.
type styles map[string]string

// parseStyles reads the <style> blocks of a layout.
func parseStyles(layout string) styles {
	return nil // TODO(helper): parse
}

// apply sets the style attribute of n from the layout's CSS.
func (s styles) apply(n ast.Node) {
	// TODO(helper): apply
}
