package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/publicsuffix"

	"github.com/batch-mailer/batch/internal/render"
)

// Verdict is how a check came out.
type Verdict int

const (
	OK      Verdict = iota // as it should be
	Note                   // works, but worth changing
	Missing                // no record: publish the one suggested
	Wrong                  // a record that fails, or fails the mail
)

func (v Verdict) String() string {
	switch v {
	case OK:
		return "ok"
	case Note:
		return "note"
	case Missing:
		return "missing"
	case Wrong:
		return "wrong"
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// The checks a Result is of.
const (
	CheckSPF       = "SPF"
	CheckDKIM      = "DKIM"
	CheckDMARC     = "DMARC"
	CheckAlignment = "alignment"
	CheckMX        = "MX"
)

// Result is the verdict of one check on one domain.
type Result struct {
	Check   string // CheckSPF, CheckDKIM…
	Domain  string // the domain it is about (for DKIM, the key record's name)
	Verdict Verdict
	Message string // what was found and what it means, for a person
	// Publish is the record to publish, as a zone file's line
	// (`example.org. IN TXT "v=spf1 mx ~all"`), when there is one to
	// suggest: for a Missing or Wrong record, and for a Note that a
	// record fixes. Empty when a fix is not a record batch can write.
	Publish string
}

// Domains is what a campaign sends as.
type Domains struct {
	From   string       // the From address's domain
	Sender string       // the MAIL FROM ([smtp] sender) domain; "" when it is From's
	DKIM   *render.DKIM // the [dkim] key; nil when batch does not sign
}

// Report is the outcome of Check: one Result for each check, in the
// order SPF, DKIM, DMARC, alignment, MX (the From domain's, then the
// sender domain's when it differs).
type Report struct {
	Results []Result

	spfAligned, dkimAligned bool
}

// Result returns the first result of check, or false when there is none.
func (r *Report) Result(check string) (Result, bool) {
	for _, res := range r.Results {
		if res.Check == check {
			return res, true
		}
	}
	return Result{}, false
}

// Check looks up and judges the DNS records a campaign's mail is judged
// by. A query that gets no answer (in time, or at all) ends it with a
// *QueryError naming the query.
func Check(ctx context.Context, r *Resolver, d Domains) (*Report, error) {
	from := normalize(d.From)
	if from == "" {
		return nil, errors.New("no From domain to check")
	}
	sender := normalize(d.Sender)
	if sender == "" {
		sender = from
	}
	rep := &Report{}

	res, err := checkSPF(ctx, r, sender)
	if err != nil {
		return nil, err
	}
	rep.Results = append(rep.Results, res)

	dkimDomain := ""
	if d.DKIM != nil {
		res, err := checkDKIM(ctx, r, d.DKIM)
		if err != nil {
			return nil, err
		}
		rep.Results = append(rep.Results, res)
		dkimDomain = normalize(d.DKIM.Domain)
	} else {
		rep.Results = append(rep.Results, Result{Check: CheckDKIM, Domain: from, Verdict: Note,
			Message: "not checked: the campaign has no [dkim] key; if your relay signs, see that it signs as " + from + " or a parent of it"})
	}

	res, dmarc, err := checkDMARC(ctx, r, from)
	if err != nil {
		return nil, err
	}
	rep.Results = append(rep.Results, res)

	res = rep.alignment(from, sender, dkimDomain, dmarc)
	rep.Results = append(rep.Results, res)

	domains := []string{from}
	if sender != from {
		domains = append(domains, sender)
	}
	for _, domain := range domains {
		res, err := checkMX(ctx, r, domain, domain == from)
		if err != nil {
			return nil, err
		}
		rep.Results = append(rep.Results, res)
	}
	return rep, nil
}

// normalize returns a domain in lower case, without a final dot.
func normalize(domain string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domain)), ".")
}

// OrgDomain returns a domain's organizational domain (RFC 7489 §3.2):
// the label below its public suffix, by the Public Suffix List
// (news.example.org and example.org are example.org's, a.example.co.uk
// example.co.uk's), or the domain itself when the list doesn't tell.
func OrgDomain(domain string) string {
	domain = normalize(domain)
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}

// aligned reports whether domain aligns with from: the same domain in
// strict mode ('s'), the same organizational domain in relaxed mode
// (RFC 7489 §3.1).
func aligned(domain, from string, mode byte) bool {
	if domain == "" {
		return false
	}
	if mode == 's' {
		return domain == from
	}
	return OrgDomain(domain) == OrgDomain(from)
}

// alignment judges whether SPF's domain (MAIL FROM's) and DKIM's (d=)
// align with the From domain, as DMARC needs one of them to.
func (rep *Report) alignment(from, sender, dkim string, dmarc *DMARC) Result {
	aspf, adkim := byte('r'), byte('r')
	if dmarc != nil {
		aspf, adkim = dmarc.ASPF, dmarc.ADKIM
	}
	mode := func(m byte) string {
		if m == 's' {
			return "strict"
		}
		return "relaxed"
	}
	rep.spfAligned = aligned(sender, from, aspf)
	rep.dkimAligned = aligned(dkim, from, adkim)
	res := Result{Check: CheckAlignment, Domain: from}
	spf := fmt.Sprintf("SPF's %s aligns (%s)", sender, mode(aspf))
	if !rep.spfAligned {
		spf = fmt.Sprintf("SPF's %s does not align (%s)", sender, mode(aspf))
	}
	dk := fmt.Sprintf("DKIM's d=%s aligns (%s)", dkim, mode(adkim))
	switch {
	case dkim == "":
		dk = "no DKIM signature of batch's"
	case !rep.dkimAligned:
		dk = fmt.Sprintf("DKIM's d=%s does not align (%s)", dkim, mode(adkim))
	}
	res.Message = spf + ", " + dk
	switch {
	case rep.spfAligned && rep.dkimAligned:
		res.Verdict = OK
	case rep.dkimAligned:
		res.Verdict = Note
		res.Message += ": DMARC passes on DKIM alone, as it does for most senders through a provider"
	case rep.spfAligned:
		res.Verdict = Note
		domain := from
		if org := OrgDomain(from); org != from {
			domain = org + " or " + from
		}
		res.Message += ": DMARC passes on SPF alone, which forwarding breaks; sign with [dkim] domain = " + domain
	default:
		res.Verdict = Wrong
		res.Message += ": DMARC fails for every message; sign with [dkim] domain = " + from + ", or send with [smtp] sender at " + from
	}
	return res
}

// checkMX judges the MX records of the From domain (replies go there)
// or the sender domain (bounces do).
func checkMX(ctx context.Context, r *Resolver, domain string, from bool) (Result, error) {
	res := Result{Check: CheckMX, Domain: domain}
	what := "bounces"
	if from {
		what = "replies"
	}
	publish := zoneLine(domain, "MX", "10 mail."+domain+".")
	mxs, err := r.MX(ctx, domain)
	if errors.Is(err, ErrNoSuchDomain) {
		res.Verdict = Wrong
		res.Message = "the domain does not exist (NXDOMAIN): check its spelling, and that it is registered"
		return res, nil
	}
	if err != nil {
		return res, err
	}
	null := false
	var hosts []string
	for _, mx := range mxs {
		if mx.Host == "." {
			null = true
			continue
		}
		hosts = append(hosts, strings.TrimSuffix(mx.Host, "."))
	}
	switch {
	case len(mxs) == 0:
		res.Verdict = Missing
		res.Message = fmt.Sprintf("no MX record: %s can't be received; publish one for the server that takes your mail", what)
		res.Publish = publish
	case null && len(hosts) > 0:
		res.Verdict = Wrong
		res.Message = fmt.Sprintf("a null MX (RFC 7505) beside %s: a domain that refuses mail has no other MX; remove the null MX", strings.Join(hosts, ", "))
	case null:
		res.Verdict = Wrong
		res.Message = fmt.Sprintf("a null MX (0 .): the domain refuses mail (RFC 7505), so %s bounce, and receivers may refuse mail from it (550 5.7.27); replace it with an MX for the server that takes your mail", what)
		res.Publish = publish
	default:
		res.Verdict = OK
		res.Message = fmt.Sprintf("%s go to %s", what, strings.Join(hosts, ", "))
	}
	return res, nil
}

// zoneTXT returns a TXT record as a zone file's line, its value split
// into quoted strings of at most 255 octets (RFC 1035 §3.3.14), as
// render's DKIM record is.
func zoneTXT(name, value string) string {
	var b strings.Builder
	for first := true; first || value != ""; first = false {
		n := min(len(value), 255)
		chunk := value[:n]
		value = value[n:]
		b.WriteString(` "`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(chunk))
		b.WriteString(`"`)
	}
	return zoneLine(name, "TXT", b.String()[1:])
}

// zoneLine returns a record as a zone file's line.
func zoneLine(name, typ, data string) string {
	return strings.TrimSuffix(name, ".") + ". IN " + typ + " " + data
}

// maxQuoted is how much of a record a message shows.
const maxQuoted = 200

// quote returns a record found in DNS for a message: quoted, with any
// control character escaped (a record is the DNS server's, not batch's
// nor the user's), cut after maxQuoted octets.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}
