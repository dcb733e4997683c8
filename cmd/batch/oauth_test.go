package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/oauthtest"
	"github.com/batch-mailer/batch/internal/smtptest"
)

// TestSendXOAUTH2 sends to a server that takes only XOAUTH2, with the
// token token_cmd prints: no password is asked for, and --debug shows the
// AUTH exchange as *** and never the token.
func TestSendXOAUTH2(t *testing.T) {
	const token = "ya29.a0-secret-token"
	srv := smtptest.Start(t, smtptest.WithAuth(smtptest.Auth{
		Username: "news@example.org", Mechanisms: []string{"XOAUTH2"}, Token: func() string { return token },
	}))
	dir := t.TempDir()
	files := map[string]string{
		"c.toml": fmt.Sprintf("name = \"oa\"\nfrom = \"News <news@example.org>\"\nsubject = \"Hi {{.name}}\"\n"+
			"template = \"t.md\"\nrecipients = \"r.csv\"\n[smtp]\nhost = \"127.0.0.1\"\nport = %d\nsecurity = \"none\"\n"+
			"username = \"news@example.org\"\nauth = \"xoauth2\"\ntoken_cmd = \"echo %s\"\n", srv.Port(), token),
		"t.md":  "Hi {{.name}}\n",
		"r.csv": "email,name\nada@example.org,Ada\nbob@example.net,Bob\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := batch(t, nil, "send", "--yes", "--debug", filepath.Join(dir, "c.toml"))
	if code != exitOK || !strings.Contains(stdout, "sent 2, failed 0") {
		t.Fatalf("send: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "C: AUTH XOAUTH2 ***") || strings.Contains(stderr, "secret-token") {
		t.Errorf("--debug shows the token, or no AUTH XOAUTH2 ***:\n%s", stderr)
	}
	if d := srv.Delivered(); d["ada@example.org"] != 1 || d["bob@example.net"] != 1 {
		t.Errorf("delivered %v, want each once", d)
	}
}

// TestLoginThenSend: batch login --provider custom signs in with the
// device flow of a provider of httptest (a poll answered
// authorization_pending first), prints the URL and the code on stderr and
// keeps the token 0600 under the config directory; send then logs in with
// it, and when the access token is revoked as the second connection logs
// in, refreshes it through the refresh grant: every message sent once,
// and no token in the output.
func TestLoginThenSend(t *testing.T) {
	config := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config)
	t.Setenv("HOME", t.TempDir())
	p := oauthtest.Start(t, "batch-test", "client-shh", 1)
	srv := smtptest.Start(t, smtptest.WithAuth(smtptest.Auth{
		Username: "news@example.org", Mechanisms: []string{"XOAUTH2"}, Token: p.RevokedAt(2),
	}))
	dir := t.TempDir()
	files := map[string]string{
		"c.toml": fmt.Sprintf("name = \"oa\"\nfrom = \"News <news@example.org>\"\nsubject = \"Hi {{.name}}\"\n"+
			"template = \"t.md\"\nrecipients = \"r.csv\"\n[smtp]\nhost = \"127.0.0.1\"\nport = %d\nsecurity = \"none\"\nmax_per_connection = 1\n"+
			"username = \"news@example.org\"\nauth = \"xoauth2\"\n[smtp.oauth]\nclient_id = \"batch-test\"\nauth_url = %q\ntoken_url = %q\ndevice_url = %q\nscopes = [\"smtp\"]\n",
			srv.Port(), p.AuthURL(), p.TokenURL(), p.DeviceURL()),
		"t.md":  "Hi {{.name}}\n",
		"r.csv": "email,name\nada@example.org,Ada\nbob@example.net,Bob\ncarol@example.com,Carol\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"BATCH_OAUTH_CLIENT_SECRET": "client-shh"}
	campaignFile := filepath.Join(dir, "c.toml")
	code, stdout, stderr := batch(t, env, "login", "--provider", "custom", campaignFile)
	tokens := filepath.Join(config, "batch", "tokens", "custom-news@example.org.json")
	if code != exitOK || !strings.Contains(stdout, "signed in as news@example.org with custom: the token is kept in "+tokens) {
		t.Fatalf("login: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, oauthtest.VerificationURI) || !strings.Contains(stderr, oauthtest.UserCode) {
		t.Errorf("login's stderr doesn't give the URL and the code:\n%s", stderr)
	}
	for path, mode := range map[string]os.FileMode{tokens: 0o600, filepath.Dir(tokens): 0o700 | os.ModeDir} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, want mode %v", path, err, mode)
		}
	}

	code, stdout, stderr = batch(t, env, "send", "--yes", "--debug", campaignFile)
	if code != exitOK || !strings.Contains(stdout, "sent 3, failed 0") {
		t.Fatalf("send: exit %d\n%s%s", code, stdout, stderr)
	}
	if d := srv.Delivered(); len(d) != 3 || d["ada@example.org"] != 1 || d["bob@example.net"] != 1 || d["carol@example.com"] != 1 {
		t.Errorf("delivered %v, want each once", d)
	}
	if want := []string{"device_code pending", "device_code", "refresh_token ref-1"}; !slices.Equal(p.Grants(), want) {
		t.Errorf("the provider's grants %q, want %q", p.Grants(), want)
	}
	for _, secret := range []string{"acc-", "ref-", "client-shh"} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("send's output shows %q:\n%s%s", secret, stdout, stderr)
		}
	}
	data, err := os.ReadFile(tokens)
	if err != nil || !strings.Contains(string(data), `"refresh_token": "ref-2"`) {
		t.Errorf("the token file after the refresh (%v):\n%s\nwant the rotated ref-2", err, data)
	}

	code, _, stderr = batch(t, env, "login", "--provider", "yahoo", campaignFile)
	if code != exitUsage || !strings.Contains(stderr, `--provider "yahoo": want google, microsoft or custom`) {
		t.Errorf("login --provider yahoo: exit %d\n%s", code, stderr)
	}
}
