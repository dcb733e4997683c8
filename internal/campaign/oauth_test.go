package campaign

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/smtptest"
)

// issuer is an OAuth2 token issuer as the tests see it: the token it
// issues now, in a file that token_cmd prints, which the server also takes
// as the only valid one; rotate makes the current token expire.
type issuer struct {
	mu    sync.Mutex
	path  string // the token issued now
	calls string // a line for each time token_cmd ran
	token string
}

func newIssuer(t *testing.T) *issuer {
	dir := t.TempDir()
	k := &issuer{path: filepath.Join(dir, "issued"), calls: filepath.Join(dir, "calls")}
	k.rotate("tok-1")
	return k
}

func (k *issuer) rotate(token string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.token = token
	if err := os.WriteFile(k.path, []byte(token+"\n"), 0o600); err != nil {
		panic(err)
	}
}

func (k *issuer) current() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.token
}

// cmd is a token_cmd that prints the token issued now.
func (k *issuer) cmd() string { return fmt.Sprintf("echo x >> '%s'; cat '%s'", k.calls, k.path) }

// ran is how many times token_cmd ran.
func (k *issuer) ran(t *testing.T) int {
	data, err := os.ReadFile(k.calls)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return bytes.Count(data, []byte("\n"))
}

// oauthCampaign is a campaign of faultList sent with auth to srv, the
// token from token_cmd, two messages to a connection.
func oauthCampaign(t *testing.T, srv *smtptest.Server, auth, tokenCmd string) *Campaign {
	t.Helper()
	smtp := fmt.Sprintf("\n[smtp]\nhost = %q\nport = %d\nsecurity = \"none\"\nretries = 0\nmax_per_connection = 2\nusername = \"news@example.org\"\nauth = %q\ntoken_cmd = %q\n",
		srv.Host(), srv.Port(), auth, tokenCmd)
	return newCampaign(t, listOf(faultList), "# Hello {{.name}}!\n\nThe news.\n", smtp, nil)
}

// TestDeliverTokenExpires: the token expires mid-campaign, as the second
// connection logs in; the server refuses it, token_cmd runs again and the
// login goes through with the fresh token; every address is sent once,
// by the journal and by the server, and the token never shows in the
// transcript.
func TestDeliverTokenExpires(t *testing.T) {
	for _, auth := range []string{"xoauth2", "oauthbearer"} {
		t.Run(auth, func(t *testing.T) {
			k := newIssuer(t)
			var mu sync.Mutex
			logins := 0
			srv := smtptest.Start(t, smtptest.WithAuth(smtptest.Auth{
				Username:   "news@example.org",
				Mechanisms: []string{strings.ToUpper(auth)},
				Token: func() string {
					// The server's check at each login: the second
					// finds the token expired.
					mu.Lock()
					defer mu.Unlock()
					if logins++; logins == 2 {
						k.rotate("tok-2")
					}
					return k.current()
				},
			}))
			c := oauthCampaign(t, srv, auth, k.cmd())
			if pw, err := c.SMTP.Password(t.Context(), Secrets{Getenv: func(string) string { return "" }}); err != nil || pw != "" {
				t.Fatalf("Password: %q, %v; want none asked for an OAuth2 login", pw, err)
			}
			var debug bytes.Buffer
			rep, err := c.Deliver(t.Context(), SendRequest{Options: Options{Now: now}, Token: c.SMTP.Token(Secrets{}), Debug: &debug})
			if err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			if rep.List[Sent] != len(faultList) {
				t.Errorf("List %v, want all %d sent", rep.List, len(faultList))
			}
			st := readState(t, c)
			recs := journalRecords(t, c)
			delivered := srv.Delivered()
			for _, a := range faultList {
				if st.Get(a).Status != journal.Sent || tries(recs, a) != 1 || delivered[a] != 1 {
					t.Errorf("%s: %v in the journal, handed over %d times, delivered %d; want sent once", a, st.Get(a).Status, tries(recs, a), delivered[a])
				}
			}
			if n := k.ran(t); n != 4 {
				t.Errorf("token_cmd ran %d times, want 4: at each of 3 logins, and again for the refused one", n)
			}
			var auths []string
			for _, cn := range srv.Conns() {
				auths = append(auths, cn.Auths...)
			}
			if want := []string{"news@example.org", "news@example.org (token refused)", "news@example.org", "news@example.org"}; !slices.Equal(auths, want) {
				t.Errorf("the server saw logins %q, want %q", auths, want)
			}
			out := debug.String()
			if !strings.Contains(out, "AUTH "+strings.ToUpper(auth)+" ***") || strings.Contains(out, "tok-") {
				t.Errorf("the transcript shows a token, or no AUTH ***:\n%s", out)
			}
			journalText, err := os.ReadFile(c.JournalPath(Shard{}))
			if err != nil || bytes.Contains(journalText, []byte("tok-")) {
				t.Errorf("the journal holds a token (%v):\n%s", err, journalText)
			}
		})
	}
}

// TestDeliverTokenRefused: a token refused, fresh or not, stops the send
// before any message, the hint naming username and token_cmd at their
// lines; the token never in the error.
func TestDeliverTokenRefused(t *testing.T) {
	k := newIssuer(t)
	srv := smtptest.Start(t, smtptest.WithAuth(smtptest.Auth{
		Username: "news@example.org", Mechanisms: []string{"XOAUTH2"},
		Token: func() string { return "another account's" },
	}))
	c := oauthCampaign(t, srv, "xoauth2", k.cmd())
	_, err := c.Deliver(t.Context(), SendRequest{Options: Options{Now: now}, Token: c.SMTP.Token(Secrets{})})
	var ce *deliver.ConnError
	if !errors.As(err, &ce) || ce.Hint != deliver.HintToken {
		t.Fatalf("Deliver: %v, want a *deliver.ConnError with HintToken", err)
	}
	for _, want := range []string{"refused the access token", "username (" + c.loc("smtp.username") + ")", "token_cmd (" + c.loc("smtp.token_cmd") + ")"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "tok-1") || k.ran(t) != 2 || len(srv.Delivered()) != 0 {
		t.Errorf("error %q, token_cmd ran %d times, delivered %v; want no token shown, 2 runs, nothing sent", err, k.ran(t), srv.Delivered())
	}
}

// TestDeliverTokenCmdFails: a token_cmd that fails stops the send, its
// error naming the key and its line; nothing is sent.
func TestDeliverTokenCmdFails(t *testing.T) {
	srv := smtptest.Start(t, smtptest.WithAuth(smtptest.Auth{
		Username: "news@example.org", Mechanisms: []string{"XOAUTH2"}, Token: func() string { return "tok-1" },
	}))
	c := oauthCampaign(t, srv, "xoauth2", "echo tok-1; exit 3")
	_, err := c.Deliver(t.Context(), SendRequest{Options: Options{Now: now}, Token: c.SMTP.Token(Secrets{})})
	var cmdErr *CommandError
	if !errors.As(err, &cmdErr) || cmdErr.Key != "smtp.token_cmd" || cmdErr.At != c.loc("smtp.token_cmd") {
		t.Fatalf("Deliver: %v, want a *CommandError of smtp.token_cmd at its line", err)
	}
	if strings.Contains(err.Error(), "tok-1\n") || !strings.Contains(err.Error(), "exit status 3") || len(srv.Delivered()) != 0 {
		t.Errorf("error %q, delivered %v; want the exit status, not the output, nothing sent", err, srv.Delivered())
	}
}

// TestLoadAuth: auth and token_cmd go together, with a username and no
// password.
func TestLoadAuth(t *testing.T) {
	const base = "[smtp]\nhost = \"smtp.example.org\"\nusername = \"news@example.org\"\n"
	c, _, err := load(t, minimal+base+"auth = \"xoauth2\"\ntoken_cmd = \"gcloud auth print-access-token\"\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.Auth != deliver.AuthXOAUTH2 || c.SMTP.TokenCmd != "gcloud auth print-access-token" || c.SMTP.Token(Secrets{}) == nil {
		t.Errorf("auth %v, token_cmd %q", c.SMTP.Auth, c.SMTP.TokenCmd)
	}
	c, _, err = load(t, minimal+base, nil)
	if err != nil || c.SMTP.Auth != deliver.AuthPassword || c.SMTP.Token(Secrets{}) != nil {
		t.Errorf("no auth: %v, %v; want the password login", err, c.SMTP.Auth)
	}
	for _, tc := range []struct{ more, want string }{
		{"auth = \"cram-md5\"\n", `smtp.auth: "cram-md5": want "xoauth2" or "oauthbearer"`},
		{"auth = \"oauthbearer\"\n", `smtp.oauth.provider: "": want "google", "microsoft" or "custom"`},
		{"auth = \"oauthbearer\"\ntoken_cmd = \" \"\n", `smtp.token_cmd: is empty: give a command that prints the access token`},
		{"[smtp.oauth]\nprovider = \"google\"\n", `smtp.oauth: is for an OAuth2 login: set auth = "xoauth2"`},
		{"auth = \"xoauth2\"\ntoken_cmd = \"oauth2l fetch\"\n[smtp.oauth]\nprovider = \"google\"\n", `smtp.oauth: is for batch login, and token_cmd gives the token`},
		{"auth = \"xoauth2\"\n[smtp.oauth]\nprovider = \"custom\"\n", `smtp.oauth.token_url: "": provider "custom" needs the provider's token url`},
		{"auth = \"xoauth2\"\n[smtp.oauth]\nprovider = \"yahoo\"\n", `smtp.oauth.provider: "yahoo": want`},
		{"auth = \"xoauth2\"\n[smtp.oauth]\nprovider = \"google\"\nclient_secret = \"s3cret\"\n", `smtp.oauth.client_secret: a client secret can't be kept in the campaign file`},
		{"auth = \"xoauth2\"\n[smtp.oauth]\nprovider = \"google\"\nclient_secret_env = \"A\"\nclient_secret_cmd = \"pass b\"\n", `smtp.oauth.client_secret_cmd: give client_secret_env or client_secret_cmd, not both`},
		{"token_cmd = \"oauth2l fetch\"\n", `smtp.token_cmd: is for an OAuth2 login: set auth = "xoauth2"`},
		{"auth = \"xoauth2\"\ntoken_cmd = \"oauth2l fetch\"\npassword_cmd = \"pass smtp\"\n", `smtp.auth: "xoauth2" logs in with an OAuth2 token, not a password`},
	} {
		_, _, err := load(t, minimal+base+tc.more, nil)
		p := problemsOf(t, err)
		if !strings.Contains(p.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.more, p, tc.want)
		}
	}
	_, _, err = load(t, minimal+"[smtp]\nhost = \"smtp.example.org\"\nauth = \"xoauth2\"\ntoken_cmd = \"oauth2l fetch\"\n", nil)
	if p := problemsOf(t, err); !strings.Contains(p.Error(), `smtp.username: auth = "xoauth2" needs the account the token is for`) {
		t.Errorf("no username: %v", p)
	}
}
