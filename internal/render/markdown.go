package render

import (
	"bytes"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/renderer/html"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"

	"github.com/batch-mailer/batch/internal/merge"
)

// newMarkdown returns the Markdown dialect of templates: CommonMark with
// GitHub's extensions (tables, strikethrough, autolinks, task lists) and
// CJK line breaks: a line break between two Chinese or Japanese characters
// joins the lines rather than showing as a space (softBreaks); a task's
// check box is a glyph, ☑ or ☐, since mail clients drop form controls.
//
// Raw HTML written in the template itself is rendered as written: the
// template is the campaign author's, kept in git beside the layout, and a
// centred button or a <br> is a common need. A recipient's values never
// reach HTML unescaped: a merge field inside raw HTML is an error (see
// checkRaw), since its context (an href, a style) can't be known.
func newMarkdown() goldmark.Markdown {
	return goldmark.New(
		goldmark.WithExtensions(extension.GFM, softBreaks{}, extension.NewCJK(extension.WithEscapedSpace())),
		goldmark.WithRendererOptions(html.WithUnsafe(),
			// goldmark writes <pre><code> with no attributes: this one
			// adds the layout's inlined styles.
			renderer.WithNodeRenderers(util.Prioritized(newCodeBlockRenderer(), 100),
				util.Prioritized(taskBoxRenderer{}, 100))),
	)
}

// taskBoxRenderer writes a task list item's check box as the glyph the
// text part shows, ☑ or ☐, in place of goldmark's disabled <input
// type=checkbox>: Gmail and Outlook remove form controls, and with them
// whether the task is done.
type taskBoxRenderer struct{}

// RegisterFuncs implements renderer.NodeRenderer.
func (taskBoxRenderer) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(east.KindTaskCheckBox, func(w util.BufWriter, _ []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			_, _ = w.WriteString(taskBox(n.(*east.TaskCheckBox).IsChecked))
		}
		return ast.WalkContinue, nil
	})
}

// taskBox is a check box and the space after it, in either part.
func taskBox(checked bool) string {
	if checked {
		return "☑ "
	}
	return "☐ "
}

// codeBlockRenderer renders indented and fenced code blocks as goldmark's
// HTML renderer does, but with the style apply gave them on the <pre>
// (goldmark writes no attributes for code blocks) and the one for "pre
// code" on the <code>. It takes the place of goldmark's with
//
//	renderer.WithNodeRenderers(util.Prioritized(newCodeBlockRenderer(), 100))
type codeBlockRenderer struct{ html.Config }

var _ renderer.NodeRenderer = (*codeBlockRenderer)(nil)

func newCodeBlockRenderer() *codeBlockRenderer {
	return &codeBlockRenderer{Config: html.NewConfig()}
}

// SetOption implements renderer.SetOptioner.
func (r *codeBlockRenderer) SetOption(name renderer.OptionName, value any) {
	r.Config.SetOption(name, value)
}

// RegisterFuncs implements renderer.NodeRenderer.
func (r *codeBlockRenderer) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(ast.KindCodeBlock, r.render)
	reg.Register(ast.KindFencedCodeBlock, r.render)
}

func (r *codeBlockRenderer) render(w util.BufWriter, source []byte, n ast.Node, entering bool) (ast.WalkStatus, error) {
	if !entering {
		_, _ = w.WriteString("</code></pre>\n")
		return ast.WalkContinue, nil
	}
	_, _ = w.WriteString("<pre")
	if v, ok := n.AttributeString("style"); ok {
		writeAttr(w, "style", v)
	}
	_, _ = w.WriteString("><code")
	if fenced, ok := n.(*ast.FencedCodeBlock); ok {
		if language := fenced.Language(source); language != nil {
			_, _ = w.WriteString(` class="language-`)
			r.Writer.Write(w, language)
			_ = w.WriteByte('"')
		}
	}
	if v, ok := n.AttributeString(codeStyleAttr); ok {
		writeAttr(w, "style", v)
	}
	_ = w.WriteByte('>')
	lines := n.Lines()
	for i := range lines.Len() {
		line := lines.At(i)
		r.Writer.RawWrite(w, line.Value(source))
	}
	return ast.WalkContinue, nil
}

// writeAttr writes ` name="value"`, the value HTML-escaped.
func writeAttr(w util.BufWriter, name string, value any) {
	var v []byte
	switch value := value.(type) {
	case []byte:
		v = value
	case string:
		v = []byte(value)
	default:
		return
	}
	_ = w.WriteByte(' ')
	_, _ = w.WriteString(name)
	_, _ = w.WriteString(`="`)
	_, _ = w.Write(util.EscapeHTML(v))
	_ = w.WriteByte('"')
}

// document is one recipient's body, rendered.
type document struct {
	html   []byte  // HTML fragment, values put back and escaped
	text   []byte  // the plain-text alternative
	images []*part // local images, each once, in order of first use
}

// A shape is a body with its values taken out (merge.Extract): the same
// for every recipient whose template took the same branches, and so
// parsed and rendered once. It holds the parsed tree, read (never
// changed once made) by the plain-text walk of a message whose text
// depends on its values, and the HTML and the text, with the values still
// numbered tokens; or the problems found.
type shape struct {
	src    []byte // the Markdown, values numbered
	tree   ast.Node
	html   []byte
	text   []byte // the plain text, values numbered, when fixed
	fixed  bool   // the text's form doesn't depend on the values
	images []*part
	err    error
}

// shapes caches a campaign's shapes by their Markdown. A template has a
// shape per combination of branches its recipients take: usually one,
// a few with conditions. Past maxShapes, a template whose shape follows
// its values closely, the others are rendered for each message and not
// kept, so that memory stays flat.
type shapes struct {
	mu sync.RWMutex
	m  map[string]*shape
}

const maxShapes = 64

// ShapeOf returns the shape of a merged body md: the Markdown with its
// values taken out, by which Render renders a body once for every
// recipient whose template took the same branches. Two recipients' bodies
// of the same shape differ only in their values.
func ShapeOf(md []byte) []byte {
	src, _ := merge.Extract(make([]byte, 0, len(md)), md)
	return src
}

// render renders the merged Markdown of in: its shape once, then the
// values put back, escaped for where they land, in each message.
// Without text (a check, which needs the problems only), the plain text,
// which has none of its own, is not written; without html (a check that
// doesn't run the layout), nor is the HTML.
func (r *Renderer) render(in *Input, text, html bool, s *scratch) (*document, error) {
	md := in.Markdown
	src, values := merge.Extract(s.src[:0], md)
	s.src = src
	sh := r.shape(src, in)
	if sh.err != nil {
		return nil, sh.err
	}
	d := &document{images: sh.images}
	if html || text {
		d.html = values.Expand(slices.Grow(s.html[:0], len(sh.html)+len(sh.html)/8), sh.html, merge.EscapeHTML, merge.EscapeURL)
		s.html = d.html
	}
	if !text {
		return d, nil
	}
	if sh.fixed && values.Plain() {
		d.text = values.Expand(slices.Grow(s.text[:0], len(sh.text)+len(sh.text)/8), sh.text, merge.EscapeText, merge.EscapeURL)
		s.text = d.text
	} else {
		d.text = plainText(sh.tree, sh.src, values)
	}
	return d, nil
}

// shape returns src's shape, from the cache or rendered; in is the
// message it was made of, which its problems name the lines of.
func (r *Renderer) shape(src []byte, in *Input) *shape {
	r.shapes.mu.RLock()
	sh := r.shapes.m[string(src)]
	r.shapes.mu.RUnlock()
	if sh != nil {
		return sh
	}
	sh = r.newShape(src, in)
	r.shapes.mu.Lock()
	defer r.shapes.mu.Unlock()
	if have := r.shapes.m[string(src)]; have != nil {
		return have // rendered meanwhile by another goroutine
	}
	if len(r.shapes.m) < maxShapes {
		r.shapes.m[string(src)] = sh
	}
	return sh
}

// newShape parses src, finds its problems, embeds its images and renders
// its HTML, and its text when that can be done once (fixedText). A problem
// is named at the template's line; in is the message src is the shape of.
func (r *Renderer) newShape(src []byte, in *Input) *shape {
	src = slices.Clone(src) // the message's scratch: the shape keeps its own
	tree := r.md.Parser().Parse(text.NewReader(src))
	sh := &shape{src: src, tree: tree}
	var errs []error
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	_ = ast.Walk(tree, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		if img, ok := n.(*ast.Image); ok && inText(img, src) {
			img.SetAttributeString("class", inlineClass)
		}
		r.styles.apply(n)
		where := func(off int) string { return r.where(in, src, off) }
		switch n := n.(type) {
		case *ast.Image:
			keep(r.image(n, sh, where))
		case *ast.Link:
			keep(r.checkLink("link", n.Destination, src, false, func() string { return where(n.Pos()) }))
		case *ast.AutoLink:
			keep(r.checkAutoLink(n, src, func() string { return where(n.Pos()) }))
		case *ast.Text:
			r.checkText(n, src, keep, where)
		case *ast.HTMLBlock:
			keep(checkRaw(n.Lines(), src, where))
		case *ast.RawHTML:
			keep(checkRaw(n.Segments, src, where))
		}
		return ast.WalkContinue, nil
	})
	if len(errs) > 0 {
		sh.err = joinErrs(errs)
		return sh
	}
	var buf bytes.Buffer
	if err := r.md.Renderer().Render(&buf, src, tree); err != nil {
		sh.err = fmt.Errorf("rendering Markdown: %w", err)
		return sh
	}
	sh.html = buf.Bytes()
	sh.text, sh.fixed = fixedText(tree, src)
	return sh
}

// inlineClass is the class of an image in a line of text (see inText), a
// []byte as an any, to be set without allocating.
var inlineClass any = []byte("inline")

// inText reports whether image n shares its line with text: whether its
// paragraph, heading, table cell or list item's text has a character other
// than white space outside images (a merge field's value counts as text).
// Such an image is an icon or a badge, and a layout can size it to the
// text (img.inline); an image with only images beside it is not.
func inText(n *ast.Image, src []byte) bool {
	block := n.Parent()
	for block != nil && block.Type() != ast.TypeBlock {
		block = block.Parent()
	}
	if block == nil {
		return false
	}
	text := false
	_ = ast.Walk(block, func(c ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch c := c.(type) {
		case *ast.Image:
			return ast.WalkSkipChildren, nil // its alt text is not on the line
		case *ast.Text:
			text = len(bytes.TrimSpace(c.Segment.Value(src))) > 0
		case *ast.String:
			text = len(bytes.TrimSpace(c.Value)) > 0
		case *ast.AutoLink, *east.TaskCheckBox:
			text = true
		}
		if text {
			return ast.WalkStop, nil
		}
		return ast.WalkContinue, nil
	})
	return text
}

// checkRaw refuses a merge field inside raw HTML, the segs of src, named
// by where at the field's place.
func checkRaw(segs *text.Segments, src []byte, where func(off int) string) error {
	raw := segments(segs, src)
	if !merge.HasValue(raw) {
		return nil
	}
	at := -1 // the first field's place in src
	for i := 0; i < segs.Len() && at < 0; i++ {
		seg := segs.At(i)
		if j := bytes.Index(seg.Value(src), []byte(merge.TokenOpen)); j >= 0 {
			at = seg.Start + j
		}
	}
	snippet := []rune(merge.OneLine(merge.Elide(string(raw))))
	if len(snippet) > 60 {
		snippet = append(snippet[:57], []rune("...")...)
	}
	return fmt.Errorf("%s: a merge field inside raw HTML (%s): its value can't be escaped safely there; write that part in Markdown instead",
		where(at), string(snippet))
}

// where gives "template:line" for the place off of src, the shape of in's
// Markdown: the line of the template that wrote it, or the template's
// name alone (off < 0, or a place the template can't tell). Without a
// template to ask, the line is the merged Markdown's.
func (r *Renderer) where(in *Input, src []byte, off int) string {
	if off < 0 || off > len(src) {
		return r.opts.TemplateName
	}
	at := merge.MergedOffset(in.Markdown, off)
	if r.opts.Template == nil {
		return fmt.Sprintf("%s:%d", r.opts.TemplateName, 1+bytes.Count(in.Markdown[:at], []byte("\n")))
	}
	if line, ok := r.opts.Template.SourceLine(in.Fields, at); ok {
		return fmt.Sprintf("%s:%d", r.opts.TemplateName, line)
	}
	return r.opts.TemplateName
}

// image embeds a local image as an inline part and points n at its cid.
// Remote images (http, https, protocol-relative) and cid:/data: URLs are
// left as they are. A problem is named by where at the image's place.
func (r *Renderer) image(n *ast.Image, d *shape, where func(off int) string) error {
	dest := string(n.Destination)
	lower := strings.ToLower(dest)
	remote := strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "//")
	if merge.HasValue(n.Destination) {
		// A value may be part of a remote image's path or query (a
		// tracking pixel), never choose the host or a local file.
		return r.checkLink("image", n.Destination, d.src, !remote, func() string { return where(n.Pos()) })
	}
	if remote || strings.HasPrefix(lower, "cid:") || strings.HasPrefix(lower, "data:") {
		return nil
	}
	path := dest
	if p, err := url.PathUnescape(dest); err == nil {
		path = p
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(r.opts.ImageDir, path)
	}
	p, err := r.parts.get(path)
	if err != nil {
		return fmt.Errorf("%s: image %q: %w", where(n.Pos()), dest, err)
	}
	n.Destination = []byte("cid:" + p.cid)
	for _, have := range d.images {
		if have == p {
			return nil
		}
	}
	d.images = append(d.images, p)
	return nil
}

// segments returns the source text of raw HTML, block or inline.
func segments(segs *text.Segments, src []byte) []byte {
	var raw []byte
	for i := 0; i < segs.Len(); i++ {
		seg := segs.At(i)
		raw = append(raw, seg.Value(src)...)
	}
	return raw
}
