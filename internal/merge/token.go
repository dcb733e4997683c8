package merge

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"html"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A value printed by a body template is written as a token: U+E000, the
// value's bytes in hex, U+E001. Markdown sees a word of letters and digits,
// so no value can open markup, a link, an HTML tag or a new block, and the
// token stays whole through rendering: as it is in text and attributes, or
// percent-encoded (%EE%80%80…%EE%80%81) where the renderer escaped a URL.
// Expand then puts each value back, escaped for where its token landed.
// Templates may not contain the two private-use characters themselves.
const (
	tokenOpen  = "\uE000"
	tokenClose = "\uE001"
	pctOpen    = "%EE%80%80"
	pctClose   = "%EE%80%81"
)

// inert is the template function that turns a printed value into a token.
func inert(v any) string {
	s := fmt.Sprint(v)
	var b strings.Builder
	b.Grow(len(tokenOpen) + 2*len(s) + len(tokenClose))
	b.WriteString(tokenOpen)
	var buf [64]byte
	for len(s) > 0 {
		n := min(len(s), len(buf)/2)
		hex.Encode(buf[:], []byte(s[:n]))
		b.Write(buf[:2*n])
		s = s[n:]
	}
	b.WriteString(tokenClose)
	return b.String()
}

// HasValue reports whether b holds a value, in either form.
func HasValue(b []byte) bool {
	return bytes.Contains(b, []byte(tokenOpen)) || bytes.Contains(b, []byte(pctOpen))
}

// Escaper appends value, escaped for some context, to dst.
type Escaper func(dst []byte, value string) []byte

// Expand appends src to dst with every value put back: a token as written
// through text, a percent-encoded token (the form a URL escaper gives) through
// inURL. Bytes that only look like a token are copied as they are.
func Expand(dst, src []byte, text, inURL Escaper) []byte {
	for {
		i := indexTokenStart(src)
		if i < 0 {
			return append(dst, src...)
		}
		dst = append(dst, src[:i]...)
		src = src[i:]
		open, closing, esc := tokenOpen, tokenClose, text
		if src[0] == '%' {
			open, closing, esc = pctOpen, pctClose, inURL
		}
		if !bytes.HasPrefix(src, []byte(open)) {
			n := 1
			if src[0] != '%' {
				_, n = utf8.DecodeRune(src)
			}
			dst = append(dst, src[:n]...)
			src = src[n:]
			continue
		}
		end := bytes.Index(src[len(open):], []byte(closing))
		if end < 0 {
			return append(dst, src...)
		}
		digits := src[len(open) : len(open)+end]
		value := make([]byte, hex.DecodedLen(len(digits)))
		if _, err := hex.Decode(value, digits); err != nil {
			dst = append(dst, src[:len(open)]...)
			src = src[len(open):]
			continue
		}
		dst = esc(dst, string(value))
		src = src[len(open)+end+len(closing):]
	}
}

// indexTokenStart returns the index of the first byte that may start a
// token (0xEE, the first byte of U+E000 in UTF-8, or '%'), or -1. A loop
// over bytes: bytes.IndexAny decodes runes and is several times slower on
// the long HTML that Expand reads for every message.
func indexTokenStart(b []byte) int {
	for i, c := range b {
		if c == 0xEE || c == '%' {
			return i
		}
	}
	return -1
}

// ExpandString is Expand for one string with one escaper for both forms.
func ExpandString(s string, esc Escaper) string {
	if !strings.Contains(s, tokenOpen) && !strings.Contains(s, pctOpen) {
		return s
	}
	return string(Expand(nil, []byte(s), esc, esc))
}

// EscapeHTML escapes a value for HTML text or a quoted attribute; control
// characters other than tab and line ends are dropped.
func EscapeHTML(dst []byte, value string) []byte {
	return append(dst, html.EscapeString(dropControls(value))...)
}

// EscapeText gives a value as plain text: line ends as LF, control
// characters other than tab and LF dropped.
func EscapeText(dst []byte, value string) []byte {
	if strings.IndexByte(value, '\r') >= 0 {
		value = strings.ReplaceAll(strings.ReplaceAll(value, "\r\n", "\n"), "\r", "\n")
	}
	return append(dst, dropControls(value)...)
}

// EscapeURL percent-encodes every byte of a value but the RFC 3986
// unreserved characters, so that it is one inert path segment or query
// value: "a+b&c d" becomes "a%2Bb%26c%20d".
func EscapeURL(dst []byte, value string) []byte {
	return append(dst, strings.ReplaceAll(url.QueryEscape(value), "+", "%20")...)
}

func dropControls(s string) string {
	ok := true
	for _, r := range s {
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			return -1
		}
		return r
	}, s)
}
