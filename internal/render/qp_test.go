package render

import (
	"bytes"
	"math/rand/v2"
	"mime/quotedprintable"
	"strings"
	"testing"
)

// goQP is what mime/quotedprintable's Writer makes of text.
func goQP(text []byte) []byte {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	w.Write(text)
	w.Close()
	return b.Bytes()
}

var qpSeeds = []string{
	"", "a", "=", " ", "\t", "\n", "\r", "\r\n", "\n\r", "\r\r\n", "a \n", "a\t\r\n", "a ", "é",
	"\r\xc3\xa9\n", // a CR, an encoded byte, then LF: the Writer's cr flag survives encoding
	strings.Repeat("x", 75) + " ", strings.Repeat("x", 74) + "é", strings.Repeat("x", 73) + "=",
	strings.Repeat("x", 76), strings.Repeat("x", 200), strings.Repeat("é", 60),
	strings.Repeat("x", 74) + " \n", strings.Repeat("x", 75) + "\t\n" + strings.Repeat("y", 80),
	"<p>Hello 张伟, see <a href=\"https://example.org/?a=b&amp;c=d\">this</a></p>\n",
}

func TestAppendQP(t *testing.T) {
	for _, s := range qpSeeds {
		if got, want := appendQP([]byte("keep"), []byte(s)), append([]byte("keep"), goQP([]byte(s))...); !bytes.Equal(got, want) {
			t.Errorf("appendQP(%q)\n got %q\nwant %q", s, got, want)
		}
	}
	// Random text from the bytes that matter, lines of every length.
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab =\t\r\n\xc3\xa9\x00~!")
	for range 20000 {
		text := make([]byte, r.IntN(300))
		for i := range text {
			text[i] = alphabet[r.IntN(len(alphabet))]
			if r.IntN(4) == 0 {
				text[i] = 'x'
			}
		}
		if got, want := appendQP(nil, text), goQP(text); !bytes.Equal(got, want) {
			t.Fatalf("appendQP(%q)\n got %q\nwant %q", text, got, want)
		}
	}
}

func FuzzAppendQP(f *testing.F) {
	for _, s := range qpSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		if got, want := appendQP(nil, text), goQP(text); !bytes.Equal(got, want) {
			t.Fatalf("appendQP(%q)\n got %q\nwant %q", text, got, want)
		}
	})
}

func BenchmarkQP(b *testing.B) {
	text := bytes.Repeat([]byte("<p>Our November meetup is on Thursday in 上海. We have three talks lined up, pizza.</p>\n"), 100)
	b.Run("appendQP", func(b *testing.B) {
		var dst []byte
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			dst = appendQP(dst[:0], text)
		}
	})
	b.Run("quotedprintable.Writer", func(b *testing.B) {
		var buf bytes.Buffer
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			buf.Reset()
			w := quotedprintable.NewWriter(&buf)
			w.Write(text)
			w.Close()
		}
	})
}
