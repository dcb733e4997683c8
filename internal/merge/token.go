package merge

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"html"
	"net/url"
	"slices"
	"strconv"
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
// TokenOpen and TokenClose are a token's first and last character, in a
// shape's numbered tokens too (Extract).
const (
	TokenOpen  = "\uE000"
	TokenClose = "\uE001"
	pctOpen    = "%EE%80%80"
	pctClose   = "%EE%80%81"
)

// inert is the template function that turns a printed value into a token.
func inert(v any) string {
	s := fmt.Sprint(v)
	var b strings.Builder
	b.Grow(len(TokenOpen) + 2*len(s) + len(TokenClose))
	b.WriteString(TokenOpen)
	var buf [64]byte
	for len(s) > 0 {
		n := min(len(s), len(buf)/2)
		hex.Encode(buf[:], []byte(s[:n]))
		b.Write(buf[:2*n])
		s = s[n:]
	}
	b.WriteString(TokenClose)
	return b.String()
}

// appendToken appends the token of value to dst, as inert makes it.
func appendToken(dst []byte, value string) []byte {
	const digits = "0123456789abcdef"
	dst = slices.Grow(dst, len(TokenOpen)+2*len(value)+len(TokenClose))
	dst = append(dst, TokenOpen...)
	for i := 0; i < len(value); i++ {
		dst = append(dst, digits[value[i]>>4], digits[value[i]&0x0f])
	}
	return append(dst, TokenClose...)
}

// HasValue reports whether b holds a value, in either form.
func HasValue(b []byte) bool {
	return bytes.Contains(b, []byte(TokenOpen)) || bytes.Contains(b, []byte(pctOpen))
}

// Escaper appends value, escaped for some context, to dst.
type Escaper func(dst []byte, value string) []byte

// Expand appends src to dst with every value put back: a token as written
// through text, a percent-encoded token (the form a URL escaper gives) through
// inURL. Bytes that only look like a token are copied as they are.
func Expand(dst, src []byte, text, inURL Escaper) []byte {
	return expand(dst, src, hexValue, text, inURL)
}

// hexValue decodes a token's hex digits.
func hexValue(digits []byte) (string, bool) {
	value := make([]byte, hex.DecodedLen(len(digits)))
	if _, err := hex.Decode(value, digits); err != nil {
		return "", false
	}
	return string(value), true
}

// Values are the values of one merged body, taken out by Extract.
type Values []string

// Plain reports whether every value shows as a run of text on one line:
// none holds a line end (CR or LF), and none is empty or only control
// characters, which EscapeText drops. Lists, quotes and tables indent and
// trim lines, which a value that ends one or is one can change.
func (v Values) Plain() bool {
	for _, s := range v {
		if strings.ContainsAny(s, "\r\n") || dropControls(s) == "" {
			return false
		}
	}
	return true
}

// Literals returns what comes before the first token of b and after the
// last, in either form; ok is false when b holds none.
func Literals(b []byte) (before, after []byte, ok bool) {
	first := -1
	for _, open := range []string{TokenOpen, pctOpen} {
		if i := bytes.Index(b, []byte(open)); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first < 0 {
		return b, nil, false
	}
	end := first // nothing after an opening with no closing is sure
	for _, closing := range []string{TokenClose, pctClose} {
		if i := bytes.LastIndex(b, []byte(closing)); i >= 0 {
			end = max(end, i+len(closing))
		}
	}
	return b[:first], b[end:], true
}

// URLTokens returns b with its tokens in the percent-encoded form, which
// Expand gives to its URL escaper.
func URLTokens(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte(TokenOpen), []byte(pctOpen))
	return bytes.ReplaceAll(b, []byte(TokenClose), []byte(pctClose))
}

// Extract appends src to dst with the values taken out: every token, in
// either form, becomes a numbered one (U+E000 'v' index U+E001, or its
// percent-encoded form), and its value goes into the Values at that index.
// What is left is the body's shape, the same for every recipient whose
// template took the same branches, so that it can be rendered once and
// the values put back by Values.Expand: a numbered token is a word of
// letters and digits to Markdown, as a token is.
func Extract(dst, src []byte) ([]byte, Values) {
	var values Values
	number := func(open, closing string) Escaper {
		return func(dst []byte, value string) []byte {
			dst = append(dst, open...)
			dst = append(dst, 'v')
			dst = strconv.AppendInt(dst, int64(len(values)), 10)
			values = append(values, value)
			return append(dst, closing...)
		}
	}
	dst = expand(dst, src, hexValue, number(TokenOpen, TokenClose), number(pctOpen, pctClose))
	return dst, values
}

// MergedOffset returns the offset in md of what is at offset off of the
// shape Extract makes of md: the same byte, or the token that a numbered
// token stands for. It is how a problem found in a shape is traced back
// to the merged text, and from there to the template (SourceLine).
func MergedOffset(md []byte, off int) int {
	at, n := 0, 0 // the shape's offset at md[i], the values numbered so far
	starts := newTokenStarts(md)
	i := 0
	for i < len(md) {
		j := starts.from(i)
		if j < 0 {
			j = len(md)
		}
		j -= i
		if off < at+j {
			return i + off - at
		}
		at, i = at+j, i+j
		if i == len(md) {
			break
		}
		// As expand does: what only looks like a token is copied.
		open, closing, size := tokenAt(md[i:])
		same := 0
		switch {
		case size == 0 && md[i] == '%':
			same = 1
		case size == 0:
			_, same = utf8.DecodeRune(md[i:])
		default:
			if _, ok := hexValue(md[i+len(open) : i+size-len(closing)]); !ok {
				same = len(open)
			}
		}
		if same > 0 {
			if off < at+same {
				return i + off - at
			}
			at, i = at+same, i+same
			continue
		}
		numbered := len(open) + 1 + len(strconv.Itoa(n)) + len(closing)
		n++
		if off < at+numbered {
			return i
		}
		at, i = at+numbered, i+size
	}
	return i
}

// Expand appends src, a shape made by Extract, to dst with the values put
// back as Expand does.
func (v Values) Expand(dst, src []byte, text, inURL Escaper) []byte {
	return expand(dst, src, v.value, text, inURL)
}

// value looks up a numbered token's value.
func (v Values) value(digits []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(digits, []byte("v"))
	if !ok || len(rest) == 0 || len(rest) > 1 && rest[0] == '0' {
		return "", false
	}
	i, err := strconv.Atoi(string(rest))
	if err != nil || i < 0 || i >= len(v) {
		return "", false
	}
	return v[i], true
}

// Elide returns s with each value, of either kind of token, shown as
// {{…}}: to quote a template's text in a message without a recipient's
// values.
func Elide(s string) string {
	if !HasValue([]byte(s)) {
		return s
	}
	elide := func(dst []byte, _ string) []byte { return append(dst, "{{…}}"...) }
	any := func(digits []byte) (string, bool) {
		if _, ok := hexValue(digits); ok {
			return "", true
		}
		_, err := strconv.Atoi(string(bytes.TrimPrefix(digits, []byte("v"))))
		return "", err == nil && bytes.HasPrefix(digits, []byte("v"))
	}
	return string(expand(nil, []byte(s), any, elide, elide))
}

// tokenAt returns the delimiters of the token that src starts with, and
// its length; 0 if src doesn't start with a whole token.
func tokenAt(src []byte) (open, closing string, n int) {
	open, closing = TokenOpen, TokenClose
	if src[0] == '%' {
		open, closing = pctOpen, pctClose
	}
	if !bytes.HasPrefix(src, []byte(open)) {
		return "", "", 0
	}
	end := bytes.Index(src[len(open):], []byte(closing))
	if end < 0 {
		return "", "", 0
	}
	return open, closing, len(open) + end + len(closing)
}

// expand is Expand with value telling what a token's digits stand for.
func expand(dst, src []byte, value func([]byte) (string, bool), text, inURL Escaper) []byte {
	starts := newTokenStarts(src)
	for pos := 0; ; {
		i := starts.from(pos)
		if i < 0 {
			return append(dst, src[pos:]...)
		}
		dst = append(dst, src[pos:i]...)
		rest := src[i:]
		open, closing, n := tokenAt(rest)
		if n == 0 {
			w := 1
			if rest[0] != '%' {
				_, w = utf8.DecodeRune(rest)
			}
			dst = append(dst, rest[:w]...)
			pos = i + w
			continue
		}
		v, ok := value(rest[len(open) : n-len(closing)])
		if !ok {
			dst = append(dst, rest[:len(open)]...)
			pos = i + len(open)
			continue
		}
		esc := text
		if open == pctOpen {
			esc = inURL
		}
		dst = esc(dst, v)
		pos = i + n
	}
}

// tokenStarts finds where tokens may start in b: at a 0xEE (the first
// byte of U+E000 in UTF-8) or a '%'. Each is looked for with
// bytes.IndexByte, many bytes at a time, and the next of each is kept, so
// that a long HTML with many a '%' (inlined CSS) and few tokens is read
// once, not once a '%'. Expand reads the whole HTML of every message.
type tokenStarts struct {
	b       []byte
	ee, pct int // the next of each at or after the last from; -1 for none
}

func newTokenStarts(b []byte) tokenStarts {
	return tokenStarts{b: b, ee: indexFrom(b, 0, 0xEE), pct: indexFrom(b, 0, '%')}
}

// from returns the first index from i on where a token may start, or -1;
// i never goes back.
func (s *tokenStarts) from(i int) int {
	if s.ee >= 0 && s.ee < i {
		s.ee = indexFrom(s.b, i, 0xEE)
	}
	if s.pct >= 0 && s.pct < i {
		s.pct = indexFrom(s.b, i, '%')
	}
	switch {
	case s.ee < 0:
		return s.pct
	case s.pct < 0:
		return s.ee
	}
	return min(s.ee, s.pct)
}

// indexFrom is the index of c in b from i on, or -1.
func indexFrom(b []byte, i int, c byte) int {
	if j := bytes.IndexByte(b[i:], c); j >= 0 {
		return i + j
	}
	return -1
}

// ExpandString is Expand for one string with one escaper for both forms.
func ExpandString(s string, esc Escaper) string {
	if !strings.Contains(s, TokenOpen) && !strings.Contains(s, pctOpen) {
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
