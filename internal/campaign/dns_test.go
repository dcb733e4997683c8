package campaign

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/dnscheck"
	"github.com/batch-mailer/batch/internal/dnstest"
)

// signed gives c a new Ed25519 [dkim] key for example.org and returns
// the record that publishes it.
func signed(t *testing.T, c *Campaign) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c.DKIM = &DKIM{Domain: "example.org", Selector: "batch2026", Signer: priv}
	rec, err := c.DKIM.ZoneRecord()
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// serveGood serves every record of example.org as it should be, dkim
// and more, and returns the server's address.
func serveGood(t *testing.T, dkim string, more ...string) string {
	t.Helper()
	z := dnstest.MustParseZone(t, append([]string{
		`example.org. TXT "v=spf1 mx -all"`,
		`_dmarc.example.org. TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.org"`,
		`example.org. MX 10 mx.example.org.`,
		dkim,
	}, more...)...)
	return dnstest.Serve(t, z)
}

func TestCheckDNSBulk(t *testing.T) {
	const url = "\n[unsubscribe]\nurl = \"https://example.org/leave?e={{.email}}\"\n"
	c := newCampaign(t, goodList, goodBody, url, nil)
	addr := serveGood(t, signed(t, c))
	ctx := context.Background()

	rep, err := c.CheckDNS(ctx, addr, dnscheck.BulkThreshold)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Bulk || rep.Unmet != nil || rep.Failing() != 0 {
		t.Errorf("%d messages: bulk %v, unmet %v, failing %d; want a small sender, every record ok", dnscheck.BulkThreshold, rep.Bulk, rep.Unmet, rep.Failing())
	}
	for _, res := range rep.Results {
		if res.Verdict != dnscheck.OK {
			t.Errorf("%s %s: %v: %s", res.Check, res.Domain, res.Verdict, res.Message)
		}
	}
	if len(rep.Servers) != 1 || rep.Servers[0] != addr {
		t.Errorf("servers %q, want %q", rep.Servers, addr)
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	wantLines(t, b.String(),
		"DNS (asked "+addr+"):",
		"bulk sender: no, 5,000 messages (Gmail's and Yahoo's bulk-sender rules apply past 5,000 a day)")

	rep, err = c.CheckDNS(ctx, addr, dnscheck.BulkThreshold+1)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Bulk || len(rep.Unmet) != 0 {
		t.Errorf("%d messages, one-click unsubscribe: bulk %v, unmet %v; want a bulk sender meeting every requirement", dnscheck.BulkThreshold+1, rep.Bulk, rep.Unmet)
	}
	b.Reset()
	rep.Write(&b)
	wantLines(t, b.String(), "bulk sender: yes, 5,001 messages: Gmail's and Yahoo's bulk-sender requirements are met")

	// A mailto alone is not one-click unsubscribe (RFC 8058).
	c.Unsubscribe = &Unsubscribe{Mailto: "leave@example.org"}
	rep, err = c.CheckDNS(ctx, addr, 12345)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unmet) != 1 || rep.Unmet[0].Name != "unsubscribe" {
		t.Fatalf("no [unsubscribe] url: unmet %v, want unsubscribe alone", rep.Unmet)
	}
	if rep.Failing() != 0 {
		t.Errorf("an unmet requirement that is not a record counts as failing: %d", rep.Failing())
	}
	b.Reset()
	rep.Write(&b)
	wantLines(t, b.String(),
		"bulk sender: yes, 12,345 messages (past 5,000 a day): 1 of Gmail's and Yahoo's requirements for bulk senders is not met:",
		"unmet    unsubscribe  "+rep.Unmet[0].Why)
}

// wantLines fails unless each of want is a line of text.
func wantLines(t *testing.T, text string, want ...string) {
	t.Helper()
	lines := strings.Split(text, "\n")
	for _, w := range want {
		found := false
		for _, l := range lines {
			found = found || l == w
		}
		if !found {
			t.Errorf("no line %q in:\n%s", w, text)
		}
	}
}

func TestCheckDNSSender(t *testing.T) {
	c := newCampaign(t, goodList, goodBody, "\n[smtp]\nhost = \"smtp.example.org\"\nsender = \"bounces@bounce.example.org\"\n", nil)
	addr := serveGood(t, signed(t, c),
		`bounce.example.org. TXT "v=spf1 include:example.org -all"`)
	rep, err := c.CheckDNS(context.Background(), addr, 2)
	if err != nil {
		t.Fatal(err)
	}
	spf, _ := findResult(rep, dnscheck.CheckSPF, "bounce.example.org")
	if spf.Verdict != dnscheck.OK {
		t.Errorf("SPF of the sender domain: %v %s", spf.Verdict, spf.Message)
	}
	if _, ok := findResult(rep, dnscheck.CheckSPF, "example.org"); ok {
		t.Errorf("SPF checked for the From domain, not MAIL FROM's")
	}
	// The sender domain has no MX: bounces can't come back.
	mx, ok := findResult(rep, dnscheck.CheckMX, "bounce.example.org")
	if !ok || mx.Verdict != dnscheck.Missing || mx.Publish == "" {
		t.Errorf("MX of the sender domain: %+v, want missing with a record to publish", mx)
	}
	if rep.Failing() != 1 {
		t.Errorf("failing %d, want 1 (the sender's MX)", rep.Failing())
	}
}

func findResult(rep *DNSReport, check, domain string) (dnscheck.Result, bool) {
	for _, res := range rep.Results {
		if res.Check == check && res.Domain == domain {
			return res, true
		}
	}
	return dnscheck.Result{}, false
}

func TestCheckDNSNoAnswer(t *testing.T) {
	c := newCampaign(t, goodList, goodBody, "", nil)
	// A UDP port where nothing listens refuses every query at once.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	_, err = c.CheckDNS(context.Background(), addr, 2)
	var qe *DNSQueryError
	if !errors.As(err, &qe) {
		t.Fatalf("got %v, want a *DNSQueryError", err)
	}
	if qe.Name != "example.org." || qe.Type != "TXT" || qe.Server != addr {
		t.Errorf("query %s %s to %s, want the SPF query of example.org to %s", qe.Type, qe.Name, qe.Server, addr)
	}
	says(t, err, c.Path+": DNS check: ", ResolverEnv+"=host:port")
}

func TestCheckDNSBadResolver(t *testing.T) {
	c := newCampaign(t, goodList, goodBody, "", nil)
	_, err := c.CheckDNS(context.Background(), "localhost", 2)
	if err == nil {
		t.Fatal("a resolver without a port was taken")
	}
	says(t, err, ResolverEnv+`: resolver "localhost": want host:port`)
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 5001: "5,001", 123456: "123,456", 1234567: "1,234,567", -5: "-5"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
