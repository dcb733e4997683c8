package merge

import "testing"

// FuzzOneLine holds OneLine's look at a string that needs no change
// (oneLine) to collapse, which rebuilds every string.
func FuzzOneLine(f *testing.F) {
	for _, s := range []string{"", " ", "a", "a b", "a  b", " a", "a ", "来自SMTP的问候…… 张伟",
		"a\u00a0b", "a\u2028b", "a\tb", "a\x7fb", "a\u0085b", "\xff", "a\u3000b", "Python爱好者"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := OneLine(s), collapse(s); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", s, got, want)
		}
	})
}
