package dnscheck

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/batch-mailer/batch/internal/dnstest"
	"github.com/batch-mailer/batch/internal/render"
)

func ed25519Key(t testing.TB) *render.DKIM {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &render.DKIM{Domain: "example.org", Selector: "batch2026", Signer: priv}
}

func rsaKey(t testing.TB) *render.DKIM {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &render.DKIM{Domain: "example.org", Selector: "batch2026", Signer: priv}
}

// records are a zone's lines by what they are, so that a test can
// replace one kind, or drop it with nil.
type records map[string][]string

// good returns a zone of example.org where every check is ok.
func good(t testing.TB, d *render.DKIM) records {
	t.Helper()
	dkim, err := d.ZoneRecord()
	if err != nil {
		t.Fatal(err)
	}
	return records{
		// The SPF record in two strings, cut inside a word: joined with
		// nothing between them it reads as one (RFC 7208 §3.3).
		"spf": {`example.org. TXT "v=spf1 include:_spf.prov" "ider.test ~all"`,
			`example.org. TXT "google-site-verification=abc"`,
			`_spf.provider.test. TXT "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"`},
		"dkim":  {dkim},
		"dmarc": {`_dmarc.example.org. TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.org"`},
		"mx":    {`example.org. MX 10 mx1.example.org.`, `example.org. MX 20 mx2.example.org.`},
	}
}

func (rs records) with(kind string, lines ...string) records {
	out := records{}
	for k, v := range rs {
		out[k] = v
	}
	out[kind] = lines
	return out
}

func (rs records) zone(t testing.TB) *dnstest.Zone {
	var lines []string
	for _, k := range []string{"spf", "dkim", "dmarc", "mx", "more"} {
		lines = append(lines, rs[k]...)
	}
	return dnstest.MustParseZone(t, lines...)
}

// resolverFor returns a resolver that asks only h, served by dnstest.
func resolverFor(t testing.TB, h dns.Handler) *Resolver {
	t.Helper()
	r, err := NewResolver(dnstest.Serve(t, h))
	if err != nil {
		t.Fatal(err)
	}
	r.Timeout = 5 * time.Second
	return r
}

func check(t *testing.T, rs records, d Domains) *Report {
	t.Helper()
	rep, err := Check(context.Background(), resolverFor(t, rs.zone(t)), d)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func result(t *testing.T, rep *Report, check string) Result {
	t.Helper()
	res, ok := rep.Result(check)
	if !ok {
		t.Fatalf("no %s result in %+v", check, rep.Results)
	}
	return res
}

// want checks a result's verdict, that its message has each of parts,
// and its record to publish.
func want(t *testing.T, res Result, v Verdict, publish string, parts ...string) {
	t.Helper()
	if res.Verdict != v {
		t.Errorf("%s %s: %v (%s), want %v", res.Check, res.Domain, res.Verdict, res.Message, v)
	}
	for _, p := range parts {
		if !strings.Contains(res.Message, p) {
			t.Errorf("%s %s: message %q lacks %q", res.Check, res.Domain, res.Message, p)
		}
	}
	if res.Publish != publish {
		t.Errorf("%s %s: publish\n%s\nwant\n%s", res.Check, res.Domain, res.Publish, publish)
	}
}

func TestGood(t *testing.T) {
	d := rsaKey(t)
	rep := check(t, good(t, d), Domains{From: "Example.ORG.", DKIM: d})
	var checks []string
	for _, res := range rep.Results {
		checks = append(checks, res.Check)
		want(t, res, OK, "")
	}
	if w := []string{CheckSPF, CheckDKIM, CheckDMARC, CheckAlignment, CheckMX}; !slices.Equal(checks, w) {
		t.Errorf("checks %v, want %v", checks, w)
	}
	want(t, result(t, rep, CheckSPF), OK, "", `"v=spf1 include:_spf.provider.test ~all"`)
	want(t, result(t, rep, CheckDKIM), OK, "", "k=rsa")
	if res := result(t, rep, CheckDKIM); res.Domain != "batch2026._domainkey.example.org" {
		t.Errorf("DKIM's domain %q", res.Domain)
	}
	want(t, result(t, rep, CheckDMARC), OK, "", "p=reject", "mailto:dmarc@example.org")
	want(t, result(t, rep, CheckMX), OK, "", "replies go to mx1.example.org, mx2.example.org")
	if unmet := Bulk(rep, true); len(unmet) != 0 {
		t.Errorf("bulk requirements unmet: %+v", unmet)
	}
	if unmet := Bulk(rep, false); len(unmet) != 1 || unmet[0].Name != "unsubscribe" {
		t.Errorf("without one-click unsubscribe, unmet %+v", unmet)
	}
}

func TestEd25519(t *testing.T) {
	d := ed25519Key(t)
	rep := check(t, good(t, d), Domains{From: "example.org", DKIM: d})
	want(t, result(t, rep, CheckDKIM), OK, "", "k=ed25519")
}

func TestSPF(t *testing.T) {
	d := ed25519Key(t)
	generic := `example.org. IN TXT "v=spf1 mx ~all"`
	include := `_spf.provider.test. TXT "v=spf1 ip4:192.0.2.0/24 -all"`
	for _, tc := range []struct {
		name    string
		spf     []string
		verdict Verdict
		publish string
		parts   []string
	}{
		{"missing", nil, Missing, generic, []string{"no SPF record", "include:"}},
		{"missing among other TXT", []string{`example.org. TXT "v=spf10 -all"`, `example.org. TXT "hello"`}, Missing, generic, nil},
		{"two records", []string{`example.org. TXT "v=spf1 mx -all"`, `example.org. TXT "v=spf1 a -all"`}, Wrong, generic, []string{"2 SPF records", "merge"}},
		{"no all", []string{`example.org. TXT "v=spf1 mx a"`}, Note, `example.org. IN TXT "v=spf1 mx a ~all"`, []string{"ends in no all"}},
		{"+all", []string{`example.org. TXT "v=spf1 mx +all"`}, Wrong, `example.org. IN TXT "v=spf1 mx ~all"`, []string{"+all lets any server"}},
		{"all without a qualifier", []string{`example.org. TXT "v=spf1 mx all"`}, Wrong, `example.org. IN TXT "v=spf1 mx ~all"`, []string{"lets any server"}},
		{"?all", []string{`example.org. TXT "v=spf1 mx ?all"`}, Note, `example.org. IN TXT "v=spf1 mx ~all"`, []string{"?all"}},
		{"-all", []string{`example.org. TXT "V=SPF1 MX -ALL"`}, OK, "", nil},
		{"syntax", []string{`example.org. TXT "v=spf1 ip4:192.0.2.300 ~all"`}, Wrong, generic, []string{"192.0.2.300 is not an IPv4 address", "permerror"}},
		{"unknown mechanism", []string{`example.org. TXT "v=spf1 ipv4:192.0.2.1 ~all"`}, Wrong, generic, []string{`"ipv4" is not a mechanism`}},
		{"include without its record", []string{`example.org. TXT "v=spf1 include:gone.test ~all"`}, Wrong, "", []string{"gone.test has no SPF record"}},
		{"redirect", []string{`example.org. TXT "v=spf1 redirect=_spf.provider.test"`, include}, OK, "", nil},
		{"redirect to no all", []string{`example.org. TXT "v=spf1 redirect=_spf.provider.test"`, `_spf.provider.test. TXT "v=spf1 a"`}, Note, "", []string{"no all"}},
		{"ptr", []string{`example.org. TXT "v=spf1 ptr -all"`}, Note, "", []string{"ptr is slow"}},
		{"too many lookups", []string{
			`example.org. TXT "v=spf1 a mx include:a.test include:b.test ~all"`,
			`a.test. TXT "v=spf1 a mx exists:%{i}.x.test include:b.test -all"`,
			`b.test. TXT "v=spf1 a:x.b.test mx:y.b.test ptr -all"`,
		}, Wrong, "", []string{"more than 10 DNS lookups"}},
		{"ten lookups", []string{
			`example.org. TXT "v=spf1 a mx include:a.test include:b.test ~all"`,
			`a.test. TXT "v=spf1 a mx exists:%{i}.x.test -all"`,
			`b.test. TXT "v=spf1 a:x.b.test mx:y.b.test -all"`,
		}, OK, "", nil},
		{"an include loop", []string{`example.org. TXT "v=spf1 include:example.org ~all"`}, Wrong, "", []string{"more than 10"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := check(t, good(t, d).with("spf", tc.spf...), Domains{From: "example.org", DKIM: d})
			want(t, result(t, rep, CheckSPF), tc.verdict, tc.publish, tc.parts...)
		})
	}
}

// TestSPFSender: SPF is the MAIL FROM domain's.
func TestSPFSender(t *testing.T) {
	d := ed25519Key(t)
	rs := good(t, d).with("spf", `example.org. TXT "v=spf1 +all"`, `bounces.example.org. TXT "v=spf1 mx -all"`,
		`bounces.example.org. MX 0 .`)
	rep := check(t, rs, Domains{From: "example.org", Sender: "bounces.example.org", DKIM: d})
	spf := result(t, rep, CheckSPF)
	want(t, spf, OK, "")
	if spf.Domain != "bounces.example.org" {
		t.Errorf("SPF checked for %s", spf.Domain)
	}
	var mx []Result
	for _, res := range rep.Results {
		if res.Check == CheckMX {
			mx = append(mx, res)
		}
	}
	if len(mx) != 2 || mx[0].Domain != "example.org" || mx[1].Domain != "bounces.example.org" {
		t.Fatalf("MX results %+v", mx)
	}
	want(t, mx[0], OK, "")
	want(t, mx[1], Wrong, "bounces.example.org. IN MX 10 mail.bounces.example.org.", "null MX", "bounces bounce")
	want(t, result(t, rep, CheckAlignment), OK, "", "SPF's bounces.example.org aligns (relaxed)")
}

func TestDMARC(t *testing.T) {
	d := ed25519Key(t)
	publish := `_dmarc.example.org. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.org"`
	for _, tc := range []struct {
		name    string
		dmarc   []string
		verdict Verdict
		publish string
		parts   []string
	}{
		{"missing", nil, Missing, publish, []string{"no DMARC record at _dmarc.example.org"}},
		{"p=none", []string{`_dmarc.example.org. TXT "v=DMARC1; p=none; rua=mailto:d@example.org"`}, Note, "", []string{"policy none only watches", "reports to mailto:d@example.org"}},
		{"no rua", []string{`_dmarc.example.org. TXT "v=DMARC1; p=quarantine"`}, Note, "", []string{"p=quarantine", "no rua="}},
		{"two", []string{`_dmarc.example.org. TXT "v=DMARC1; p=reject; rua=mailto:d@example.org"`, `_dmarc.example.org. TXT "v=DMARC1; p=none"`}, Wrong, publish, []string{"2 DMARC records"}},
		{"bad policy", []string{`_dmarc.example.org. TXT "v=DMARC1; p=block; rua=mailto:d@example.org"`}, Wrong, publish, []string{"p=block"}},
		{"no p", []string{`_dmarc.example.org. TXT "v=DMARC1; rua=mailto:d@example.org"`}, Wrong, publish, []string{"no p="}},
		{"not first", []string{`_dmarc.example.org. TXT "p=reject; v=DMARC1"`}, Missing, publish, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := check(t, good(t, d).with("dmarc", tc.dmarc...), Domains{From: "example.org", DKIM: d})
			want(t, result(t, rep, CheckDMARC), tc.verdict, tc.publish, tc.parts...)
			unmet := Bulk(rep, true)
			if tc.verdict > Note && !slices.ContainsFunc(unmet, func(r Requirement) bool { return r.Name == CheckDMARC }) {
				t.Errorf("bulk: DMARC not listed as unmet: %+v", unmet)
			}
			if tc.verdict <= Note && len(unmet) != 0 {
				t.Errorf("bulk: unmet %+v", unmet)
			}
		})
	}
}

// TestDMARCOrganizational: a subdomain without a record of its own
// has its organizational domain's, whose sp= holds for it.
func TestDMARCOrganizational(t *testing.T) {
	d := ed25519Key(t)
	d.Domain = "news.example.org"
	dkim, _ := d.ZoneRecord()
	rs := good(t, d).with("dmarc", `_dmarc.example.org. TXT "v=DMARC1; p=reject; sp=none; rua=mailto:d@example.org; adkim=s"`).
		with("dkim", dkim).with("mx", `news.example.org. MX 10 mx.example.org.`)
	rep := check(t, rs, Domains{From: "news.example.org", DKIM: d})
	want(t, result(t, rep, CheckDMARC), Note, "", "example.org's (the organizational domain's) holds, policy none")
	// adkim=s: d=news.example.org is From's, and so is SPF's domain
	// (aspf is relaxed).
	want(t, result(t, rep, CheckAlignment), OK, "", "d=news.example.org aligns (strict)", "SPF's news.example.org aligns (relaxed)")

	// Missing at both.
	rep = check(t, rs.with("dmarc"), Domains{From: "news.example.org", DKIM: d})
	want(t, result(t, rep, CheckDMARC), Missing,
		`_dmarc.news.example.org. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@news.example.org"`,
		"_dmarc.news.example.org nor _dmarc.example.org")
}

func TestDKIM(t *testing.T) {
	d := rsaKey(t)
	publish, err := d.ZoneRecord()
	if err != nil {
		t.Fatal(err)
	}
	other := ed25519Key(t)
	otherRec, _ := other.Record()
	pub := strings.TrimPrefix(publish[strings.Index(publish, `"`):], `"`)
	pub = strings.ReplaceAll(pub, `" "`, "")
	pub = strings.TrimSuffix(pub, `"`)
	name := "batch2026._domainkey.example.org. TXT "
	for _, tc := range []struct {
		name    string
		dkim    []string
		verdict Verdict
		publish string
		parts   []string
	}{
		{"missing", nil, Missing, publish, []string{"no key"}},
		{"another key", []string{name + `"` + otherRec + `"`}, Wrong, publish, []string{"another key than key_file's"}},
		{"bad base64", []string{name + `"v=DKIM1; k=rsa; p=MIIB!!!"`}, Wrong, publish, []string{"p= is not base64"}},
		{"not a key", []string{name + `"v=DKIM1; k=rsa; p=` + base64.StdEncoding.EncodeToString([]byte("hello")) + `"`}, Wrong, publish, []string{"not an RSA public key"}},
		{"revoked", []string{name + `"v=DKIM1; k=rsa; p="`}, Wrong, publish, []string{"revoked"}},
		{"wrong version", []string{name + `"v=DKIM2; p=AAAA"`}, Wrong, publish, []string{"v=DKIM2"}},
		{"two", []string{publish, name + `"v=DKIM1; p="`}, Wrong, publish, []string{"2 TXT records"}},
		{"testing", []string{name + `"v=DKIM1; t=y; k=rsa; p=` + pub[strings.Index(pub, "p=")+2:] + `"`}, Note, "", []string{"t=y"}},
		{"folded, no v= nor k=", []string{name + `"p=` + foldBase64(pub[strings.Index(pub, "p=")+2:]) + `"`}, OK, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := check(t, good(t, d).with("dkim", tc.dkim...), Domains{From: "example.org", DKIM: d})
			res := result(t, rep, CheckDKIM)
			want(t, res, tc.verdict, tc.publish, tc.parts...)
			unmet := Bulk(rep, true)
			if tc.verdict != OK && !slices.ContainsFunc(unmet, func(r Requirement) bool { return r.Name == CheckDKIM }) {
				t.Errorf("bulk: DKIM not listed as unmet: %+v", unmet)
			}
		})
	}
}

// foldBase64 puts white space in a base64 value, as RFC 6376 allows.
func foldBase64(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += 60 {
		b.WriteString(s[i:min(i+60, len(s))])
		b.WriteString(" \t")
	}
	return b.String()
}

func TestNoDKIM(t *testing.T) {
	d := ed25519Key(t)
	rep := check(t, good(t, d), Domains{From: "example.org"})
	want(t, result(t, rep, CheckDKIM), Note, "", "no [dkim] key")
	want(t, result(t, rep, CheckAlignment), Note, "", "DMARC passes on SPF alone")
	unmet := Bulk(rep, true)
	if len(unmet) != 1 || unmet[0].Name != CheckDKIM {
		t.Errorf("bulk: unmet %+v, want DKIM alone", unmet)
	}
}

func TestAlignment(t *testing.T) {
	d := ed25519Key(t)
	// A provider's bounce domain: DKIM alone aligns.
	rs := good(t, d).with("more", `bounces.provider.test. TXT "v=spf1 -all"`, `bounces.provider.test. MX 10 mx.provider.test.`)
	rep := check(t, rs, Domains{From: "example.org", Sender: "bounces.provider.test", DKIM: d})
	want(t, result(t, rep, CheckAlignment), Note, "", "SPF's bounces.provider.test does not align", "DMARC passes on DKIM alone")
	if unmet := Bulk(rep, true); len(unmet) != 0 {
		t.Errorf("bulk: unmet %+v", unmet)
	}

	// Nothing aligns: a signature of another domain.
	o := ed25519Key(t)
	o.Domain = "provider.test"
	dkim, _ := o.ZoneRecord()
	rep = check(t, rs.with("dkim", dkim), Domains{From: "example.org", Sender: "bounces.provider.test", DKIM: o})
	want(t, result(t, rep, CheckAlignment), Wrong, "", "d=provider.test does not align", "DMARC fails for every message")
	unmet := Bulk(rep, true)
	if !slices.ContainsFunc(unmet, func(r Requirement) bool { return r.Name == CheckAlignment }) {
		t.Errorf("bulk: alignment not unmet: %+v", unmet)
	}

	// No signature of batch's: SPF alone aligns, and [dkim] is the fix,
	// the From domain named once when it is its own organizational one.
	rep = check(t, good(t, d), Domains{From: "example.org"})
	res := result(t, rep, CheckAlignment)
	want(t, res, Note, "", "DMARC passes on SPF alone", "sign with [dkim] domain = example.org")
	if strings.Contains(res.Message, " or ") {
		t.Errorf("the From domain named twice: %s", res.Message)
	}
	rs = good(t, d).with("more", `news.example.org. TXT "v=spf1 -all"`, `news.example.org. MX 10 mx.example.org.`)
	rep = check(t, rs, Domains{From: "news.example.org"})
	want(t, result(t, rep, CheckAlignment), Note, "", "sign with [dkim] domain = example.org or news.example.org")

	// A public suffix's two labels are two organizations.
	if aligned("news.example.co.uk", "other.co.uk", 'r') {
		t.Error("news.example.co.uk aligns with other.co.uk")
	}
	if !aligned("a.b.example.co.uk", "example.co.uk", 'r') || aligned("a.example.org", "example.org", 's') {
		t.Error("alignment by organizational domain, or strict")
	}
}

func TestMX(t *testing.T) {
	d := ed25519Key(t)
	publish := "example.org. IN MX 10 mail.example.org."
	for _, tc := range []struct {
		name    string
		mx      []string
		verdict Verdict
		publish string
		parts   []string
	}{
		{"none", nil, Missing, publish, []string{"no MX record: replies can't be received"}},
		{"null", []string{`example.org. MX 0 .`}, Wrong, publish, []string{"null MX (0 .)", "refuses mail", "replies bounce"}},
		{"null and another", []string{`example.org. MX 0 .`, `example.org. MX 10 mx.example.org.`}, Wrong, "", []string{"beside mx.example.org"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := check(t, good(t, d).with("mx", tc.mx...), Domains{From: "example.org", DKIM: d})
			want(t, result(t, rep, CheckMX), tc.verdict, tc.publish, tc.parts...)
		})
	}
	// A domain that does not exist at all.
	rep := check(t, records{}, Domains{From: "nowhere.test"})
	want(t, result(t, rep, CheckMX), Wrong, "", "does not exist (NXDOMAIN)")
	want(t, result(t, rep, CheckSPF), Missing, `nowhere.test. IN TXT "v=spf1 mx ~all"`)
}

// TestTimeout: a server that never answers ends the check with an
// error that names the query, within the resolver's timeout.
func TestTimeout(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close() // never read: the query waits for nothing
	r, err := NewResolver(pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	r.Timeout = 300 * time.Millisecond
	_, err = Check(context.Background(), r, Domains{From: "example.org"})
	var qerr *QueryError
	if !errors.As(err, &qerr) {
		t.Fatalf("error %v (%T), want a *QueryError", err, err)
	}
	if qerr.Name != "example.org." || qerr.Type != "TXT" || qerr.Server != pc.LocalAddr().String() {
		t.Errorf("query error for %s %s at %s", qerr.Type, qerr.Name, qerr.Server)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v is not a deadline's", err)
	}
	for _, part := range []string{"TXT example.org.", pc.LocalAddr().String(), "no answer within 300ms"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q lacks %q", err, part)
		}
	}
}

// TestServerFailure: SERVFAIL is an error, not a missing record.
func TestServerFailure(t *testing.T) {
	r := resolverFor(t, dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeServerFailure)
		w.WriteMsg(m)
	}))
	_, err := Check(context.Background(), r, Domains{From: "example.org"})
	var qerr *QueryError
	if !errors.As(err, &qerr) || !strings.Contains(err.Error(), "SERVFAIL") {
		t.Fatalf("error %v", err)
	}
}

// TestTruncated: a truncated UDP answer is asked again over TCP.
func TestTruncated(t *testing.T) {
	z := dnstest.MustParseZone(t, `example.org. TXT "v=spf1 " "mx -all"`)
	var tcp atomic.Int32 // queries over TCP
	r := resolverFor(t, dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		if w.RemoteAddr().Network() == "tcp" {
			tcp.Add(1)
		}
		if w.RemoteAddr().Network() == "udp" {
			m := new(dns.Msg)
			m.SetReply(req)
			m.Truncated = true
			w.WriteMsg(m)
			return
		}
		z.ServeDNS(w, req)
	}))
	txts, err := r.TXT(context.Background(), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(txts, []string{"v=spf1 mx -all"}) {
		t.Errorf("TXT %q", txts)
	}
	if tcp.Load() != 1 {
		t.Errorf("%d queries over TCP", tcp.Load())
	}
}

// TestControlCharacters: a record's control characters are escaped in
// the message, and a long record is cut.
func TestControlCharacters(t *testing.T) {
	d := ed25519Key(t)
	long := strings.Repeat("ip4:192.0.2.1 ", 40)
	rs := good(t, d).with("spf", `example.org. TXT "v=spf1 \027[31mred ~all"`).
		with("more", `long.example.org. TXT "v=spf1 `+long+`~all"`, `long.example.org. MX 10 mx.example.org.`)
	rep := check(t, rs, Domains{From: "example.org", DKIM: d})
	res := result(t, rep, CheckSPF)
	if strings.ContainsRune(res.Message, 0x1b) || !strings.Contains(res.Message, `\x1b[31mred`) {
		t.Errorf("message %q", res.Message)
	}
	rep = check(t, rs, Domains{From: "example.org", Sender: "long.example.org", DKIM: d})
	res = result(t, rep, CheckSPF)
	want(t, res, OK, "")
	if len(res.Message) > maxQuoted+10 || !strings.HasSuffix(res.Message, "…") {
		t.Errorf("message of %d bytes: %q", len(res.Message), res.Message)
	}
}

// BenchmarkCheck: a whole check against the in-process server, an RSA
// key's record and an include followed.
func BenchmarkCheck(b *testing.B) {
	d := rsaKey(b)
	r, err := NewResolver(dnstest.Serve(b, good(b, d).zone(b)))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Check(context.Background(), r, Domains{From: "example.org", DKIM: d}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBulkNothingPasses: domains that align count for nothing when
// neither SPF nor DKIM passes.
func TestBulkNothingPasses(t *testing.T) {
	d := ed25519Key(t)
	rs := good(t, d).with("spf", `example.org. TXT "v=spf1 mx +all"`).with("dkim")
	rep := check(t, rs, Domains{From: "example.org", DKIM: d})
	want(t, result(t, rep, CheckAlignment), OK, "")
	var names []string
	for _, u := range Bulk(rep, false) {
		names = append(names, u.Name)
		if u.Name == CheckAlignment && !strings.Contains(u.Why, "the domains align, but the checks that would pass with them fail") {
			t.Errorf("alignment: %s", u.Why)
		}
	}
	if w := []string{CheckSPF, CheckDKIM, CheckAlignment, "unsubscribe"}; !slices.Equal(names, w) {
		t.Errorf("unmet %v, want %v", names, w)
	}
}
