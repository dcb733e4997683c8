package dnscheck

import (
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	rep := &Report{Results: []Result{
		{Check: CheckSPF, Domain: "example.org", Verdict: OK, Message: `"v=spf1 mx -all"`},
		{Check: CheckDMARC, Domain: "example.org", Verdict: Missing, Message: "no DMARC record at _dmarc.example.org",
			Publish: `_dmarc.example.org. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.org"`},
		{Check: CheckAlignment, Domain: "example.org", Verdict: Note, Message: "DMARC passes on DKIM alone"},
		{Check: CheckMX, Domain: "example.org", Verdict: Wrong, Message: "a null MX"},
	}}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := `ok       SPF          example.org: "v=spf1 mx -all"
missing  DMARC        example.org: no DMARC record at _dmarc.example.org
         publish      _dmarc.example.org. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.org"
note     alignment    example.org: DMARC passes on DKIM alone
wrong    MX           example.org: a null MX
`
	if b.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	if err := WriteBulk(&b, []Requirement{{"DKIM", "every message must carry a DKIM signature"}, {"unsubscribe", "set [unsubscribe] url"}}); err != nil {
		t.Fatal(err)
	}
	want = `unmet    DKIM         every message must carry a DKIM signature
unmet    unsubscribe  set [unsubscribe] url
`
	if b.String() != want {
		t.Errorf("bulk:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	WriteBulk(&b, nil)
	if b.String() != "" {
		t.Errorf("nothing unmet: %q", b.String())
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{OK: "ok", Note: "note", Missing: "missing", Wrong: "wrong", 9: "verdict(9)"} {
		if v.String() != want {
			t.Errorf("%d: %q", int(v), v.String())
		}
	}
}
