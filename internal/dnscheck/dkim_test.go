package dnscheck

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"
)

func TestParseDKIMKey(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pkcs1 := x509.MarshalPKCS1PublicKey(&priv.PublicKey)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	b64 := base64.StdEncoding.EncodeToString

	for _, txt := range []string{
		"v=DKIM1; k=rsa; p=" + b64(spki),
		"p=" + b64(spki),
		"v=DKIM1; h=sha1:sha256; s=email; p=" + b64(pkcs1) + ";",
	} {
		k, err := ParseDKIMKey(txt)
		if err != nil {
			t.Fatalf("%.40q: %v", txt, err)
		}
		if !k.Matches(&priv.PublicKey) || k.Matches(edPub) {
			t.Errorf("%.40q: matches the wrong key", txt)
		}
	}
	k, err := ParseDKIMKey("v=DKIM1; k=ed25519; p=" + b64(edPub))
	if err != nil || !k.Matches(edPub) || k.Matches(&priv.PublicKey) {
		t.Errorf("ed25519: %v", err)
	}

	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSPKI, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	for txt, part := range map[string]string{
		"v=DKIM1; k=dsa; p=AAAA":             "k=dsa",
		"v=DKIM1; h=sha1; p=" + b64(spki):    "h=sha1",
		"v=DKIM1; s=tlsrpt; p=" + b64(spki):  "not for email",
		"v=DKIM1; k=rsa":                     "no p=",
		"v=DKIM1; k=ed25519; p=" + b64(spki): "an ed25519 key has 32",
		"v=DKIM1; k=rsa; p=" + b64(ecSPKI):   "not the RSA key k=rsa says",
		"k=rsa; v=DKIM1; p=" + b64(spki):     "starts with v=DKIM1",
		"v=DKIM1; p=AAAA; p=BBBB":            "p= more than once",
		"v=DKIM1; junk; p=AAAA":              "not tag=value",
	} {
		_, err := ParseDKIMKey(txt)
		if err == nil || !strings.Contains(err.Error(), part) {
			t.Errorf("%.50q: error %v, want one saying %q", txt, err, part)
		}
	}
}
