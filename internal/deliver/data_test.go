package deliver

import (
	"bufio"
	"bytes"
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

var stuffSeeds = []string{
	"", ".", "..", ".\r\n", "a\r\n.b\r\n", "\n.", "\r.", "\r\r\n.", "\r\n\r\n.\r\n", "a\nb\n.c",
	"line\r\n.\r\n..\r\nend", "\r", "\n", "\r\n", "x\r\r\r\n.", ".\r\n.\n.\r.",
	strings.Repeat("=C3=A9", 12) + "=\r\n." + strings.Repeat("x", 75) + "\r\n",
}

func TestDotStuff(t *testing.T) {
	for _, s := range stuffSeeds {
		if got, want := dotStuff([]byte("keep"), []byte(s)), append([]byte("keep"), textprotoStuff([]byte(s))...); !bytes.Equal(got, want) {
			t.Errorf("dotStuff(%q)\n got %q\nwant %q", s, got, want)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("a.\r\n")
	for range 20000 {
		b := make([]byte, r.IntN(60))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		if got, want := dotStuff(nil, b), textprotoStuff(b); !bytes.Equal(got, want) {
			t.Fatalf("dotStuff(%q)\n got %q\nwant %q", b, got, want)
		}
	}
}

func FuzzDotStuff(f *testing.F) {
	for _, s := range stuffSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := dotStuff(nil, b), textprotoStuff(b); !bytes.Equal(got, want) {
			t.Fatalf("dotStuff(%q)\n got %q\nwant %q", b, got, want)
		}
	})
}
