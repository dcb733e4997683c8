package dnscheck

import (
	"bufio"
	"io"
)

// Write prints the report as batch prints it, a line a result, the
// verdict and the check in columns, and under a result with a record
// to publish, that record:
//
//	ok       SPF        example.org: "v=spf1 include:_spf.example.net ~all"
//	missing  DMARC      example.org: no DMARC record at _dmarc.example.org: …
//	         publish    _dmarc.example.org. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.org"
func (r *Report) Write(w io.Writer) error {
	b := bufio.NewWriter(w)
	for _, res := range r.Results {
		row(b, res.Verdict.String(), res.Check, res.Domain+": "+res.Message)
		if res.Publish != "" {
			row(b, "", "publish", res.Publish)
		}
	}
	return b.Flush()
}

// WriteBulk prints the bulk-sender requirements not met, a line each,
// as Write prints a result; nothing when all are met.
func WriteBulk(w io.Writer, unmet []Requirement) error {
	b := bufio.NewWriter(w)
	for _, u := range unmet {
		row(b, "unmet", u.Name, u.Why)
	}
	return b.Flush()
}

// row writes one line: two columns of 7 and 11, two spaces after each.
func row(b *bufio.Writer, verdict, check, text string) {
	pad := func(s string, n int) {
		b.WriteString(s)
		for i := len(s); i < n+2; i++ {
			b.WriteByte(' ')
		}
	}
	pad(verdict, 7)
	pad(check, 11)
	b.WriteString(text)
	b.WriteByte('\n')
}
