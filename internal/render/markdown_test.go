package render

import (
	"strings"
	"testing"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/renderer/html"
	"github.com/yuin/goldmark/util"
)

// stockMarkdown is goldmark with GFM, as newMarkdown, but with only
// goldmark's own renderers.
func stockMarkdown() goldmark.Markdown {
	return goldmark.New(goldmark.WithExtensions(extension.GFM), goldmark.WithRendererOptions(html.WithUnsafe()))
}

// withCodeBlocks is newMarkdown with codeBlockRenderer.
func withCodeBlocks() goldmark.Markdown {
	return goldmark.New(
		goldmark.WithExtensions(extension.GFM),
		goldmark.WithRendererOptions(html.WithUnsafe(),
			renderer.WithNodeRenderers(util.Prioritized(newCodeBlockRenderer(), 100))),
	)
}

// TestCodeBlockRenderer: without styles, code blocks are rendered exactly
// as goldmark does; with them, the <pre> and its <code> have theirs.
func TestCodeBlockRenderer(t *testing.T) {
	stock := stockMarkdown()
	md := "```go\na < b && c\n\n\tx\n```\n\n~~~ c&amp;\\+ {.x}\ny\n~~~\n\n```\n```\n\n    indented <b>\n\n    more\n\n" +
		"> ```\n> quoted\n> ```\n\n- ```\n  listed\n  ```\n"
	want := renderStyled(t, stock, nil, md)
	if got := renderStyled(t, withCodeBlocks(), nil, md); got != want {
		t.Errorf("without styles\n got %s\nwant %s", got, want)
	}
	s := parseStyles(`<style>pre { padding: 12px } code { font-size: 14px; padding: 1px } pre code { padding: 0 } pre>code { a: "<&>" }</style>`)
	got := renderStyled(t, withCodeBlocks(), s, md)
	const pre = `<pre style="padding: 12px;">`
	const code = `style="font-size: 14px; padding: 0; a: &quot;&lt;&amp;&gt;&quot;;">`
	for _, want := range []string{
		pre + `<code class="language-go" ` + code + "a &lt; b &amp;&amp; c\n\n\tx\n</code></pre>",
		pre + `<code class="language-c&amp;+" ` + code + "y\n</code></pre>",
		pre + `<code ` + code + `</code></pre>`,
		pre + `<code ` + code + "indented &lt;b&gt;\n\nmore\n</code></pre>",
		"<blockquote>\n" + pre + `<code ` + code + "quoted\n",
		"<li>\n" + pre + `<code ` + code + "listed\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %s in\n%s", want, got)
		}
	}
}
