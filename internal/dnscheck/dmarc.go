package dnscheck

import (
	"context"
	"fmt"
	"strings"
)

// DMARC is a parsed DMARC record (RFC 7489 §6.3).
type DMARC struct {
	Policy    string   // p=: "none", "quarantine" or "reject"
	Subdomain string   // sp=, "" when not given (then p= holds for subdomains)
	RUA       []string // rua=: where aggregate reports go (mailto: URIs)
	ADKIM     byte     // adkim=: 'r' (relaxed, the default) or 's' (strict)
	ASPF      byte     // aspf=: likewise
	Percent   int      // pct=, 100 when not given
}

// isDMARC reports whether a TXT record is a DMARC record: v=DMARC1 its
// first tag (RFC 7489 §6.6.3).
func isDMARC(txt string) bool {
	v, _, _ := strings.Cut(txt, ";")
	name, value, ok := strings.Cut(v, "=")
	return ok && strings.TrimSpace(name) == "v" && strings.TrimSpace(value) == "DMARC1"
}

// ParseDMARC parses a DMARC record: its tags, p= required, the values
// of p=, sp=, adkim=, aspf=, pct= and rua= checked.
func ParseDMARC(txt string) (*DMARC, error) {
	if !isDMARC(txt) {
		return nil, fmt.Errorf("does not start with v=DMARC1")
	}
	tags, err := parseTags(txt)
	if err != nil {
		return nil, err
	}
	d := &DMARC{ADKIM: 'r', ASPF: 'r', Percent: 100}
	for _, t := range tags[1:] {
		switch t.name {
		case "p":
			d.Policy, err = dmarcPolicy(t.name, t.value)
		case "sp":
			d.Subdomain, err = dmarcPolicy(t.name, t.value)
		case "adkim":
			d.ADKIM, err = dmarcMode(t.name, t.value)
		case "aspf":
			d.ASPF, err = dmarcMode(t.name, t.value)
		case "pct":
			d.Percent, err = dmarcPercent(t.value)
		case "rua":
			d.RUA, err = dmarcRUA(t.value)
		}
		if err != nil {
			return nil, err
		}
	}
	if d.Policy == "" {
		return nil, fmt.Errorf("no p=: the policy, none, quarantine or reject")
	}
	return d, nil
}

// dmarcPolicy parses the value v of p= or sp=, tag.
func dmarcPolicy(tag, v string) (string, error) {
	switch v = strings.ToLower(v); v {
	case "none", "quarantine", "reject":
		return v, nil
	}
	return "", fmt.Errorf("%s=%s: the policy is none, quarantine or reject", tag, v)
}

// dmarcMode parses the value v of adkim= or aspf=, tag.
func dmarcMode(tag, v string) (byte, error) {
	switch v = strings.ToLower(v); v {
	case "r", "s":
		return v[0], nil
	}
	return 0, fmt.Errorf("%s=%s: r (relaxed) or s (strict)", tag, v)
}

// dmarcPercent parses the value v of pct=.
func dmarcPercent(v string) (int, error) {
	n, ok := 0, isDigits(v) && len(v) <= 3
	if ok {
		fmt.Sscan(v, &n)
	}
	if !ok || n > 100 {
		return n, fmt.Errorf("pct=%s: a percentage, 0 to 100", v)
	}
	return n, nil
}

// dmarcRUA parses the value v of rua=: mailto: addresses.
func dmarcRUA(v string) ([]string, error) {
	var rua []string
	for _, u := range strings.Split(v, ",") {
		u = strings.TrimSpace(u)
		if len(u) < 7 || !strings.EqualFold(u[:7], "mailto:") {
			return rua, fmt.Errorf("rua=%s: reports go to mailto: addresses", v)
		}
		rua = append(rua, u)
	}
	return rua, nil
}

// tag is one tag=value of a tag list (RFC 6376 §3.2, RFC 7489 §6.4).
type tag struct{ name, value string }

// parseTags splits a tag list: tags separated by ';', white space
// around names and values dropped, a final ';' allowed, no tag twice.
func parseTags(txt string) ([]tag, error) {
	var tags []tag
	seen := map[string]bool{}
	for _, part := range strings.Split(txt, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("%q is not tag=value", strings.TrimSpace(part))
		}
		if seen[name] {
			return nil, fmt.Errorf("%s= more than once", name)
		}
		seen[name] = true
		tags = append(tags, tag{name, strings.TrimSpace(value)})
	}
	return tags, nil
}

// dmarcRecords returns the DMARC records at _dmarc.domain.
func dmarcRecords(ctx context.Context, r *Resolver, domain string) ([]string, error) {
	txts, err := r.TXT(ctx, "_dmarc."+domain)
	if err != nil {
		return nil, err
	}
	var found []string
	for _, t := range txts {
		if isDMARC(t) {
			found = append(found, t)
		}
	}
	return found, nil
}

// checkDMARC judges the DMARC record for the From domain: at
// _dmarc.FROM, else at the organizational domain's (see OrgDomain), whose
// sp= (else p=) holds for its subdomains. It returns the record, nil when
// there is none to go by.
func checkDMARC(ctx context.Context, r *Resolver, from string) (Result, *DMARC, error) {
	res := Result{Check: CheckDMARC, Domain: from}
	publish := zoneTXT("_dmarc."+from, "v=DMARC1; p=none; rua=mailto:dmarc-reports@"+from)
	at := from
	found, err := dmarcRecords(ctx, r, from)
	if err != nil {
		return res, nil, err
	}
	org := OrgDomain(from)
	if len(found) == 0 && org != from {
		at = org
		if found, err = dmarcRecords(ctx, r, org); err != nil {
			return res, nil, err
		}
	}
	name := "_dmarc." + at
	switch {
	case len(found) == 0:
		res.Verdict = Missing
		where := "_dmarc." + from
		if org != from {
			where += " nor _dmarc." + org
		}
		res.Message = fmt.Sprintf("no DMARC record at %s: receivers that require one (Gmail, Yahoo) reject or junk bulk mail; start with p=none and reports to an address of yours", where)
		res.Publish = publish
		return res, nil, nil
	case len(found) > 1:
		res.Verdict = Wrong
		res.Message = fmt.Sprintf("%s has %d DMARC records: receivers use none unless there is exactly one", name, len(found))
		res.Publish = publish
		return res, nil, nil
	}
	d, err := ParseDMARC(found[0])
	if err != nil {
		res.Verdict = Wrong
		res.Message = fmt.Sprintf("%s %s: %v: receivers ignore it", name, quote(found[0]), err)
		res.Publish = publish
		return res, nil, nil
	}
	policy := d.Policy
	if at != from && d.Subdomain != "" {
		policy = d.Subdomain
	}
	res.Verdict = OK
	res.Message = "p=" + d.Policy
	if at != from {
		res.Message = fmt.Sprintf("none of its own: %s's (the organizational domain's) holds, policy %s", org, policy)
	}
	var notes []string
	if policy == "none" {
		res.Verdict = Note
		notes = append(notes, "policy none only watches: mail that fails DMARC is still delivered; once the reports show your mail passing, move to p=quarantine, then p=reject")
	}
	if len(d.RUA) == 0 {
		res.Verdict = Note
		notes = append(notes, "no rua=: nobody gets the aggregate reports that show who sends as you; add rua=mailto:dmarc-reports@"+org)
	} else {
		res.Message += ", reports to " + strings.Join(d.RUA, ", ")
	}
	if len(notes) > 0 {
		res.Message += ": " + strings.Join(notes, "; ")
	}
	return res, d, nil
}
