package merge

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// expandByByte is expand as it was, a byte at a time: what expand must
// still do.
func expandByByte(dst, src []byte, value func([]byte) (string, bool), text, inURL Escaper) []byte {
	for {
		i := -1
		for k, c := range src {
			if c == 0xEE || c == '%' {
				i = k
				break
			}
		}
		if i < 0 {
			return append(dst, src...)
		}
		dst = append(dst, src[:i]...)
		src = src[i:]
		open, closing, n := tokenAt(src)
		if n == 0 {
			w := 1
			if src[0] != '%' {
				_, w = utf8.DecodeRune(src)
			}
			dst = append(dst, src[:w]...)
			src = src[w:]
			continue
		}
		v, ok := value(src[len(open) : n-len(closing)])
		if !ok {
			dst = append(dst, src[:len(open)]...)
			src = src[len(open):]
			continue
		}
		esc := text
		if open == pctOpen {
			esc = inURL
		}
		dst = esc(dst, v)
		src = src[n:]
	}
}

// FuzzExpand: expand, which looks for a token's start many bytes at a
// time, gives what the byte-at-a-time loop gave, on any text.
func FuzzExpand(f *testing.F) {
	for _, s := range []string{
		"", "plain", "100% sure, 50%", "a " + inert("<b>") + " b",
		`<td style="width:100%">` + inert("x") + `</td><a href="?q=` + pctOpen + "6162" + pctClose + `">`,
		TokenOpen + "zz" + TokenClose, "\xee\x80", "%%" + inert("a&b") + "\xee", strings.Repeat("%", 40) + inert("é"),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		got := expand(nil, src, hexValue, EscapeHTML, EscapeURL)
		want := expandByByte(nil, src, hexValue, EscapeHTML, EscapeURL)
		if !bytes.Equal(got, want) {
			t.Fatalf("expand(%q) = %q, want %q", src, got, want)
		}
	})
}

// BenchmarkExpand: a newsletter's HTML, 30 KB with its CSS inlined (a
// '%' every few hundred bytes) and four values.
func BenchmarkExpand(b *testing.B) {
	var html bytes.Buffer
	for i := range 100 {
		html.WriteString(`<tr><td style="padding:0 4%;width:100%;font-size:16px;line-height:1.5">A paragraph of the newsletter, as long as they are, with a link or two.</td></tr>` + "\n")
		if i%25 == 0 {
			html.WriteString(inert("Python爱好者 <reader@example.org>"))
		}
	}
	src := html.Bytes()
	b.SetBytes(int64(len(src)))
	var dst []byte
	for b.Loop() {
		dst = Expand(dst[:0], src, EscapeHTML, EscapeURL)
	}
}
