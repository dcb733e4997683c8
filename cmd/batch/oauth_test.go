package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
