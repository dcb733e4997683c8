package dnscheck

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/batch-mailer/batch/internal/render"
)

// DKIMKey is a parsed DKIM key record (RFC 6376 §3.6.1, RFC 8463).
type DKIMKey struct {
	Type    string           // k=: "rsa" (the default) or "ed25519"
	Key     crypto.PublicKey // from p=: *rsa.PublicKey or ed25519.PublicKey; nil when revoked
	Revoked bool             // p= empty: the key is withdrawn
	Testing bool             // t=y
}

// ParseDKIMKey parses a DKIM key record: v=DKIM1 first if there, k=, h=
// (which must allow sha256), s= (which must allow email), t=, and p=,
// base64 of the DER SubjectPublicKeyInfo for RSA (PKCS #1's
// RSAPublicKey is taken too, as verifiers do) or of the 32 octets of an
// Ed25519 key.
func ParseDKIMKey(txt string) (*DKIMKey, error) {
	tags, err := parseTags(txt)
	if err != nil {
		return nil, err
	}
	k := &DKIMKey{Type: "rsa"}
	var p string
	hasP := false
	for i, t := range tags {
		if t.name == "p" {
			p, hasP = t.value, true
		} else if err := k.tag(i, t); err != nil {
			return nil, err
		}
	}
	if !hasP {
		return nil, fmt.Errorf("no p=: the record has no public key")
	}
	p = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1 // FWS may fold a base64 value
		}
		return r
	}, p)
	if p == "" {
		k.Revoked = true
		return k, nil
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, fmt.Errorf("p= is not base64: %w", err)
	}
	if k.Key, err = parseDKIMPublicKey(k.Type, der); err != nil {
		return nil, err
	}
	return k, nil
}

// tag reads the tag t, the i'th of the record, other than p=, into k.
func (k *DKIMKey) tag(i int, t tag) error {
	switch t.name {
	case "v":
		if i != 0 || t.value != "DKIM1" {
			return fmt.Errorf("v=%s: a key record starts with v=DKIM1, or has no v=", t.value)
		}
	case "k":
		k.Type = strings.ToLower(t.value)
		if k.Type != "rsa" && k.Type != "ed25519" {
			return fmt.Errorf("k=%s: DKIM keys are rsa or ed25519", t.value)
		}
	case "h":
		if !hasItem(t.value, "sha256") {
			return fmt.Errorf("h=%s: batch signs with sha256, which it doesn't allow", t.value)
		}
	case "s":
		if !hasItem(t.value, "email") && !hasItem(t.value, "*") {
			return fmt.Errorf("s=%s: the key is not for email", t.value)
		}
	case "t":
		k.Testing = hasItem(strings.ReplaceAll(t.value, ":", ","), "y")
	}
	return nil
}

// parseDKIMPublicKey parses der, p= decoded, as a key of type typ, k=.
func parseDKIMPublicKey(typ string, der []byte) (crypto.PublicKey, error) {
	if typ == "ed25519" {
		if len(der) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("p= has %d octets: an ed25519 key has %d", len(der), ed25519.PublicKeySize)
		}
		return ed25519.PublicKey(der), nil
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		pub, err = x509.ParsePKCS1PublicKey(der)
	}
	if err != nil {
		return nil, fmt.Errorf("p= is not an RSA public key (a SubjectPublicKeyInfo): %w", err)
	}
	if _, ok := pub.(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("p= is a %T key, not the RSA key k=rsa says", pub)
	}
	return pub, nil
}

// hasItem reports whether a colon-separated list has item.
func hasItem(list, item string) bool {
	for _, v := range strings.Split(list, ":") {
		if strings.EqualFold(strings.TrimSpace(v), item) {
			return true
		}
	}
	return false
}

// Matches reports whether the record publishes pub.
func (k *DKIMKey) Matches(pub crypto.PublicKey) bool {
	if k.Key == nil || pub == nil {
		return false
	}
	eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(k.Key)
}

// checkDKIM judges the key record of d, the campaign's signing key.
func checkDKIM(ctx context.Context, r *Resolver, d *render.DKIM) (Result, error) {
	res := Result{Check: CheckDKIM, Domain: strings.TrimSuffix(d.RecordName(), ".")}
	name := d.RecordName()
	publish, err := d.ZoneRecord()
	if err != nil {
		return res, fmt.Errorf("dkim: %w", err)
	}
	txts, err := r.TXT(ctx, name)
	if err != nil {
		return res, err
	}
	res.Publish = publish
	switch len(txts) {
	case 0:
		res.Verdict = Missing
		res.Message = "no key: receivers can't verify the signature, and count the mail unsigned"
		return res, nil
	case 1:
	default:
		res.Verdict = Wrong
		res.Message = fmt.Sprintf("%d TXT records: publish one, the key's", len(txts))
		return res, nil
	}
	k, err := ParseDKIMKey(txts[0])
	switch {
	case err != nil:
		res.Verdict = Wrong
		res.Message = fmt.Sprintf("%v: receivers can't verify the signature", err)
	case k.Revoked:
		res.Verdict = Wrong
		res.Message = "an empty p=: the key is revoked, and every signature with it fails"
	case !k.Matches(d.Signer.Public()):
		res.Verdict = Wrong
		res.Message = "another key than key_file's: every signature fails; publish the key of key_file, or sign with the key published"
	case k.Testing:
		res.Verdict = Note
		res.Message = fmt.Sprintf("the key of key_file, k=%s, with t=y (testing): receivers may treat the mail as unsigned; drop t=y once it works", k.Type)
		res.Publish = ""
	default:
		res.Verdict = OK
		res.Message = fmt.Sprintf("the key of key_file, k=%s", k.Type)
		res.Publish = ""
	}
	return res, nil
}
