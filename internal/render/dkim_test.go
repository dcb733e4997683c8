package render

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/batch-mailer/batch/templates"
)

// testKeys are an RSA-2048 and an Ed25519 key, made once for the tests.
var testKeys = func() map[string]crypto.Signer {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	_, ek, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return map[string]crypto.Signer{"rsa": rk, "ed25519": ek}
}()

// testRecord is the DNS record of key, written here from the RFCs rather
// than by DKIM.Record: RSA's p= is the DER SubjectPublicKeyInfo (RFC 6376
// §3.6.1), Ed25519's the bare public key (RFC 8463 §4).
func testRecord(t testing.TB, key crypto.Signer) string {
	t.Helper()
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	}
	t.Fatalf("no record for %T", key)
	return ""
}

// dkimOptions are the options of the fixture in dir, signing with key as
// sel2026._domainkey.example.org.
func dkimOptions(dir string, key crypto.Signer, attachments ...string) Options {
	return Options{
		Campaign:     "test-campaign",
		From:         mail.Address{Name: "Python爱好者", Address: "news@example.org"},
		ReplyTo:      &mail.Address{Name: "Team, Support", Address: "team@example.org"},
		TemplateName: filepath.Join(dir, "template.md"),
		ImageDir:     dir,
		LayoutName:   "built-in layout",
		Layout:       templates.DefaultLayout,
		Attachments:  attachments,
		Files:        Files{Dir: dir},
		Date:         time.Unix(1764000000, 0).UTC(),
		DKIM:         &DKIM{Domain: "example.org", Selector: "sel2026", Signer: key},
	}
}

// dkimRenderer is the fixture's renderer, signing with key.
func (f *fixture) dkimRenderer(key crypto.Signer, attachments ...string) *Renderer {
	f.t.Helper()
	r, err := New(dkimOptions(f.dir, key, attachments...))
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// verify checks data's one signature with go-msgauth, the key's record
// published at sel2026._domainkey.example.org, and returns the result.
func verify(t testing.TB, data []byte, record string) (*dkim.Verification, error) {
	t.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if name != "sel2026._domainkey.example.org" {
				return nil, fmt.Errorf("no TXT record at %s", name)
			}
			// One record, its strings joined as net.LookupTXT does.
			return []string{record}, nil
		},
	})
	if err != nil {
		return nil, err
	}
	if len(vs) != 1 {
		t.Fatalf("%d signatures, want 1", len(vs))
	}
	return vs[0], vs[0].Err
}

// dkimMessages renders messages that exercise what signing must survive:
// non-ASCII names and subjects folded over lines, images, attachments
// (every message's and one recipient's own), unsubscribe fields, extra
// fields.
func dkimMessages(t *testing.T, key crypto.Signer) [][]byte {
	t.Helper()
	f := newFixture(t)
	f.file("img/logo.png", testPNG)
	pdf := f.file("活动日程 (final).pdf", []byte("%PDF-1.4 schedule\r\n  \t\r\n"))
	f.file("own.txt", []byte("trailing spaces   \n\n\n"))
	r := f.dkimRenderer(key, pdf)
	inputs := []*Input{
		{To: mail.Address{Name: "Zoë Ångström", Address: "zoe@example.com"}, Subject: "Grüße aus Köln — " + strings.Repeat("Neuigkeiten ", 8),
			Markdown:    []byte("![logo](img/logo.png)\n\n# Hallo Zoë\n\nLines  with\tspaces   \n\n\n"),
			Unsubscribe: "https://example.org/u?e=zoe%40example.com", UnsubMailto: "leave@example.org"},
		{To: mail.Address{Name: "张三, 市场部", Address: "zhang@example.net"}, Subject: "来自SMTP的问候",
			Markdown: []byte("你好 **张三**\n\n" + strings.Repeat("长长的一行", 40) + "\n"), Attachments: []string{"own.txt"},
			Headers: []Field{{"X-Campaign", "nov"}, {"List-Id", "News <news.example.org>"}}},
		{To: mail.Address{Address: "plain@example.org"}, Subject: "plain", Markdown: []byte("x")},
	}
	var out [][]byte
	for i, in := range inputs {
		in.Seq = i + 1
		m, err := r.Render(in)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Data)
	}
	return out
}

// sigTags returns the tags of a message's DKIM-Signature, white space gone.
func sigTags(t testing.TB, data []byte) map[string]string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	v := msg.Header.Get("DKIM-Signature")
	if v == "" {
		t.Fatal("no DKIM-Signature")
	}
	tags := map[string]string{}
	for _, kv := range strings.Split(v, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		tags[strings.TrimSpace(k)] = strings.Join(strings.Fields(v), "")
	}
	return tags
}

func TestDKIMVerifies(t *testing.T) {
	for _, kind := range []string{"rsa", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			key := testKeys[kind]
			record := testRecord(t, key)
			d := &DKIM{Domain: "example.org", Selector: "sel2026", Signer: key}
			if got, err := d.Record(); err != nil || got != record {
				t.Errorf("Record() = %q, %v; want %q", got, err, record)
			}
			for i, data := range dkimMessages(t, key) {
				if !bytes.HasPrefix(data, []byte("DKIM-Signature: v=1; a=")) {
					t.Errorf("message %d does not start with its signature: %.60q", i+1, data)
				}
				checkLines(t, data, 78)
				v, err := verify(t, data, record)
				if err != nil {
					t.Fatalf("message %d: %v\n%s", i+1, err, data[:bytes.Index(data, []byte("\r\n\r\n"))])
				}
				if v.Domain != "example.org" {
					t.Errorf("d=%s", v.Domain)
				}
				signed := map[string]bool{}
				for _, k := range v.HeaderKeys {
					signed[strings.ToLower(k)] = true
				}
				for _, want := range []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version",
					"Content-Type", "Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post"} {
					if !signed[strings.ToLower(want)] {
						t.Errorf("message %d: h= %v lacks %s", i+1, v.HeaderKeys, want)
					}
				}
				tags := sigTags(t, data)
				wantAlgo := map[string]string{"rsa": "rsa-sha256", "ed25519": "ed25519-sha256"}[kind]
				if tags["a"] != wantAlgo || tags["c"] != "relaxed/relaxed" || tags["s"] != "sel2026" || tags["d"] != "example.org" {
					t.Errorf("message %d: tags %v", i+1, tags)
				}
				if tags["t"] != "1764000000" {
					t.Errorf("t=%s, want the Date, 1764000000", tags["t"])
				}
				if _, ok := tags["l"]; ok {
					t.Error("l= lets anyone append to the body")
				}
			}
		})
	}
}

// TestDKIMHeaderKeys checks h=: every field of the message, in order, and
// the fields that must not be added once more, present or not.
func TestDKIMHeaderKeys(t *testing.T) {
	data := dkimMessages(t, testKeys["ed25519"])[2] // no unsubscribe, no extra fields
	got := sigTags(t, data)["h"]
	want := "From:To:Reply-To:Subject:Date:Message-ID:MIME-Version:Content-Type:" +
		"From:To:Cc:Reply-To:Subject:Date:Message-ID:MIME-Version:Content-Type:List-Unsubscribe:List-Unsubscribe-Post"
	if got != want {
		t.Errorf("h=%s\nwant %s", got, want)
	}
}

// TestDKIMTampering changes a signed message in ways a verifier must
// catch, and in ways that relays make and a verifier must accept.
func TestDKIMTampering(t *testing.T) {
	for _, kind := range []string{"rsa", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			record := testRecord(t, testKeys[kind])
			msgs := dkimMessages(t, testKeys[kind])
			first, third := msgs[0], msgs[2]
			body := bytes.Index(first, []byte("\r\n\r\n")) + 4
			bad := []struct {
				name string
				data []byte
			}{
				{"subject", regexp.MustCompile(`(?m)^Subject: plain`).ReplaceAll(bytes.Clone(third), []byte("Subject: Plain"))},
				{"to", bytes.Replace(third, []byte("To: <plain@example.org>"), []byte("To: <plain@example.net>"), 1)},
				{"one body byte", func() []byte {
					b := bytes.Clone(first)
					i := body + bytes.Index(first[body:], []byte("Hallo"))
					b[i] = 'h'
					return b
				}()},
				{"body appended", append(bytes.Clone(first), "extra\r\n"...)},
				{"a second Subject", append([]byte("Subject: win a prize\r\n"), third...)},
				{"a List-Unsubscribe added", append([]byte("List-Unsubscribe: <https://evil.example/>\r\n"), third...)},
				{"a Cc added", append([]byte("Cc: <more@example.com>\r\n"), third...)},
			}
			for _, tt := range bad {
				if !bytes.Contains(tt.data, []byte("DKIM-Signature")) || bytes.Equal(tt.data, first) || bytes.Equal(tt.data, third) {
					t.Fatalf("%s: the message is unchanged", tt.name)
				}
				if _, err := verify(t, tt.data, record); err == nil {
					t.Errorf("%s: still verifies", tt.name)
				}
			}
			// What relaxed canonicalization is for: a relay that adds
			// trace fields, refolds a field or pads white space.
			good := []struct {
				name string
				data []byte
			}{
				{"Received added", append([]byte("Received: from x by y; Mon, 24 Nov 2025 16:00:01 +0000\r\n"), first...)},
				{"refolded", bytes.Replace(third, []byte("Subject: plain"), []byte("Subject:\r\n\t  plain  "), 1)},
				{"trailing white space", bytes.Replace(first, []byte("\r\n\r\n"), []byte(" \t\r\n\r\n"), 1)},
			}
			for _, tt := range good {
				if _, err := verify(t, tt.data, record); err != nil {
					t.Errorf("%s: %v", tt.name, err)
				}
			}
		})
	}
}

// TestDKIMReproducible: the same message is the same bytes, signature
// included (RSA PKCS #1 v1.5 and Ed25519 are deterministic, t= is the Date).
func TestDKIMReproducible(t *testing.T) {
	for _, kind := range []string{"rsa", "ed25519"} {
		a, b := dkimMessages(t, testKeys[kind]), dkimMessages(t, testKeys[kind])
		for i := range a {
			if !bytes.Equal(a[i], b[i]) {
				t.Errorf("%s: message %d differs between two renderings", kind, i+1)
			}
		}
	}
}

// TestDKIMCanonical checks the canonicalization against the example of
// RFC 6376 §3.4.5.
func TestDKIMCanonical(t *testing.T) {
	head := []byte("A: X\r\nB : Y\t\r\n\tZ  \r\n")
	var got []byte
	for _, f := range splitFields(head) {
		got = relaxedHeader(got, f)
	}
	if want := "a:X\r\nb:Y Z\r\n"; string(got) != want {
		t.Errorf("relaxed header %q, want %q", got, want)
	}
	for _, tt := range []struct{ body, want string }{
		{" C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n"},
		{"", ""},
		{"\r\n\r\n", ""},
		{"x", "x\r\n"},
		{"a\r\n\r\nb\r\n \r\n", "a\r\n\r\nb\r\n"},
	} {
		h1, h2 := sha256.New(), sha256.New()
		relaxedBody(h1, []byte(tt.body))
		h2.Write([]byte(tt.want))
		if !bytes.Equal(h1.Sum(nil), h2.Sum(nil)) {
			t.Errorf("relaxed body of %q is not %q", tt.body, tt.want)
		}
	}
}

func TestDKIMZoneRecord(t *testing.T) {
	for _, kind := range []string{"rsa", "ed25519"} {
		d := &DKIM{Domain: "example.org", Selector: "sel2026", Signer: testKeys[kind]}
		line, err := d.ZoneRecord()
		if err != nil {
			t.Fatal(err)
		}
		prefix := "sel2026._domainkey.example.org. IN TXT "
		if !strings.HasPrefix(line, prefix) {
			t.Fatalf("%s: %q", kind, line)
		}
		var joined string
		strs := regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(line[len(prefix):], -1)
		for _, s := range strs {
			if len(s[1]) > 255 {
				t.Errorf("%s: a string of %d octets: DNS allows 255", kind, len(s[1]))
			}
			joined += s[1]
		}
		if want := testRecord(t, testKeys[kind]); joined != want {
			t.Errorf("%s: the strings join to %q, want %q", kind, joined, want)
		}
		if kind == "rsa" && len(strs) != 2 {
			t.Errorf("rsa: %d strings, want 2", len(strs))
		}
	}
}

func TestDKIMBadKey(t *testing.T) {
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, signer := range []crypto.Signer{nil, ek} {
		f := newFixture(t)
		r := f.dkimRenderer(signer)
		_, err := r.Render(&Input{Seq: 1, To: mail.Address{Address: "a@example.com"}, Subject: "s", Markdown: []byte("x")})
		if err == nil || !strings.HasPrefix(err.Error(), "DKIM: ") {
			t.Errorf("%T: error %v, want a DKIM error", signer, err)
		}
	}
}

// dkimPython returns a python3 that has dkimpy, or skips the test.
func dkimPython(t *testing.T) string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil && exec.Command(path, "-c", "import dkim").Run() == nil {
			return path
		}
	}
	t.Skip("no python3 with dkimpy (Debian: python3-dkim): the independent DKIM check is skipped")
	return ""
}

// dkimVerifyPy verifies each file named on the command line with dkimpy,
// the key record read from the environment, and prints a JSON list of
// results.
const dkimVerifyPy = `
import json, os, sys, dkim
records = {os.environ["DKIM_NAME"]: os.environ["DKIM_RECORD"].encode()}
def dnsfunc(name, timeout=5):
    return records.get(name.decode().rstrip("."))
out = []
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    try:
        ok = dkim.verify(data, dnsfunc=dnsfunc)
        out.append({"file": path, "ok": bool(ok), "error": ""})
    except Exception as e:
        out.append({"file": path, "ok": False, "error": repr(e)})
print(json.dumps(out))
`

// TestDKIMPython has dkimpy, an independent implementation, verify the
// messages and refuse a tampered one. Ed25519 needs PyNaCl besides.
func TestDKIMPython(t *testing.T) {
	py := dkimPython(t)
	for _, kind := range []string{"rsa", "ed25519"} {
		t.Run(kind, func(t *testing.T) {
			if kind == "ed25519" && exec.Command(py, "-c", "import nacl.signing").Run() != nil {
				t.Skip("dkimpy verifies Ed25519 only with PyNaCl (Debian: python3-nacl)")
			}
			dir := t.TempDir()
			var files []string
			msgs := dkimMessages(t, testKeys[kind])
			tampered := bytes.Replace(msgs[2], []byte("Subject: plain"), []byte("Subject: Plain"), 1)
			for i, data := range append(msgs, tampered) {
				p := filepath.Join(dir, fmt.Sprintf("%d.eml", i+1))
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
				files = append(files, p)
			}
			cmd := exec.Command(py, append([]string{"-c", dkimVerifyPy}, files...)...)
			cmd.Env = append(os.Environ(), "DKIM_NAME=sel2026._domainkey.example.org", "DKIM_RECORD="+testRecord(t, testKeys[kind]))
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("dkimpy: %v", err)
			}
			var got []struct {
				File  string
				OK    bool
				Error string
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(files) {
				t.Fatalf("%d results for %d files", len(got), len(files))
			}
			for i, r := range got[:len(msgs)] {
				if !r.OK {
					t.Errorf("message %d: dkimpy says it does not verify %s", i+1, r.Error)
				}
			}
			if got[len(msgs)].OK {
				t.Error("dkimpy verifies a message whose Subject was changed")
			}
		})
	}
}

// BenchmarkSign is the cost of signing one rendered message, on top of
// rendering it.
func BenchmarkSign(b *testing.B) {
	for _, kind := range []string{"rsa", "ed25519"} {
		b.Run(kind, func(b *testing.B) {
			opts := dkimOptions(b.TempDir(), testKeys[kind])
			d := opts.DKIM
			opts.DKIM = nil
			r, err := New(opts)
			if err != nil {
				b.Fatal(err)
			}
			m, err := r.Render(&Input{Seq: 1, To: mail.Address{Name: "Zoë", Address: "zoe@example.com"}, Subject: "s",
				Markdown: []byte(strings.Repeat("A paragraph of the newsletter.\n\n", 100))})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(m.Data)))
			for b.Loop() {
				if _, err := d.sign(nil, m.Data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
