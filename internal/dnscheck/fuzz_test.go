package dnscheck

import (
	"strings"
	"testing"
)

// FuzzParseSPF: any record parses or is refused, without a panic, and
// a record that parses is its terms, each as written.
func FuzzParseSPF(f *testing.F) {
	for _, s := range []string{
		"v=spf1 a mx/24 a:mail.example.org/24//64 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all",
		"v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} redirect=x.example.org exp=%{d}.x",
		"v=spf1 include:_spf.example.net -all", "v=spf1 %{", "v=spf1 +",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		rec, err := ParseSPF(txt)
		if err != nil {
			return
		}
		var texts, words []string
		for _, term := range rec.Terms {
			texts = append(texts, term.Text)
		}
		for _, w := range strings.Split(txt[6:], " ") {
			if w != "" {
				words = append(words, w)
			}
		}
		if strings.Join(texts, " ") != strings.Join(words, " ") {
			t.Errorf("%q: terms %q", txt, texts)
		}
		if n := rec.lookups(); n < 0 || n > len(rec.Terms) {
			t.Errorf("%q: %d lookups of %d terms", txt, n, len(rec.Terms))
		}
	})
}

// FuzzParseTags: DKIM key and DMARC records parse or are refused,
// without a panic; a DKIM key that parses has a key or is revoked.
func FuzzParseTags(f *testing.F) {
	for _, s := range []string{
		"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
		"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
		"v=DMARC1; p=none; sp=reject; pct=50; rua=mailto:a@example.org,mailto:b@example.org; adkim=s",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		if k, err := ParseDKIMKey(txt); err == nil && (k.Key == nil) != k.Revoked {
			t.Errorf("%q: key %v, revoked %v", txt, k.Key, k.Revoked)
		}
		if d, err := ParseDMARC(txt); err == nil && (d.Policy == "" || d.Percent < 0 || d.Percent > 100) {
			t.Errorf("%q: %+v", txt, d)
		}
	})
}
