package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// mailpitVersion is the Mailpit the end-to-end tests run: an SMTP server
// batch shares no code with, installed with go install.
const mailpitVersion = "v1.33.1"

// mailpitBinary returns Mailpit's path: $BATCH_MAILPIT, or one installed
// into the user's cache by an earlier run, or one installed now (about a
// minute on two cores, most of it compiling modernc.org/sqlite).
func mailpitBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BATCH_MAILPIT"); p != "" {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "batch-test", "mailpit-"+mailpitVersion)
	bin := filepath.Join(dir, "mailpit")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to install Mailpit with")
	}
	notice(t, fmt.Sprintf("cmd/batch: building Mailpit %s into %s for the end-to-end tests: about a minute, once", mailpitVersion, dir))
	start := time.Now()
	// Compiled without optimisations (-N -l) and linked without symbols or
	// DWARF (-s -w): a server that takes a few messages needs no speed, and
	// the build is shorter and lighter, most of all modernc.org/sqlite's
	// compile. From an empty build cache on 2 shared cores: 1:00 and a
	// 511 MiB peak, against 2:37 and 744 MiB with the defaults.
	cmd := exec.Command(goCmd, "install", "-trimpath", "-gcflags=all=-N -l", "-ldflags=-s -w", "github.com/axllent/mailpit@"+mailpitVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install mailpit: %v\n%s", err, out)
	}
	t.Logf("built Mailpit in %s", time.Since(start).Round(time.Second))
	return bin
}

// notice tells whoever runs the tests msg as it happens. go test ./...
// holds a package's output, standard error too, until the package is done
// and then shows it only if a test failed or with -v, so msg goes to the
// terminal itself when there is one; otherwise (CI) to the test's log.
func notice(t *testing.T, msg string) {
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		fmt.Fprintln(tty, msg)
		tty.Close()
		return
	}
	t.Log(msg)
}

// mailpit is a running Mailpit.
type mailpit struct {
	smtpPort int
	api      string
	caFile   string
}

// startMailpit runs Mailpit on loopback, AUTH required (user news), with
// STARTTLS required or, with implicit, TLS from the first byte.
func startMailpit(t *testing.T, implicit bool) *mailpit {
	t.Helper()
	bin := mailpitBinary(t)
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestPKI(t, dir)
	auth := filepath.Join(dir, "auth")
	if err := os.WriteFile(auth, []byte("news:"+testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	smtpPort, httpPort := freePort(t), freePort(t)
	tlsFlag := "--smtp-require-starttls"
	if implicit {
		tlsFlag = "--smtp-require-tls"
	}
	cmd := exec.Command(bin, "--disable-version-check",
		"--listen", fmt.Sprintf("127.0.0.1:%d", httpPort),
		"--smtp", fmt.Sprintf("127.0.0.1:%d", smtpPort),
		"--smtp-auth-file", auth,
		"--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile, tlsFlag,
		"--database", filepath.Join(dir, "mailpit.db"))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("mailpit's log:\n%s", log.String())
		}
	})
	m := &mailpit{smtpPort: smtpPort, api: fmt.Sprintf("http://127.0.0.1:%d/api/v1", httpPort), caFile: caFile}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", smtpPort))
		if err == nil {
			c.Close()
			if _, err := http.Get(m.api + "/messages"); err == nil {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Mailpit did not start:\n%s", log.String())
		}
	}
}

func (m *mailpit) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(m.api + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, body)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

type mpAddress struct{ Name, Address string }

type mpSummary struct {
	ID      string
	To      []mpAddress
	Subject string
}

type mpPart struct {
	FileName    string
	ContentType string
	ContentID   string
	Size        int
}

type mpMessage struct {
	From        mpAddress
	To          []mpAddress
	ReplyTo     []mpAddress
	Subject     string
	Text        string
	HTML        string
	Inline      []mpPart
	Attachments []mpPart
	MessageID   string
	// ListUnsubscribe is Mailpit's reading of List-Unsubscribe.
	ListUnsubscribe struct {
		Header     string
		HeaderPost string
		Links      []string
		Errors     string
	}
}

// messages returns every message Mailpit holds, by recipient.
func (m *mailpit) messages(t *testing.T) map[string]mpMessage {
	t.Helper()
	var list struct {
		Total    int
		Messages []mpSummary
	}
	m.get(t, "/messages?limit=1000", &list)
	out := map[string]mpMessage{}
	for _, s := range list.Messages {
		var msg mpMessage
		m.get(t, "/message/"+s.ID, &msg)
		if len(msg.To) != 1 {
			t.Fatalf("message %s has %d recipients: %v", s.ID, len(msg.To), msg.To)
		}
		if _, dup := out[msg.To[0].Address]; dup {
			t.Errorf("%s got two messages", msg.To[0].Address)
		}
		out[msg.To[0].Address] = msg
	}
	return out
}

const testPassword = "corr3ct-horse-battery"

// exampleCampaign copies the example campaign into a directory and points
// its [smtp] table at the server; more is added to that table.
func exampleCampaign(t *testing.T, m *mailpit, security, more string) string {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"campaigns", "templates"} {
		if err := os.CopyFS(filepath.Join(dir, sub), os.DirFS(filepath.Join("..", "..", sub))); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "campaigns", "newsletter.toml")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(text), "\n[smtp]")
	smtp := fmt.Sprintf("\n[smtp]\nhost = \"localhost\"\nport = %d\nsecurity = %q\nusername = \"news\"\n%s\n", m.smtpPort, security, more)
	if err := os.WriteFile(path, []byte(head+smtp), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// batch runs the command in-process and returns its exit status and output.
func batch(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, os.Stdin, &stdout, &stderr, func(k string) string { return env[k] })
	return code, stdout.String(), stderr.String()
}

// TestMailpit sends the example campaign to Mailpit, with STARTTLS and
// then implicit TLS, AUTH required, and checks through its API that every
// message arrived whole: text, HTML, inline images and attachment.
func TestMailpit(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with Mailpit")
	}
	for _, mode := range []string{"starttls", "tls"} {
		t.Run(mode, func(t *testing.T) {
			m := startMailpit(t, mode == "tls")
			path := exampleCampaign(t, m, mode, fmt.Sprintf("ca_file = %q\nconnections = 1", m.caFile))
			env := map[string]string{"BATCH_SMTP_PASSWORD": testPassword}
			code, stdout, stderr := batch(t, env, "send", "--yes", "--debug", path)
			if code != 0 {
				t.Fatalf("batch send: exit %d\n%s%s", code, stdout, stderr)
			}
			if !strings.Contains(stdout, "sent 5, failed 0, unknown 0, skipped 2") {
				t.Errorf("summary: %s", stdout)
			}
			if strings.Contains(stdout+stderr, testPassword) {
				t.Error("the password appears in batch's output")
			}
			// One connection, reused: one AUTH in the dialogue.
			if n := strings.Count(stderr, "C: AUTH PLAIN ***"); n != 1 {
				t.Errorf("%d logins for 5 messages on one connection", n)
			}
			checkDelivered(t, m.messages(t))

			// The journal knows: a second run sends nothing, and status
			// counts every recipient sent.
			code, stdout, stderr = batch(t, env, "send", "--yes", path)
			if code != 0 || !strings.Contains(stdout, "nothing to send: 5 sent before, 0 failed, 0 unknown") {
				t.Errorf("second send: exit %d\n%s%s", code, stdout, stderr)
			}
			if got := m.messages(t); len(got) != 5 {
				t.Errorf("after the second send Mailpit holds %d messages", len(got))
			}
			code, stdout, _ = batch(t, env, "status", path)
			if code != 0 || stdout != "sent 5\nfailed 0\nunknown 0\npending 0\n" {
				t.Errorf("status: exit %d\n%s", code, stdout)
			}
		})
	}
}

// checkDelivered checks what Mailpit holds against the example campaign.
func checkDelivered(t *testing.T, got map[string]mpMessage) {
	t.Helper()
	want := map[string]string{ // address → name, as in campaigns/recipients.csv
		"guanliyuan@example.com": "管理员",
		"ada@example.org":        "Ada Lovelace",
		"bob@example.net":        "Smith, Bob",
		"mallory@example.org":    "*Bob* <script>x</script> [x](javascript:alert(1))",
		"chen@example.com":       "张伟 🐍",
	}
	if len(got) != len(want) {
		t.Fatalf("Mailpit holds %d messages, want %d", len(got), len(want))
	}
	cid := regexp.MustCompile(`src="cid:([^"]+)"`)
	for addr, name := range want {
		msg, ok := got[addr]
		if !ok {
			t.Errorf("no message for %s", addr)
			continue
		}
		if msg.To[0].Name != name || msg.From != (mpAddress{"Python爱好者", "news@pymeetup.example.org"}) {
			t.Errorf("%s: To %v From %v", addr, msg.To, msg.From)
		}
		if !strings.HasPrefix(msg.Subject, "来自SMTP的问候……"+name+", see you in ") {
			t.Errorf("%s: Subject %q", addr, msg.Subject)
		}
		if !strings.Contains(msg.Text, "Hello "+name+"!") || !regexp.MustCompile(`<h1[^>]*>Hello `).MatchString(msg.HTML) {
			t.Errorf("%s: the text or HTML part is not the greeting", addr)
		}
		inline := map[string]bool{}
		for _, p := range msg.Inline {
			inline[p.ContentID] = true
		}
		for _, m := range cid.FindAllStringSubmatch(msg.HTML, -1) {
			if !inline[m[1]] {
				t.Errorf("%s: the HTML shows cid:%s, which is not an inline part", addr, m[1])
			}
		}
		if len(msg.Inline) == 0 {
			t.Errorf("%s: no inline image", addr)
		}
		// Every message has the campaign's attachment; Ada's row names one
		// more, hers only.
		want := []string{"活动日程.pdf"}
		if addr == "ada@example.org" {
			want = append(want, "ticket-ada.txt")
		}
		var names []string
		for _, a := range msg.Attachments {
			names = append(names, a.FileName)
		}
		if strings.Join(names, "|") != strings.Join(want, "|") || msg.Attachments[0].Size != 675 {
			t.Errorf("%s: attachments %+v, want %v", addr, msg.Attachments, want)
		}
		// One-click unsubscribe, the recipient's own address in the URL.
		if msg.ListUnsubscribe.HeaderPost != "List-Unsubscribe=One-Click" ||
			!strings.Contains(msg.ListUnsubscribe.Header, "<https://pymeetup.example.org/unsubscribe?e="+url.QueryEscape(addr)+">") {
			t.Errorf("%s: List-Unsubscribe %+v", addr, msg.ListUnsubscribe)
		}
	}
}

// TestMailpitRefused: an untrusted certificate and a wrong password stop
// batch before anything is sent, with a non-zero exit and a message that
// says what to check, and never the password.
func TestMailpitRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with Mailpit")
	}
	m := startMailpit(t, false)
	tests := []struct {
		name, more, password, want string
	}{
		{"untrusted certificate", "", testPassword, "not signed by a trusted authority; for a private relay, give its CA certificate in [smtp] ca_file"},
		{"wrong password", fmt.Sprintf("ca_file = %q", m.caFile), "wrong-" + testPassword, "the server refused the username or password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := exampleCampaign(t, m, "starttls", tt.more)
			env := map[string]string{"BATCH_SMTP_PASSWORD": tt.password}
			code, stdout, stderr := batch(t, env, "send", "--yes", "--debug", path)
			if code == 0 {
				t.Fatalf("batch send succeeded:\n%s%s", stdout, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, stderr)
			}
			if strings.Contains(stdout+stderr, tt.password) {
				t.Error("the password appears in batch's output")
			}
			if got := m.messages(t); len(got) != 0 {
				t.Errorf("Mailpit received %d messages", len(got))
			}
		})
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeTestPKI writes a CA and a certificate it signs for localhost and
// 127.0.0.1, and returns the files of the CA, the certificate and its key.
func writeTestPKI(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "batch test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, kind string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", leafDER), write("key.pem", "EC PRIVATE KEY", keyDER)
}
