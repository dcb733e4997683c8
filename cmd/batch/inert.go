package main

import (
	"io"
	"strconv"
	"sync"
	"unicode"
	"unicode/utf8"
)

// inertWriter is where batch's output leaves it for a terminal or a log:
// run puts one in front of stdout and one in front of stderr, so that text
// batch prints but did not write (a server's reply, a bounce's diagnostic,
// a journal's error from an earlier run) can't drive the terminal. Every
// control character but newline and tab (C0, DEL, C1), every bidirectional
// embedding, override and isolate (U+202A–U+202E, U+2066–U+2069), the line
// and paragraph separators and every byte that is not UTF-8 are written as
// Go's %q writes them (\x1b, \r, \u009b, \u202e, \xff); other text,
// non-ASCII included, passes as it is. Newlines stay: the lines are
// batch's. Tabs stay too: they only move on to the next stop, as spaces
// would, and batch's help aligns with them. A backslash stays itself, so
// a path or a text that has one reads as written.
//
// A rune that a Write cuts off (a buffered writer's flush may) waits for
// the next Write; flush writes what is left. Writes may come from any
// goroutine.
type inertWriter struct {
	w io.Writer

	mu      sync.Mutex
	partial []byte // the start of a rune the last Write cut off
	buf     []byte
}

func newInertWriter(w io.Writer) *inertWriter { return &inertWriter{w: w} }

// Write writes b with its controls made visible; it returns len(b) when
// all of it was written.
func (iw *inertWriter) Write(b []byte) (int, error) {
	iw.mu.Lock()
	defer iw.mu.Unlock()
	n := len(b)
	if len(iw.partial) > 0 {
		b = append(iw.partial, b...)
		iw.partial = nil
	}
	if tail := cutRune(b); tail > 0 {
		iw.partial = append([]byte(nil), b[len(b)-tail:]...)
		b = b[:len(b)-tail]
	}
	if inert(b) {
		if _, err := iw.w.Write(b); err != nil {
			return 0, err
		}
		return n, nil
	}
	iw.buf = appendInert(iw.buf[:0], b)
	if _, err := iw.w.Write(iw.buf); err != nil {
		return 0, err
	}
	return n, nil
}

// control writes seq, a control sequence of batch's own (the progress
// bar's redraw), as it is.
func (iw *inertWriter) control(seq string) error {
	iw.mu.Lock()
	defer iw.mu.Unlock()
	_, err := io.WriteString(iw.w, seq)
	return err
}

// flush writes the start of a rune the last Write left, made visible: no
// Write comes to end it.
func (iw *inertWriter) flush() error {
	iw.mu.Lock()
	defer iw.mu.Unlock()
	if len(iw.partial) == 0 {
		return nil
	}
	_, err := iw.w.Write(appendInert(nil, iw.partial))
	iw.partial = nil
	return err
}

// control writes seq, a control sequence of batch's own, to w as it is:
// past its cleaning when w is an inertWriter.
func control(w io.Writer, seq string) {
	if iw, ok := w.(*inertWriter); ok {
		iw.control(seq)
		return
	}
	io.WriteString(w, seq)
}

// cutRune returns how many bytes at the end of b are the start of a rune
// that b cuts off: 0 when b ends with a whole rune, or with bytes no rune
// can start with.
func cutRune(b []byte) int {
	for i := 1; i < utf8.UTFMax && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < utf8.RuneSelf {
			return 0
		}
		if utf8.RuneStart(c) {
			if utf8.FullRune(b[len(b)-i:]) {
				return 0
			}
			return i
		}
	}
	return 0
}

// inert reports whether b is printable ASCII, newlines and tabs: text
// appendInert would leave as it is, told at once.
func inert(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\n' && c != '\t') || c >= 0x7f {
			return false
		}
	}
	return true
}

// appendInert appends b to dst with every rune that could drive a
// terminal or hide text written as Go's %q writes it (see inertWriter).
func appendInert(dst, b []byte) []byte {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\x`...)
			dst = append(dst, "0123456789abcdef"[b[0]>>4], "0123456789abcdef"[b[0]&0xf])
		case shown(r):
			q := strconv.QuoteRune(r) // '\x1b'
			dst = append(dst, q[1:len(q)-1]...)
		default:
			dst = append(dst, b[:size]...)
		}
		b = b[size:]
	}
	return dst
}

// shown reports whether r is written as an escape: a control character
// but newline and tab, a bidirectional control, or a line or paragraph
// separator.
func shown(r rune) bool {
	switch {
	case r == '\n' || r == '\t':
		return false
	case unicode.IsControl(r):
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069':
		return true
	case r == '\u2028' || r == '\u2029':
		return true
	}
	return false
}
