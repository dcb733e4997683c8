package campaign

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/batch-mailer/batch/internal/dnscheck"
)

// ResolverEnv is the variable that names the DNS server batch check
// --dns asks (host:port), instead of /etc/resolv.conf's.
const ResolverEnv = "BATCH_RESOLVER"

// DNSQueryError is a DNS query that got no usable answer: it names the
// query and the server asked.
type DNSQueryError = dnscheck.QueryError

// DNSReport is what CheckDNS found: the verdict on each DNS record the
// campaign's mail is judged by and, for a list of more than
// dnscheck.BulkThreshold messages, the bulk-sender requirements of Gmail
// and Yahoo that it does not meet.
type DNSReport struct {
	Results  []dnscheck.Result
	Servers  []string // the DNS servers asked
	Messages int      // the messages the list makes, as check counted them
	Bulk     bool     // Messages is past dnscheck.BulkThreshold
	Unmet    []dnscheck.Requirement

	report *dnscheck.Report
}

// Failing returns the number of checks whose record is missing or wrong.
func (r *DNSReport) Failing() int {
	n := 0
	for _, res := range r.Results {
		if res.Verdict == dnscheck.Missing || res.Verdict == dnscheck.Wrong {
			n++
		}
	}
	return n
}

// Write prints the report as batch check --dns does: a heading naming
// the servers asked, a line each check (its verdict, and under it the
// record to publish), then whether the list is a bulk sender's and, if
// so, the requirements not met.
func (r *DNSReport) Write(w io.Writer) error {
	fmt.Fprintf(w, "DNS (asked %s):\n", strings.Join(r.Servers, ", "))
	if err := r.report.Write(w); err != nil {
		return err
	}
	switch {
	case !r.Bulk:
		_, err := fmt.Fprintf(w, "bulk sender: no, %s (Gmail's and Yahoo's bulk-sender rules apply past %s a day)\n",
			count(r.Messages, "message"), thousands(dnscheck.BulkThreshold))
		return err
	case len(r.Unmet) == 0:
		_, err := fmt.Fprintf(w, "bulk sender: yes, %s: Gmail's and Yahoo's bulk-sender requirements are met\n", count(r.Messages, "message"))
		return err
	}
	verb := "are"
	if len(r.Unmet) == 1 {
		verb = "is"
	}
	fmt.Fprintf(w, "bulk sender: yes, %s (past %s a day): %d of Gmail's and Yahoo's requirements for bulk senders %s not met:\n",
		count(r.Messages, "message"), thousands(dnscheck.BulkThreshold), len(r.Unmet), verb)
	return dnscheck.WriteBulk(w, r.Unmet)
}

// CheckDNS looks up the DNS records the campaign's mail is judged by
// (dnscheck.Check): SPF of the MAIL FROM domain ([smtp] sender's, else
// the From domain's), DKIM for the [dkim] selector and key, DMARC, the
// alignment of both with the From domain, and MX. messages is how many
// messages the list makes (Summary.Messages of Check); past
// dnscheck.BulkThreshold the report lists the bulk-sender requirements
// not met, one-click unsubscribe being [unsubscribe] url. resolver is
// the DNS server to ask (host:port), or "" for /etc/resolv.conf's. A
// query that gets no answer is a *DNSQueryError.
func (c *Campaign) CheckDNS(ctx context.Context, resolver string, messages int) (*DNSReport, error) {
	r, err := dnscheck.NewResolver(resolver)
	if err != nil {
		if resolver != "" {
			return nil, fmt.Errorf("%s: %w", ResolverEnv, err)
		}
		return nil, fmt.Errorf("%w, in %s", err, ResolverEnv)
	}
	d := dnscheck.Domains{From: domainOf(c.From.Address)}
	if c.DKIM != nil {
		d.DKIM = c.DKIM.signer()
	}
	if c.SMTP != nil {
		d.Sender = domainOf(c.SMTP.Sender)
	}
	rep, err := dnscheck.Check(ctx, r, d)
	if err != nil {
		return nil, fmt.Errorf("%s: DNS check: %w: see that this machine is online, or ask another DNS server with %s=host:port", c.Path, err, ResolverEnv)
	}
	out := &DNSReport{
		Results:  rep.Results,
		Servers:  r.Servers(),
		Messages: messages,
		Bulk:     messages > dnscheck.BulkThreshold,
		report:   rep,
	}
	if out.Bulk {
		out.Unmet = dnscheck.Bulk(rep, c.Unsubscribe != nil && c.Unsubscribe.URL != nil)
	}
	return out, nil
}

// domainOf returns the domain of an address, "" for none.
func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// count gives "1 message", "6,000 messages".
func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return thousands(n) + " " + what + "s"
}

// thousands writes n with a comma every three digits: 5,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
