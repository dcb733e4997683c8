package campaign

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"github.com/batch-mailer/batch/internal/render"
)

// DKIM is the checked [dkim] table: who signs every message, and with
// which key.
type DKIM struct {
	Domain   string        // d=: the From domain or a parent of it
	Selector string        // s=: the key's name in DNS
	Signer   crypto.Signer // RSA of 2048 to 4096 bits, or Ed25519
}

// ZoneRecord is the DNS TXT record that publishes the key, as a line of a
// zone file.
func (d *DKIM) ZoneRecord() (string, error) { return d.signer().ZoneRecord() }

// signer is render's signer of the messages; nil without a [dkim] table.
func (d *DKIM) signer() *render.DKIM {
	if d == nil {
		return nil
	}
	return &render.DKIM{Domain: d.Domain, Selector: d.Selector, Signer: d.Signer}
}

// dkimFile is the [dkim] table as written.
type dkimFile struct {
	Domain   string `toml:"domain"`
	Selector string `toml:"selector"`
	KeyFile  string `toml:"key_file"`
}

// Key sizes: RFC 8301 §3.2 has verifiers accept RSA keys of 1024 to 4096
// bits; 1024 is no longer enough, and the large mailbox providers ask for
// 2048.
const (
	minRSABits = 2048
	maxRSABits = 4096
)

// label is a DNS label of letters, digits and hyphens (RFC 6376 §3.1:
// a selector is sub-domain *("." sub-domain)).
var label = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// isDNSName reports whether s is one or more labels separated by dots.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !label.MatchString(l) {
			return false
		}
	}
	return true
}

// loadDKIM checks the [dkim] table and reads its key, once for the whole
// campaign. It returns nil if anything is wrong (bad has been told), so
// that check goes on without signing.
func loadDKIM(f *dkimFile, from string, rel func(string) string, bad func(key, format string, args ...any)) *DKIM {
	ok := true
	problem := func(key, format string, args ...any) {
		ok = false
		bad(key, format, args...)
	}
	d := &DKIM{
		Domain:   strings.TrimSuffix(strings.ToLower(strings.TrimSpace(f.Domain)), "."),
		Selector: strings.TrimSpace(f.Selector),
	}
	fromDomain := strings.ToLower(from[strings.LastIndexByte(from, '@')+1:])
	switch {
	case d.Domain == "":
		example := fromDomain
		if example == "" {
			example = "example.org"
		}
		problem("dkim", `domain is required: the domain that signs, the From domain or a parent of it, e.g. domain = %q`, example)
	case !isDNSName(d.Domain):
		problem("dkim.domain", "%q is not a domain name: letters, digits and hyphens in labels separated by dots (an internationalized domain in its xn-- form)", f.Domain)
	case !strings.Contains(d.Domain, "."):
		problem("dkim.domain", "%s is a top-level domain: sign with the From domain or a parent of it", d.Domain)
	case from != "" && fromDomain != d.Domain && !strings.HasSuffix(fromDomain, "."+d.Domain):
		// DMARC counts a signature only for a domain aligned with From.
		problem("dkim.domain", "%s does not align with the From domain %s: use the From domain or a parent of it", d.Domain, fromDomain)
	}
	switch {
	case d.Selector == "":
		problem("dkim", `selector is required: it names the key in DNS, selector._domainkey.domain, e.g. selector = "batch2026"`)
	case !isDNSName(d.Selector):
		problem("dkim.selector", `%q: a selector is DNS labels of letters, digits and hyphens separated by dots, e.g. selector = "batch2026"`, f.Selector)
	}
	if strings.TrimSpace(f.KeyFile) == "" {
		problem("dkim", `key_file is required: the private key in PEM, e.g. key_file = "../keys/dkim.pem" (make one with: openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim.pem)`)
	} else {
		path := rel(f.KeyFile)
		key, err := readKey(path)
		if err != nil {
			problem("dkim.key_file", "%v", err)
		}
		d.Signer = key
	}
	if !ok {
		return nil
	}
	return d
}

// readKey reads a private key from a PEM file: PKCS #1 ("RSA PRIVATE
// KEY") or PKCS #8 ("PRIVATE KEY"), RSA of 2048 to 4096 bits or Ed25519.
func readKey(path string) (crypto.Signer, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a key file", path)
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: no such file", path)
	case err != nil:
		return nil, err
	}
	block, err := privateBlock(data, path)
	if err != nil {
		return nil, err
	}
	key, err := parseKey(block)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// makeKey is how to make a key batch signs with.
const makeKey = "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim.pem"

// privateBlock finds the private key's PEM block in the key file at path,
// not encrypted.
func privateBlock(data []byte, path string) (*pem.Block, error) {
	public := false
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			if b.Headers["Proc-Type"] != "" || b.Type == "ENCRYPTED PRIVATE KEY" {
				return nil, fmt.Errorf("%s: the key is encrypted, and batch can't ask for its passphrase: keep a decrypted copy that only you can read (openssl pkey -in %s -out dkim.pem)", path, path)
			}
			return b, nil
		}
		public = public || strings.HasSuffix(b.Type, "PUBLIC KEY")
	}
	if public {
		return nil, fmt.Errorf("%s: holds a public key, not the private key that signs: name the private key here, and publish the public one in DNS (batch check prints the record)", path)
	}
	return nil, fmt.Errorf("%s: no PEM private key in it: want a file that starts -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY----- (make one with: %s)", path, makeKey)
}

// parseKey reads the key of a PEM block, and checks that it can sign DKIM.
func parseKey(block *pem.Block) (crypto.Signer, error) {
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		return nil, fmt.Errorf("an ECDSA key can't sign DKIM: use RSA (2048 bits or more) or Ed25519 (%s)", makeKey)
	case "OPENSSH PRIVATE KEY":
		return nil, fmt.Errorf("an OpenSSH key: DKIM needs a PEM key (%s)", makeKey)
	default:
		return nil, fmt.Errorf("%q: an unsupported kind of key: want RSA (2048 bits or more) or Ed25519 in PEM (%s)", block.Type, makeKey)
	}
	if err != nil {
		return nil, fmt.Errorf("the key can't be read: %v", err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < minRSABits {
			return nil, fmt.Errorf("a %d-bit RSA key is too short: use %d bits or more (%s)", bits, minRSABits, makeKey)
		} else if bits > maxRSABits {
			return nil, fmt.Errorf("a %d-bit RSA key is longer than verifiers must accept (%d bits, RFC 8301): use %d", bits, maxRSABits, minRSABits)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return nil, fmt.Errorf("an ECDSA key can't sign DKIM: use RSA (2048 bits or more) or Ed25519 (%s)", makeKey)
	case *ecdh.PrivateKey:
		return nil, fmt.Errorf("an X25519 key is for key agreement, not signing: use RSA (2048 bits or more) or Ed25519 (%s)", makeKey)
	}
	return nil, fmt.Errorf("a %T key can't sign DKIM: use RSA (2048 bits or more) or Ed25519 (%s)", key, makeKey)
}
