package dnstest

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func ask(t *testing.T, addr, name string, qtype uint16, network string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: network}
	in, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", dns.TypeToString[qtype], name, network, err)
	}
	return in
}

func TestZone(t *testing.T) {
	z, err := ParseZone("test.zone", strings.NewReader(`$ORIGIN example.org.
@        TXT "v=spf1 -all"
@        MX  10 mx
_dmarc   TXT "v=DMARC1; p=none"
`))
	if err != nil {
		t.Fatal(err)
	}
	addr := Serve(t, z)
	for _, network := range []string{"udp", "tcp"} {
		in := ask(t, addr, "EXAMPLE.org.", dns.TypeTXT, network)
		if in.Rcode != dns.RcodeSuccess || len(in.Answer) != 1 || in.Answer[0].(*dns.TXT).Txt[0] != "v=spf1 -all" {
			t.Errorf("%s: TXT example.org: %v", network, in)
		}
	}
	if in := ask(t, addr, "example.org.", dns.TypeMX, "udp"); len(in.Answer) != 1 || in.Answer[0].(*dns.MX).Mx != "mx.example.org." {
		t.Errorf("MX example.org, relative to $ORIGIN: %v", in)
	}
	// A name with records of other types only: no answer, no error.
	if in := ask(t, addr, "_dmarc.example.org.", dns.TypeMX, "udp"); in.Rcode != dns.RcodeSuccess || len(in.Answer) != 0 {
		t.Errorf("MX _dmarc.example.org: %v, want NOERROR and no answer", in)
	}
	if in := ask(t, addr, "nowhere.example.org.", dns.TypeTXT, "udp"); in.Rcode != dns.RcodeNameError {
		t.Errorf("TXT nowhere.example.org: %s, want NXDOMAIN", dns.RcodeToString[in.Rcode])
	}
}

func TestParseZoneError(t *testing.T) {
	_, err := ParseZone("bad.zone", strings.NewReader("example.org. MX ten mx.example.org.\n"))
	if err == nil || !strings.Contains(err.Error(), "bad.zone") {
		t.Errorf("an MX without a preference: %v, want an error naming the file", err)
	}
}
