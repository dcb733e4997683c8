package deliver

import (
	"errors"
	"strings"
	"testing"
)

// TestHintWords: every hint says what to check in the connection's terms,
// never in those of a file that configures it ([smtp], ca_file, helo,
// security = …): the caller says that.
func TestHintWords(t *testing.T) {
	for h := HintNone + 1; h <= HintReplyLimit; h++ {
		s := h.String()
		if s == "" || strings.HasPrefix(s, "hint ") {
			t.Errorf("hint %d says nothing", int(h))
		}
		for _, key := range []string{"[", "_", "=", "helo", `"`} {
			if strings.Contains(s, key) {
				t.Errorf("hint %d: %q names a setting as a file does (%q)", int(h), s, key)
			}
		}
	}
	ce := &ConnError{Addr: "smtp.example.org:587", Step: "connect", Hint: HintReachable, Err: errors.New("refused")}
	if want := "smtp.example.org:587: connect: refused: " + HintReachable.String(); ce.Error() != want {
		t.Errorf("%q, want %q", ce, want)
	}
	if ce.Hint = HintNone; ce.Error() != "smtp.example.org:587: connect: refused" {
		t.Errorf("%q: a ConnError without a hint has no hint", ce)
	}
}
