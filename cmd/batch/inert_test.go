package main

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestInertWriter: what could drive a terminal or hide text is written as
// %q writes it; text, non-ASCII included, newlines and tabs pass as they
// are.
func TestInertWriter(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"ascii", "sent 3, failed 0\n", "sent 3, failed 0\n"},
		{"cjk", "来自SMTP的问候 Python爱好者 Zoë\n", "来自SMTP的问候 Python爱好者 Zoë\n"},
		{"tab kept", "a\tb\n", "a\tb\n"},
		{"backslash kept", `C:\mail\x1b`, `C:\mail\x1b`},
		{"esc", "550 \x1b]0;pwned\x07\x1b[2Kno such user", `550 \x1b]0;pwned\a\x1b[2Kno such user`},
		{"cr", "sent 0 failed\rsent 9", `sent 0 failed\rsent 9`},
		{"nul, backspace", "a\x00b\bc", `a\x00b\bc`},
		{"del", "a\x7fb", `a\x7fb`},
		{"c1 csi", "a\u009b2Jb", `a\u009b2Jb`},
		{"c1 nel", "a\u0085b", `a\u0085b`},
		{"bidi override", "user\u202egpj.exe", `user\u202egpj.exe`},
		{"bidi embeddings", "\u202a\u202b\u202c\u202d", `\u202a\u202b\u202c\u202d`},
		{"bidi isolates", "\u2066\u2067\u2068\u2069", `\u2066\u2067\u2068\u2069`},
		{"separators", "a\u2028b\u2029c", `a\u2028b\u2029c`},
		{"invalid utf-8", "a\xffb\xc3(", `a\xffb\xc3(`},
		{"arabic, emoji", "مرحبا 👋", "مرحبا 👋"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			w := newInertWriter(&out)
			n, err := w.Write([]byte(tc.in))
			if err != nil || n != len(tc.in) {
				t.Fatalf("Write: %d, %v; want %d, nil", n, err, len(tc.in))
			}
			if err := w.flush(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("wrote %q, want %q", out.String(), tc.want)
			}
		})
	}
}

// TestInertWriterCutRune: a rune that a buffered writer's flush cuts in
// two reaches the terminal whole, not as two invalid bytes; a cut-off
// start no Write ends is shown by flush.
func TestInertWriterCutRune(t *testing.T) {
	text := strings.Repeat("来自SMTP的问候\n", 1000) + "end \u202e\n"
	var out bytes.Buffer
	iw := newInertWriter(&out)
	bw := bufio.NewWriterSize(iw, 16) // 16 isn't a multiple of a line's 20 bytes
	bw.WriteString(text)
	bw.Flush()
	iw.flush()
	if want := strings.Repeat("来自SMTP的问候\n", 1000) + "end \\u202e\n"; out.String() != want {
		t.Errorf("wrote %q…, want %q…", out.String()[:min(60, out.Len())], want[:60])
	}

	out.Reset()
	iw.Write([]byte("ok \xe6\x9d"))
	if out.String() != "ok " {
		t.Errorf("wrote %q before the rune's end, want %q", out.String(), "ok ")
	}
	iw.flush()
	if out.String() != `ok \xe6\x9d` {
		t.Errorf("flush: wrote %q, want %q", out.String(), `ok \xe6\x9d`)
	}
}

// TestControlPassesThrough: the progress bar's own redraw reaches the
// terminal as it is, past the cleaning.
func TestControlPassesThrough(t *testing.T) {
	var out bytes.Buffer
	iw := newInertWriter(&out)
	control(iw, "\r\x1b[K")
	iw.Write([]byte("\r\x1b[K"))
	if want := "\r\x1b[K" + `\r\x1b[K`; out.String() != want {
		t.Errorf("wrote %q, want %q", out.String(), want)
	}
}

// FuzzInertWriter: whatever comes, in however many Writes, what reaches
// the terminal holds no rune shown would escape, and text with none of
// them passes as it is.
func FuzzInertWriter(f *testing.F) {
	f.Add("550 5.1.1 \x1b]0;pwned\x07\x1b[2Kno such user\u202e", 3)
	f.Add("来自SMTP的问候\r\n", 2)
	f.Add("\xe6\x9d\xa5\u009b", 1)
	f.Fuzz(func(t *testing.T, s string, cut int) {
		var out bytes.Buffer
		w := newInertWriter(&out)
		b := []byte(s)
		if cut > 0 && cut < len(b) {
			w.Write(b[:cut])
			b = b[cut:]
		}
		w.Write(b)
		w.flush()
		got := out.String()
		if !utf8.ValidString(got) {
			t.Fatalf("%q: wrote %q, not UTF-8", s, got)
		}
		for _, r := range got {
			if shown(r) {
				t.Fatalf("%q: wrote %q, which holds %q", s, got, r)
			}
		}
		clean := utf8.ValidString(s)
		for _, r := range s {
			clean = clean && !shown(r)
		}
		if clean && got != s {
			t.Fatalf("wrote %q for %q, which needs no escape", got, s)
		}
	})
}

// BenchmarkInertWriter: a progress line as it is, and a server's reply
// with controls to escape.
func BenchmarkInertWriter(b *testing.B) {
	for _, bc := range []struct{ name, line string }{
		{"plain", "batch: failed: r2@example.org (row 2): r2@example.org: RCPT TO: 550 5.1.1 no such user\n"},
		{"cjk", "batch: failed: r2@example.org (row 2): 来自SMTP的问候 Python爱好者 550 5.1.1 no such user\n"},
		{"hostile", "batch: failed: r2@example.org (row 2): 550 5.1.1 \x1b]0;pwned\x07\x1b[2Kno such user\u202e\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := newInertWriter(io.Discard)
			line := []byte(bc.line)
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for b.Loop() {
				w.Write(line)
			}
		})
	}
}
