package dnscheck

// BulkThreshold is the number of messages a day past which Gmail and
// Yahoo hold a sender to their bulk-sender requirements (February 2024).
const BulkThreshold = 5000

// Requirement is a bulk-sender requirement that is not met.
type Requirement struct {
	Name string // "SPF", "DKIM", "DMARC", "alignment", "unsubscribe" (one-click)
	Why  string // what is wrong, and what to do
}

// Bulk lists the requirements of Gmail and Yahoo for bulk senders
// (over BulkThreshold messages a day) that the report and the campaign
// don't meet: SPF that passes for the MAIL FROM domain (a Note passes),
// a DKIM key that matches the campaign's (a Note, such as testing mode
// or no [dkim] key to check, doesn't count), a DMARC record (p=none
// will do), the From domain aligned with SPF's or DKIM's, and one-click
// unsubscribe (RFC 8058), which oneClick tells. It checks nothing
// else they ask for (reverse DNS of the sending addresses, TLS, a spam
// rate below 0.3%): those are the relay's.
func Bulk(rep *Report, oneClick bool) []Requirement {
	var unmet []Requirement
	if res, ok := rep.Result(CheckSPF); !ok || res.Verdict > Note {
		unmet = append(unmet, Requirement{CheckSPF, "SPF must pass for " + res.Domain + ": " + res.Message})
	}
	if res, ok := rep.Result(CheckDKIM); !ok || res.Verdict != OK {
		unmet = append(unmet, Requirement{CheckDKIM, "every message must carry a DKIM signature that verifies: " + res.Message})
	}
	if res, ok := rep.Result(CheckDMARC); !ok || res.Verdict > Note {
		unmet = append(unmet, Requirement{CheckDMARC, "the From domain must have a DMARC record, p=none at least: " + res.Message})
	}
	spf, _ := rep.Result(CheckSPF)
	dkim, _ := rep.Result(CheckDKIM)
	spfPasses := rep.spfAligned && spf.Verdict <= Note
	dkimPasses := rep.dkimAligned && dkim.Verdict == OK
	if !spfPasses && !dkimPasses {
		why := "the From domain must align with SPF's or DKIM's domain, and that check pass: "
		if rep.spfAligned || rep.dkimAligned {
			why += "the domains align, but the checks that would pass with them fail: see SPF and DKIM"
		} else {
			res, _ := rep.Result(CheckAlignment)
			why += res.Message
		}
		unmet = append(unmet, Requirement{CheckAlignment, why})
	}
	if !oneClick {
		unmet = append(unmet, Requirement{"unsubscribe", "every message needs one-click unsubscribe, List-Unsubscribe with an https URL and List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058): set [unsubscribe] url in the campaign file"})
	}
	return unmet
}
