package dnscheck

import (
	"strings"
	"testing"
)

func TestParseSPF(t *testing.T) {
	valid := []string{
		"v=spf1",
		"v=spf1 -all",
		"V=SPF1   mx  -ALL",
		"v=spf1 a mx/24 a:mail.example.org/24//64 mx//64 a/0 mx:example.org ~all",
		"v=spf1 ip4:192.0.2.1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ip6:::ffff:192.0.2.1 ?all",
		"v=spf1 include:_spf.google.com include:spf.protection.outlook.com -all",
		"v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all",
		"v=spf1 ptr ptr:example.org -all",
		"v=spf1 redirect=_spf.example.org",
		"v=spf1 mx exp=explain._spf.%{d} -all",
		"v=spf1 mx foo=bar%%baz ra=postmaster -all",
		"v=spf1 include:example.org. -all",
		"v=spf1 a:%{d}%_x.example.org -all",
	}
	for _, txt := range valid {
		if _, err := ParseSPF(txt); err != nil {
			t.Errorf("%q: %v", txt, err)
		}
	}
	invalid := map[string]string{
		"v=spf2 -all":                     "does not start with v=spf1",
		"v=spf1x -all":                    "does not start with v=spf1",
		"v=spf1 -al":                      `"al" is not a mechanism`,
		"v=spf1 all:example.org":          "all takes no argument",
		"v=spf1 include -all":             "include needs a domain",
		"v=spf1 include: -all":            "no domain",
		"v=spf1 include:example -all":     "has no dot",
		"v=spf1 include:example.123 -all": "top label",
		"v=spf1 ip4:192.0.2.1/33":         "/33 is not a prefix length",
		"v=spf1 ip4:192.0.2.1/08":         "/08 is not a prefix length",
		"v=spf1 ip4:2001:db8::1":          "not an IPv4 address",
		"v=spf1 ip6:192.0.2.1":            "not an IPv6 address",
		"v=spf1 ip6:2001:db8::/129":       "/129 is not a prefix length",
		"v=spf1 ip4 -all":                 "ip4 needs a network",
		"v=spf1 a/33 -all":                "/33 is not a prefix length",
		"v=spf1 mx//129 -all":             "/129",
		"v=spf1 redirect=a.example.org redirect=b.example.org": "redirect= more than once",
		"v=spf1 exists:%{x}.example.org":                       "not a macro letter",
		"v=spf1 exists:%{d.example.org":                        "without its }",
		"v=spf1 exists:%x.example.org":                         "%x is not a macro",
		"v=spf1 exists:%{d2r!}.example.org":                    "not a delimiter",
		"v=spf1 1foo=bar":                                      "not a modifier's name",
		"v=spf1 +":                                             "no mechanism",
		"v=spf1 ptr/24":                                        "ptr takes no prefix length",
	}
	for txt, part := range invalid {
		_, err := ParseSPF(txt)
		if err == nil || !strings.Contains(err.Error(), part) {
			t.Errorf("%q: error %v, want one saying %q", txt, err, part)
		}
	}
}

func TestSPFTerms(t *testing.T) {
	rec, err := ParseSPF("v=spf1 a:Example.org/24 -MX include:x.example.org redirect=y.example.org ~all")
	if err != nil {
		t.Fatal(err)
	}
	want := []SPFTerm{
		{'+', "a", "Example.org/24", "a:Example.org/24"},
		{'-', "mx", "", "-MX"},
		{'+', "include", "x.example.org", "include:x.example.org"},
		{0, "redirect", "y.example.org", "redirect=y.example.org"},
		{'~', "all", "", "~all"},
	}
	if len(rec.Terms) != len(want) {
		t.Fatalf("terms %+v", rec.Terms)
	}
	for i := range want {
		if rec.Terms[i] != want[i] {
			t.Errorf("term %d: %+v, want %+v", i, rec.Terms[i], want[i])
		}
	}
	if n := rec.lookups(); n != 4 {
		t.Errorf("%d lookups, want 4", n)
	}
	if all := rec.all(); all == nil || all.Qualifier != '~' {
		t.Errorf("all %+v", all)
	}
}
