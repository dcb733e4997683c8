package campaign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/batch-mailer/batch/internal/deliver"
)

// pemOf encodes a key in PEM: "pkcs1", "pkcs8", "sec1" or "public".
func pemOf(t *testing.T, key any, form string) string {
	t.Helper()
	var der []byte
	var typ string
	var err error
	switch form {
	case "pkcs1":
		der, typ = x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey)), "RSA PRIVATE KEY"
	case "pkcs8":
		der, err = x509.MarshalPKCS8PrivateKey(key)
		typ = "PRIVATE KEY"
	case "sec1":
		der, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
		typ = "EC PRIVATE KEY"
	case "public":
		der, err = x509.MarshalPKIXPublicKey(key.(crypto.Signer).Public())
		typ = "PUBLIC KEY"
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

var (
	keysOnce          sync.Once
	rsa2048, rsa1024  *rsa.PrivateKey
	edKey             ed25519.PrivateKey
	ecKey             *ecdsa.PrivateKey
	x25519Key         *ecdh.PrivateKey
	errGeneratingKeys error
)

// testKeys makes the keys once: RSA keys take a while.
func testKeys(t *testing.T) {
	t.Helper()
	keysOnce.Do(func() {
		var errs [5]error
		rsa2048, errs[0] = rsa.GenerateKey(rand.Reader, 2048)
		rsa1024, errs[1] = rsa.GenerateKey(rand.Reader, 1024)
		_, edKey, errs[2] = ed25519.GenerateKey(rand.Reader)
		ecKey, errs[3] = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		x25519Key, errs[4] = ecdh.X25519().GenerateKey(rand.Reader)
		for _, err := range errs {
			if err != nil {
				errGeneratingKeys = err
			}
		}
	})
	if errGeneratingKeys != nil {
		t.Fatal(errGeneratingKeys)
	}
}

// dkimTable is a [dkim] table that starts on line 6, after minimal:
// domain on 7, selector on 8, key_file on 9.
func dkimTable(domain, selector, keyFile string) string {
	return fmt.Sprintf("[dkim]\ndomain = %q\nselector = %q\nkey_file = %q\n", domain, selector, keyFile)
}

func TestLoadDKIM(t *testing.T) {
	testKeys(t)
	tests := []struct {
		name, from, domain, key string
		want                    any // the key's type
	}{
		{"rsa pkcs1", "", "example.org", pemOf(t, rsa2048, "pkcs1"), rsa2048},
		{"rsa pkcs8", "", "example.org", pemOf(t, rsa2048, "pkcs8"), rsa2048},
		{"ed25519 pkcs8", "", "example.org", pemOf(t, edKey, "pkcs8"), edKey},
		{"parent of the From domain", "news@news.example.org", "example.org", pemOf(t, edKey, "pkcs8"), edKey},
		{"case and final dot", "", "Example.ORG.", pemOf(t, edKey, "pkcs8"), edKey},
		{"other blocks first", "", "example.org", "junk\n" + pemOf(t, rsa2048, "public") + pemOf(t, edKey, "pkcs8"), edKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := minimal
			if tt.from != "" {
				text = strings.Replace(text, "news@example.org", tt.from, 1)
			}
			c, _, err := load(t, text+dkimTable(tt.domain, "batch-2026.nov", "keys/dkim.pem"), map[string]string{"keys/dkim.pem": tt.key})
			if err != nil {
				t.Fatal(err)
			}
			if c.DKIM == nil {
				t.Fatal("no DKIM")
			}
			if c.DKIM.Domain != "example.org" || c.DKIM.Selector != "batch-2026.nov" {
				t.Errorf("d=%s s=%s", c.DKIM.Domain, c.DKIM.Selector)
			}
			if fmt.Sprintf("%T", c.DKIM.Signer) != fmt.Sprintf("%T", tt.want) {
				t.Errorf("key %T, want %T", c.DKIM.Signer, tt.want)
			}
			if !c.DKIM.Signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.want.(crypto.Signer).Public()) {
				t.Error("not the key in the file")
			}
		})
	}
}

func TestLoadDKIMProblems(t *testing.T) {
	testKeys(t)
	ed := pemOf(t, edKey, "pkcs8")
	encrypted := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00112233445566778899AABBCCDDEEFF"},
		Bytes:   []byte("not really")}))
	const kf = ":9: dkim.key_file: "
	tests := []struct {
		name, table, key string
		at, says         string // the problem: where (after "c.toml"), and what it says
	}{
		{"misaligned", dkimTable("example.com", "s1", "k.pem"), ed,
			":7: dkim.domain: ", "example.com does not align with the From domain example.org: use the From domain or a parent of it"},
		{"a subdomain of From's", dkimTable("mail.example.org", "s1", "k.pem"), ed,
			":7: dkim.domain: ", "mail.example.org does not align with the From domain example.org"},
		{"look-alike", dkimTable("ample.org", "s1", "k.pem"), ed,
			":7: dkim.domain: ", "ample.org does not align"},
		{"top-level domain", dkimTable("org", "s1", "k.pem"), ed,
			":7: dkim.domain: ", "org is a top-level domain"},
		{"not a domain", dkimTable("exa mple.org", "s1", "k.pem"), ed,
			":7: dkim.domain: ", `"exa mple.org" is not a domain name`},
		{"selector with a space", dkimTable("example.org", "my key", "k.pem"), ed,
			":8: dkim.selector: ", `"my key": a selector is DNS labels`},
		{"selector with an underscore", dkimTable("example.org", "_s", "k.pem"), ed,
			":8: dkim.selector: ", `"_s"`},
		{"selector with an empty label", dkimTable("example.org", "a..b", "k.pem"), ed,
			":8: dkim.selector: ", `"a..b"`},
		{"unknown key", dkimTable("example.org", "s1", "k.pem") + "key = \"x\"\n", ed,
			":10: dkim.key: ", "unknown key"},
		{"no key file", dkimTable("example.org", "s1", "nothere.pem"), "", kf, "nothere.pem: no such file"},
		{"a directory", dkimTable("example.org", "s1", "."), "", kf, "is a directory, not a key file"},
		{"RSA 1024", dkimTable("example.org", "s1", "k.pem"), pemOf(t, rsa1024, "pkcs1"),
			kf, "k.pem: a 1024-bit RSA key is too short: use 2048 bits or more"},
		{"RSA 1024 PKCS #8", dkimTable("example.org", "s1", "k.pem"), pemOf(t, rsa1024, "pkcs8"),
			kf, "k.pem: a 1024-bit RSA key is too short"},
		{"ECDSA PKCS #8", dkimTable("example.org", "s1", "k.pem"), pemOf(t, ecKey, "pkcs8"),
			kf, "an ECDSA key can't sign DKIM: use RSA"},
		{"ECDSA SEC 1", dkimTable("example.org", "s1", "k.pem"), pemOf(t, ecKey, "sec1"),
			kf, "an ECDSA key can't sign DKIM"},
		{"X25519", dkimTable("example.org", "s1", "k.pem"), pemOf(t, x25519Key, "pkcs8"),
			kf, "an X25519 key is for key agreement"},
		{"public key", dkimTable("example.org", "s1", "k.pem"), pemOf(t, edKey, "public"),
			kf, "holds a public key, not the private key"},
		{"encrypted", dkimTable("example.org", "s1", "k.pem"), encrypted, kf, "the key is encrypted"},
		{"not PEM", dkimTable("example.org", "s1", "k.pem"), "hello\n", kf, "no PEM private key in it"},
		{"OpenSSH", dkimTable("example.org", "s1", "k.pem"), "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
			kf, "an OpenSSH key"},
		{"corrupt", dkimTable("example.org", "s1", "k.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
			kf, "the key can't be read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := map[string]string{}
			if tt.key != "" {
				extra["k.pem"] = tt.key
			}
			c, path, err := load(t, minimal+tt.table, extra)
			p := problemsOf(t, err)
			if len(p) != 1 || !strings.HasPrefix(p[0].Error(), path+tt.at) || !strings.Contains(p[0].Error(), tt.says) {
				t.Errorf("problems:\n%v\nwant one: %s%s…%s", err, path, tt.at, tt.says)
			}
			if c == nil {
				t.Fatal("no campaign to check further")
			}
			if c.DKIM != nil && tt.name != "unknown key" {
				t.Error("a campaign with a broken [dkim] still signs")
			}
		})
	}
	t.Run("missing keys", func(t *testing.T) {
		_, path, err := load(t, minimal+"[dkim]\n", nil)
		p := problemsOf(t, err)
		want := []string{":6: dkim: domain is required", ":6: dkim: selector is required", ":6: dkim: key_file is required"}
		if len(p) != len(want) {
			t.Fatalf("problems:\n%v\nwant %d", err, len(want))
		}
		for i, w := range want {
			if !strings.HasPrefix(p[i].Error(), path+w) {
				t.Errorf("problem %q, want %s%s…", p[i], path, w)
			}
		}
	})
}

// TestDKIMDryRun writes a campaign's messages to a directory, as send
// --dry-run does, and verifies each with go-msgauth. The key file is gone
// before the run: Load read it, once.
func TestDKIMDryRun(t *testing.T) {
	testKeys(t)
	for _, kind := range []string{"rsa", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			var key crypto.Signer = edKey
			if kind == "rsa" {
				key = rsa2048
			}
			more := "reply_to = \"Team <team@example.org>\"\n" + // line 6
				"[unsubscribe]\nurl = \"https://example.org/u?e={{.email}}\"\n" +
				dkimTable("example.org", "nov2026", "dkim.pem")
			c := newCampaign(t, goodList, goodBody, more, map[string]string{"dkim.pem": pemOf(t, key, "pkcs8")})
			if err := os.Remove(filepath.Join(filepath.Dir(c.Path), "dkim.pem")); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Check(context.Background(), Options{Now: now}); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "out")
			sum, err := c.Send(context.Background(), func(*Summary) (deliver.Sender, error) { return deliver.NewDir(dir), nil }, Options{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
			if err != nil || len(files) != sum.Messages || len(files) != 4 {
				t.Fatalf("%d files, %v; want 4", len(files), err)
			}
			var record string
			switch pub := key.Public().(type) {
			case ed25519.PublicKey:
				record = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
			default:
				der, _ := x509.MarshalPKIXPublicKey(pub)
				record = "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
			}
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				vs, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{
					LookupTXT: func(name string) ([]string, error) {
						if name != "nov2026._domainkey.example.org" {
							return nil, fmt.Errorf("no record at %s", name)
						}
						return []string{record}, nil
					},
				})
				if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "example.org" {
					t.Fatalf("%s: %v %+v", filepath.Base(f), err, vs)
				}
				keys := strings.ToLower(strings.Join(vs[0].HeaderKeys, ":"))
				for _, want := range []string{"from", "to", "subject", "reply-to", "list-unsubscribe", "list-unsubscribe-post"} {
					if !strings.Contains(":"+keys+":", ":"+want+":") {
						t.Errorf("%s: h=%s lacks %s", filepath.Base(f), keys, want)
					}
				}
			}
		})
	}
}
