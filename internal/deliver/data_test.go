package deliver

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"net/textproto"
	"strings"
	"testing"
)

// textprotoStuff is what net/textproto's DotWriter writes for b, before
// its Close.
func textprotoStuff(b []byte) []byte {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	w := textproto.NewWriter(bw).DotWriter()
	w.Write(b)
	bw.Flush() // not Close: that adds the final dot
	return out.Bytes()
}

// smallMessage is a short message as batch renders one, CRLF throughout
// and no line starting with a dot: what dotStuff appends in one copy.
const smallMessage = "From: news@example.org\r\nTo: reader@example.com\r\nSubject: News\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" +
	"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
	"Bonjour Ren=C3=A9e, the seats are open: =\r\nbook yours a week early.\r\n\r\n" +
	"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
	"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9\r\n" +
	"awAAAABJRU5ErkJggg==\r\n--b--\r\n"

var stuffSeeds = []string{
	"", ".", "..", ".\r\n", "a\r\n.b\r\n", "\n.", "\r.", "\r\r\n.", "\r\n\r\n.\r\n", "a\nb\n.c",
	"line\r\n.\r\n..\r\nend", "\r", "\n", "\r\n", "x\r\r\r\n.", ".\r\n.\n.\r.", "\r\r\r\r\n", "\n\r\n",
	strings.Repeat("=C3=A9", 12) + "=\r\n." + strings.Repeat("x", 75) + "\r\n",
	smallMessage,
	strings.TrimSuffix(smallMessage, "\r\n"),
	"." + smallMessage,
	strings.ReplaceAll(smallMessage, "\r\n\r\n", "\r\n.\r\n.. and a line with a dot\r\n"),
	strings.ReplaceAll(smallMessage, "\r\nawAAAA", "\r\r\nawAAAA"),
	strings.ReplaceAll(smallMessage, "are open", "are\ropen"),
	"\n" + smallMessage,
	smallMessage + "\n",
	"\r" + smallMessage,
	smallMessage + "\r",
	strings.ReplaceAll(smallMessage, "\r\n", "\n"),
}

// checkStuff fails t unless dotStuff, appending b to some bytes, adds to
// them what textproto's DotWriter writes for b; it returns what it added.
func checkStuff(t *testing.T, b []byte) []byte {
	t.Helper()
	got := dotStuff([]byte("keep"), b)
	if want := append([]byte("keep"), textprotoStuff(b)...); !bytes.Equal(got, want) {
		t.Fatalf("dotStuff(%q)\n got %q\nwant %q", b, got, want)
	}
	return got[len("keep"):]
}

// rendered returns b with CRLF line ends throughout, as batch renders a
// message: its CRs dropped, and a CR put before each LF.
func rendered(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r"), nil), []byte("\n"), []byte("\r\n"))
}

// undotted returns b with a comma for each dot that starts a line.
func undotted(b []byte) []byte {
	b = bytes.Clone(b)
	for i, c := range b {
		if c == '.' && (i == 0 || b[i-1] == '\n') {
			b[i] = ','
		}
	}
	return b
}

// checkStuffAll checks dotStuff with b, with b as rendered, and with b as
// rendered and undotted, which dotStuff must leave as it is: the last two
// are messages as batch renders them, with and without lines that start
// with a dot, which random bytes seldom are.
func checkStuffAll(t *testing.T, b []byte) {
	t.Helper()
	checkStuff(t, b)
	r := rendered(b)
	checkStuff(t, r)
	u := undotted(r)
	if got := checkStuff(t, u); !bytes.Equal(got, u) {
		t.Fatalf("dotStuff(%q) = %q, want it unchanged", u, got)
	}
}

func TestDotStuff(t *testing.T) {
	for _, s := range stuffSeeds {
		checkStuffAll(t, []byte(s))
	}
	for _, dots := range []bool{false, true} {
		checkStuffAll(t, benchMessage(dots))
	}
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("a.\r\n")
	for range 20000 {
		b := make([]byte, r.IntN(60))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		checkStuffAll(t, b)
	}
}

func FuzzDotStuff(f *testing.F) {
	for _, s := range stuffSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkStuffAll)
}

// benchMessage builds a message of about 30 KB as batch renders one, CRLF
// throughout: MIME headers, a quoted-printable text part, an HTML part and
// an image of about 27 KB in base64, 76 characters a line. With dots, a
// few lines of the text start with a dot, which dot-stuffing doubles.
func benchMessage(dots bool) []byte {
	var b bytes.Buffer
	crlf := func(s string) { b.WriteString(s + "\r\n") }
	crlf("From: Batch Team <news@example.org>")
	crlf("To: Reader <reader@example.com>")
	crlf("Subject: =?utf-8?q?Our_autumn_news_=E2=80=94_seats_for_you?=")
	crlf("Date: Wed, 02 Dec 2026 05:00:00 +0000")
	crlf("Message-ID: <1764651600.1234.abcdef@example.org>")
	crlf("List-Unsubscribe: <https://example.org/u/abcdefghijklmnopqrstuvwxyz0123456789>")
	crlf("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
	crlf("MIME-Version: 1.0")
	crlf(`Content-Type: multipart/related; boundary="b1"`)
	crlf("")
	crlf("--b1")
	crlf(`Content-Type: multipart/alternative; boundary="b2"`)
	crlf("")
	crlf("--b2")
	crlf("Content-Type: text/plain; charset=utf-8")
	crlf("Content-Transfer-Encoding: quoted-printable")
	crlf("")
	para := "Bonjour Ren=C3=A9e, the seats for the autumn evening are open, and as a =\r\n" +
		"reader of the letter you may book yours a week before everyone else: =\r\n" +
		"https://example.org/seats?for=3Dreader&city=3DLyon"
	for i := range 6 {
		crlf(para)
		if dots && i%2 == 0 {
			crlf(". and one more thing, on a line of its own.")
		}
		crlf("")
	}
	crlf("--b2")
	crlf("Content-Type: text/html; charset=utf-8")
	crlf("Content-Transfer-Encoding: quoted-printable")
	crlf("")
	for range 6 {
		crlf(`<p style=3D"line-height: 1.5; margin: 0 0 8px; color: #333;">Bonjour Ren=`)
		crlf(`=C3=A9e, the seats for the autumn evening are open: <a href=3D"https://e=`)
		crlf(`xample.org/seats?for=3Dreader">book yours</a> a week early.</p>`)
	}
	crlf("--b2--")
	crlf("")
	crlf("--b1")
	crlf("Content-Type: image/png")
	crlf("Content-Transfer-Encoding: base64")
	crlf("Content-ID: <logo@example.org>")
	crlf("")
	img := make([]byte, 20<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range img {
		img[i] = byte(r.Uint32())
	}
	s := base64.StdEncoding.EncodeToString(img)
	for len(s) > 76 {
		crlf(s[:76])
		s = s[76:]
	}
	crlf(s)
	crlf("--b1--")
	return b.Bytes()
}

// BenchmarkDotStuff dot-stuffs a message of about 30 KB: crlf as batch
// renders it, which needs no change; dots with a few lines that start
// with a dot; lf with bare LFs, every line changed.
func BenchmarkDotStuff(b *testing.B) {
	crlf := benchMessage(false)
	for _, m := range []struct {
		name string
		b    []byte
	}{
		{"crlf", crlf},
		{"dots", benchMessage(true)},
		{"lf", bytes.ReplaceAll(crlf, []byte("\r\n"), []byte("\n"))},
	} {
		b.Run(m.name, func(b *testing.B) {
			dst := dotStuff(nil, m.b)
			b.SetBytes(int64(len(m.b)))
			for b.Loop() {
				dst = dotStuff(dst[:0], m.b)
			}
		})
	}
}
