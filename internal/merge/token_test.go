package merge_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/merge"
)

// hostile are values a recipient list may hold that must never become
// markup, links, headers or template actions.
var hostile = []string{
	"*Bob* <script>x</script> [x](javascript:alert(1))",
	"\r\nBcc: x@example.org",
	`back\slash\\ \*not emphasis\*`,
	"{{.email}}",
	"\uE000\uE001",
	"\uE000616263\uE001",             // a token of its own
	"\uE000zz\uE001 \uE000abc\uE001", // tokens with invalid hex inside
	"%EE%80%80616263%EE%80%81",       // a percent-encoded token of its own
	"<img src=x onerror=alert(1)> & \"quoted\" 'single'",
	"# heading\n\n- list\n> quote\n```\ncode\n```",
	"line one\u2028line two\x00\x1b[31m",
	"https://evil.example/?a=b&c=d",
	"Ünïcødé 张伟 🐍",
	"",
}

// pct is the form goldmark's URL escaping gives a token: url.QueryEscape of
// the two private-use characters, the hex digits left as they are.
func pct(s string) string {
	s = strings.ReplaceAll(s, "\uE000", url.QueryEscape("\uE000"))
	return strings.ReplaceAll(s, "\uE001", url.QueryEscape("\uE001"))
}

func TestInert(t *testing.T) {
	tp, err := merge.ParseBody("t.md", "Hi {{.name}}!")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range hostile {
		out := execute(t, tp, map[string]string{"name": v})

		// Only the token: "Hi ", U+E000, lower-case hex, U+E001, "!".
		token, ok := strings.CutPrefix(out, "Hi \uE000")
		if ok {
			token, ok = strings.CutSuffix(token, "\uE001!")
		}
		if !ok || strings.Trim(token, "0123456789abcdef") != "" {
			t.Errorf("value %q: output %q is not one token", v, out)
			continue
		}
		if len(v) > 2 && strings.Contains(out, v) {
			t.Errorf("value %q is in clear in %q", v, out)
		}
		if n := strings.Count(out, "\uE000"); n != 1 {
			t.Errorf("value %q: %d token openings in %q", v, n, out)
		}
		if !merge.HasValue([]byte(out)) {
			t.Errorf("HasValue(%q) = false", out)
		}

		// Expand puts the value back, escaped for where the token is.
		for _, esc := range []struct {
			name string
			fn   merge.Escaper
		}{{"html", merge.EscapeHTML}, {"text", merge.EscapeText}, {"url", merge.EscapeURL}} {
			want := "Hi " + string(esc.fn(nil, v)) + "!"
			if got := string(merge.Expand(nil, []byte(out), esc.fn, merge.EscapeURL)); got != want {
				t.Errorf("value %q: Expand with %s gave %q, want %q", v, esc.name, got, want)
			}
			if got := merge.ExpandString(out, esc.fn); got != want {
				t.Errorf("value %q: ExpandString with %s gave %q, want %q", v, esc.name, got, want)
			}
		}

		// A percent-encoded token goes through the URL escaper, whatever
		// the text escaper is.
		enc := pct(out)
		if !merge.HasValue([]byte(enc)) {
			t.Errorf("HasValue(%q) = false", enc)
		}
		want := "Hi " + string(merge.EscapeURL(nil, v)) + "!"
		if got := string(merge.Expand(nil, []byte(enc), merge.EscapeHTML, merge.EscapeURL)); got != want {
			t.Errorf("value %q: Expand of %q gave %q, want %q", v, enc, got, want)
		}
	}
}

func TestExpandAppends(t *testing.T) {
	got := merge.Expand([]byte("<p>"), []byte("a "+tok("<b>")+" b"), merge.EscapeHTML, merge.EscapeURL)
	if want := "<p>a &lt;b&gt; b"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestExpandBothForms(t *testing.T) {
	// An href escaped by the renderer and the link text, in one document.
	src := `<a href="https://x.example/?who=` + pct(tok("a&b c")) + `">` + tok("a&b c") + `</a>`
	want := `<a href="https://x.example/?who=a%26b%20c">a&amp;b c</a>`
	if got := string(merge.Expand(nil, []byte(src), merge.EscapeHTML, merge.EscapeURL)); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestExpandLookalikes(t *testing.T) {
	// Bytes that only look like the start of a token are copied as they are.
	same := []string{
		"",
		"plain text",
		"100% sure, 50%",
		"%",
		"%%",
		"%EE",
		"%EE%80",
		"%EE%80%81",             // a closing without an opening
		"%EE%80%80616263",       // no closing
		"%EE%80%80zz%EE%80%81",  // not hex
		"%EE%80%80abc%EE%80%81", // odd number of digits
		"%ee%80%80616263%ee%80%81",
		"\uE000",
		"\uE001",
		"\uE000616263",
		"\uE000zz\uE001",
		"\uE000abc\uE001",
		"\uE000 61 \uE001",
		"\uE001616263\uE000",
		"caf\xc3\xa9 \xff\xfe invalid UTF-8",
		"ü%20ö",
	}
	for _, s := range same {
		if got := string(merge.Expand(nil, []byte(s), merge.EscapeHTML, merge.EscapeURL)); got != s {
			t.Errorf("Expand(%q) = %q, want it unchanged", s, got)
		}
		if got := merge.ExpandString(s, merge.EscapeHTML); got != s {
			t.Errorf("ExpandString(%q) = %q, want it unchanged", s, got)
		}
	}

	// A real token after a lookalike is still expanded.
	mixed := []struct{ in, want string }{
		{"\uE000zz" + tok("<b>"), "\uE000zz&lt;b&gt;"},
		{"\uE000zz\uE001" + tok("<b>"), "\uE000zz\uE001&lt;b&gt;"},
		{"50% " + tok("<b>") + " %EE%80", "50% &lt;b&gt; %EE%80"},
		{"%EE%80%80zz" + pct(tok("a b")), "%EE%80%80zza%20b"},
		{tok("a") + tok("b"), "ab"},
	}
	for _, m := range mixed {
		if got := string(merge.Expand(nil, []byte(m.in), merge.EscapeHTML, merge.EscapeURL)); got != m.want {
			t.Errorf("Expand(%q) = %q, want %q", m.in, got, m.want)
		}
	}
}

func TestHasValue(t *testing.T) {
	for _, s := range []string{"", "plain", "%EE%80", "%ee%80%80", "\uE001"} {
		if merge.HasValue([]byte(s)) {
			t.Errorf("HasValue(%q) = true", s)
		}
	}
}

func TestEscapeURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a+b&c d@x", "a%2Bb%26c%20d%40x"},
		{"AZaz09-._~", "AZaz09-._~"},
		{"/?#[]=;:,'\"<>", "%2F%3F%23%5B%5D%3D%3B%3A%2C%27%22%3C%3E"},
		{"javascript:alert(1)", "javascript%3Aalert%281%29"},
		{"\r\n\x00", "%0D%0A%00"},
		{"é", "%C3%A9"},
		{"", ""},
	}
	for _, tt := range tests {
		got := string(merge.EscapeURL(nil, tt.in))
		if got != tt.want {
			t.Errorf("EscapeURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, v := range append(hostile, "a+b&c d@x", "100%", "%20", "+ +") {
		got := string(merge.EscapeURL(nil, v))
		if q, err := url.QueryUnescape(got); err != nil || q != v {
			t.Errorf("QueryUnescape(EscapeURL(%q)) = %q, %v", v, q, err)
		}
		if p, err := url.PathUnescape(got); err != nil || p != v {
			t.Errorf("PathUnescape(EscapeURL(%q)) = %q, %v", v, p, err)
		}
		if strings.Trim(got, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%") != "" {
			t.Errorf("EscapeURL(%q) = %q: a byte outside the unreserved set", v, got)
		}
	}
	if got := string(merge.EscapeURL([]byte("q="), "a b")); got != "q=a%20b" {
		t.Errorf("EscapeURL does not append: got %q", got)
	}
}

func TestEscapeHTMLAndText(t *testing.T) {
	tests := []struct{ in, html, text string }{
		{"plain", "plain", "plain"},
		{`<a href="x">'&'</a>`, "&lt;a href=&#34;x&#34;&gt;&#39;&amp;&#39;&lt;/a&gt;", `<a href="x">'&'</a>`},
		{"tab\tCR\rLF\n", "tab\tCR\rLF\n", "tab\tCR\nLF\n"}, // text: line ends as LF
		{"a\r\nb\r\n\r\nc", "a\r\nb\r\n\r\nc", "a\nb\n\nc"},
		{"nul\x00esc\x1b[0mdel\x7fc1\u0085", "nulesc[0mdelc1", "nulesc[0mdelc1"},
		{"张伟 🐍", "张伟 🐍", "张伟 🐍"},
	}
	for _, tt := range tests {
		if got := string(merge.EscapeHTML(nil, tt.in)); got != tt.html {
			t.Errorf("EscapeHTML(%q) = %q, want %q", tt.in, got, tt.html)
		}
		if got := string(merge.EscapeText(nil, tt.in)); got != tt.text {
			t.Errorf("EscapeText(%q) = %q, want %q", tt.in, got, tt.text)
		}
	}
}

func TestOneLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"two  spaces", "two spaces"},
		{"  trim  ", "trim"},
		{"a\r\nb", "a b"},
		{"a\rb\nc", "a b c"},
		{"a\tb", "a b"},
		{"a\u2028b\u2029c", "a b c"},
		{"a\x00b", "a b"},
		{"a\x00\r\n\t \u2028b", "a b"},
		{"a\x7fb\u0085c\x1bd", "a b c d"},
		{"\r\nBcc: evil@example.org", "Bcc: evil@example.org"},
		{"\n\t\u2028", ""},
		{"张伟 🐍  Ünïcødé", "张伟 🐍 Ünïcødé"},
		{"a\u00a0b", "a b"}, // no-break space
	}
	for _, tt := range tests {
		if got := merge.OneLine(tt.in); got != tt.want {
			t.Errorf("OneLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestExtract(t *testing.T) {
	var shape string
	for i, v := range hostile {
		w := hostile[(i+1)%len(hostile)]
		src := "<p>" + tok(v) + ` <a href="?a=` + pct(tok(w)) + `">` + tok(v) + "</a>"
		got, values := merge.Extract([]byte("keep "), []byte(src))
		if i == 0 {
			shape = string(got)
		}
		// The same shape whatever the values: what makes it worth caching.
		if string(got) != shape {
			t.Errorf("values %q, %q: shape %q, want %q as for the first values", v, w, got, shape)
		}
		if len(values) != 3 || values[0] != v || values[1] != w || values[2] != v {
			t.Errorf("values %q, %q: extracted %q", v, w, values)
		}
		// Put back, they give what Expand gives from the tokens.
		want := string(merge.Expand([]byte("keep "), []byte(src), merge.EscapeHTML, merge.EscapeURL))
		if back := string(values.Expand(nil, got, merge.EscapeHTML, merge.EscapeURL)); back != want {
			t.Errorf("values %q, %q: put back %q, want %q", v, w, back, want)
		}
	}
	if want := "keep <p>\uE000v0\uE001 <a href=\"?a=%EE%80%80v1%EE%80%81\">\uE000v2\uE001</a>"; shape != want {
		t.Errorf("shape %q, want %q", shape, want)
	}
}

func TestValuesLookalikes(t *testing.T) {
	values := merge.Values{"<zero>", "one"}
	for _, s := range []string{
		"plain", "\uE000v\uE001", "\uE000v01\uE001", "\uE000v2\uE001", "\uE000v-1\uE001",
		"\uE000V0\uE001", "\uE000v0", "%EE%80%80v9%EE%80%81", "\uE000616263\uE001", "\uE000 v0\uE001",
	} {
		if got := string(values.Expand(nil, []byte(s), merge.EscapeHTML, merge.EscapeURL)); got != s {
			t.Errorf("Expand(%q) = %q, want it unchanged", s, got)
		}
	}
	if got := string(values.Expand(nil, []byte("\uE000v0\uE001%EE%80%80v1%EE%80%81\uE000v1\uE001"), merge.EscapeHTML, merge.EscapeURL)); got != "&lt;zero&gt;oneone" {
		t.Errorf("Expand gave %q", got)
	}
}

func TestElide(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                                  "plain",
		"a " + tok("x") + " " + pct(tok("y")):    "a {{…}} {{…}}",
		"b \uE000v0\uE001 %EE%80%80v12%EE%80%81": "b {{…}} {{…}}",
		"c \uE000zz\uE001 \uE000v\uE001":         "c \uE000zz\uE001 \uE000v\uE001",
	} {
		if got := merge.Elide(in); got != want {
			t.Errorf("Elide(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMergedOffset: a place in a shape is traced back to the same byte of
// the merged text, or to the token a numbered token stands for.
func TestMergedOffset(t *testing.T) {
	md := "a " + tok("x") + " b " + pct(tok("long value")) + " \uE000zz\uE001 " + tok("") + " c"
	shape, _ := merge.Extract(nil, []byte(md))
	for _, tt := range []struct{ inShape, inMerged string }{
		{"a ", "a "},
		{" b", " b"},
		{"\uE000v0", tok("x")},
		{"v0\uE001", tok("x")},
		{"%EE%80%80v1", pct(tok("long value"))},
		{" \uE000zz\uE001", " \uE000zz\uE001"}, // not a token: copied
		{"\uE000v2", tok("")},
		{" c", " c"},
	} {
		o := strings.Index(string(shape), tt.inShape)
		want := strings.Index(md, tt.inMerged)
		if strings.HasPrefix(tt.inShape, "v") {
			o++ // inside the numbered token
		}
		if got := merge.MergedOffset([]byte(md), o); got != want {
			t.Errorf("%q at %d in the shape: %d in the merged text, want %d", tt.inShape, o, got, want)
		}
	}
	if got := merge.MergedOffset([]byte(md), len(shape)); got != len(md) {
		t.Errorf("the shape's end: %d, want the merged text's, %d", got, len(md))
	}
}

// FuzzMergedOffset: every place of a shape is traced back to the same byte
// of the merged text or to a token's start, in order.
func FuzzMergedOffset(f *testing.F) {
	for _, v := range hostile {
		f.Add("<p>"+tok(v)+" [x](?a="+pct(tok(v))+")", v)
	}
	f.Fuzz(func(t *testing.T, text, value string) {
		md := []byte(strings.ReplaceAll(text, "VALUE", tok(value)))
		shape, _ := merge.Extract(nil, md)
		last := 0
		for o := range shape {
			m := merge.MergedOffset(md, o)
			if m < last || m >= len(md) {
				t.Fatalf("shape %q at %d: %d in %q, after %d", shape, o, m, md, last)
			}
			if md[m] != shape[o] && !strings.HasPrefix(string(md[m:]), "\uE000") && !strings.HasPrefix(string(md[m:]), "%EE%80%80") {
				t.Fatalf("shape %q at %d (%q): %d in %q, neither the same byte nor a token", shape, o, shape[o], m, md)
			}
			last = m
		}
	})
}
