// Package dnscheck is batch's DNS preflight: it looks up the records
// receivers judge a campaign's mail by and says, for each, whether it is
// ok, missing, wrong or worth a note, and what record to publish.
//
//   - SPF (RFC 7208) of the MAIL FROM domain ([smtp] sender's, else the
//     From domain's), which SPF authenticates: exactly one v=spf1 record,
//     its mechanisms, qualifiers and modifiers by the RFC's grammar, at
//     most 10 DNS lookups with the records it includes, ending in -all or
//     ~all (+all is wrong, ?all or no all a note).
//   - DKIM (RFC 6376, RFC 8463) at selector._domainkey.domain: a key
//     record that parses and publishes the campaign's [dkim] key (the
//     SubjectPublicKeyInfo of an RSA key, the 32 octets of an Ed25519
//     one); the record to publish is render's.
//   - DMARC (RFC 7489) at _dmarc.FROM, else at the From domain's
//     organizational domain, found with the Public Suffix List
//     (golang.org/x/net/publicsuffix): for news.example.org, its parent
//     example.org. p=none and no rua= are notes.
//   - Alignment: SPF's domain and DKIM's d= against the From domain,
//     relaxed (the same organizational domain) unless DMARC's aspf= or
//     adkim= is s.
//   - MX of the From domain, where replies go, and of the sender domain,
//     where bounces do: none, or a null MX (RFC 7505), is said.
//
// [Bulk] lists which of Gmail's and Yahoo's 2024 requirements for bulk
// senders are not met, and [Report.Write] prints a report as the command
// does.
//
// Queries go to the servers of /etc/resolv.conf or to a given one
// ([NewResolver]), over UDP and, for a truncated answer, TCP (github.com/
// miekg/dns). Each query has a timeout, and no answer is read past
// 4,096 octets over UDP or DNS's 65,535 over TCP. A TXT record's strings
// are joined with nothing between (RFC 7208 §3.3). What a DNS server
// answers is shown quoted, its control characters escaped.
package dnscheck
