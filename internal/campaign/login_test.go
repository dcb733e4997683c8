package campaign

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/oauthtest"
	"github.com/batch-mailer/batch/internal/smtptest"
)

// loginSecrets are the environment of a login test: the client secret in
// OAUTH_TEST_SECRET.
var loginSecrets = Secrets{Getenv: func(k string) string {
	if k == "OAUTH_TEST_SECRET" {
		return "client-shh"
	}
	return ""
}}

// loginCampaign is a campaign of faultList sent with xoauth2 to srv, the
// token from batch login at p; the config directory a temporary one.
func loginCampaign(t *testing.T, srv *smtptest.Server, p *oauthtest.Provider) (*Campaign, string) {
	t.Helper()
	config := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config)
	t.Setenv("HOME", t.TempDir())
	host, port := "127.0.0.1", 25
	if srv != nil {
		host, port = srv.Host(), srv.Port()
	}
	smtp := fmt.Sprintf("\n[smtp]\nhost = %q\nport = %d\nsecurity = \"none\"\nretries = 0\nmax_per_connection = 2\nusername = \"news@example.org\"\nauth = \"xoauth2\"\n"+
		"[smtp.oauth]\nprovider = \"custom\"\nclient_id = \"batch-test\"\nclient_secret_env = \"OAUTH_TEST_SECRET\"\nauth_url = %q\ntoken_url = %q\ndevice_url = %q\nscopes = [\"smtp\"]\n",
		host, port, p.AuthURL(), p.TokenURL(), p.DeviceURL())
	return newCampaign(t, listOf(faultList), "# Hello {{.name}}!\n\nThe news.\n", smtp, nil), config
}

// login runs batch login's flow and checks what it stored.
func login(t *testing.T, c *Campaign, config string) string {
	t.Helper()
	var prompt bytes.Buffer
	path, err := c.SMTP.Login(t.Context(), LoginRequest{Provider: "custom", Secrets: loginSecrets, Prompt: &prompt})
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if want := filepath.Join(config, "batch", "tokens", "custom-news@example.org.json"); path != want {
		t.Errorf("stored in %s, want %s", path, want)
	}
	if !strings.Contains(prompt.String(), oauthtest.VerificationURI) || !strings.Contains(prompt.String(), oauthtest.UserCode) {
		t.Errorf("the prompt doesn't give the URL and the code:\n%s", prompt.String())
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, mode %v; want %v", p, err, fi.Mode(), mode)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("the token directory holds %d files, want the token alone (no temporary file left)", len(entries))
	}
	return path
}

// stored reads the token file.
func stored(t *testing.T, path string) *oauth2.Token {
	t.Helper()
	tok, err := readTokenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestLoginThenSend: batch login's device flow (a poll answered
// authorization_pending, then the token), stored 0600 outside the
// campaign; a send with it, whose access token the provider revokes as the
// second connection logs in: the refresh grant gives a new one (and a new
// refresh token, stored), and every address is sent once, the tokens in
// neither the transcript nor the journal.
func TestLoginThenSend(t *testing.T) {
	p := oauthtest.Start(t, "batch-test", "client-shh", 1)
	srv := smtptest.Start(t, smtptest.WithAuth(smtptest.Auth{
		Username: "news@example.org", Mechanisms: []string{"XOAUTH2"}, Token: p.RevokedAt(2),
	}))
	c, config := loginCampaign(t, srv, p)
	path := login(t, c, config)
	if tok := stored(t, path); tok.AccessToken != "acc-1" || tok.RefreshToken != "ref-1" || time.Until(tok.Expiry) < 50*time.Minute {
		t.Errorf("stored %q, %q, expiry %v; want acc-1, ref-1, in an hour", tok.AccessToken, tok.RefreshToken, tok.Expiry)
	}
	if want := []string{"device_code pending", "device_code"}; !slices.Equal(p.Grants(), want) {
		t.Errorf("grants %q, want %q", p.Grants(), want)
	}
	if strings.HasPrefix(path, filepath.Dir(c.Path)) {
		t.Errorf("the token is kept in the campaign's directory: %s", path)
	}

	var debug bytes.Buffer
	rep, err := c.Deliver(t.Context(), SendRequest{Options: Options{Now: now}, Token: c.SMTP.Token(loginSecrets), Debug: &debug})
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if rep.List[Sent] != len(faultList) {
		t.Errorf("List %v, want all %d sent", rep.List, len(faultList))
	}
	st, recs, delivered := readState(t, c), journalRecords(t, c), srv.Delivered()
	for _, a := range faultList {
		if st.Get(a).Status != journal.Sent || tries(recs, a) != 1 || delivered[a] != 1 {
			t.Errorf("%s: %v in the journal, handed over %d times, delivered %d; want sent once", a, st.Get(a).Status, tries(recs, a), delivered[a])
		}
	}
	if want := []string{"device_code pending", "device_code", "refresh_token ref-1"}; !slices.Equal(p.Grants(), want) {
		t.Errorf("grants %q, want %q: one refresh, for the revoked token", p.Grants(), want)
	}
	var auths []string
	for _, cn := range srv.Conns() {
		auths = append(auths, cn.Auths...)
	}
	if want := []string{"news@example.org", "news@example.org (token refused)", "news@example.org", "news@example.org"}; !slices.Equal(auths, want) {
		t.Errorf("the server saw logins %q, want %q", auths, want)
	}
	if tok := stored(t, path); tok.AccessToken != "acc-2" || tok.RefreshToken != "ref-2" {
		t.Errorf("stored %q, %q after the refresh; want acc-2 and the rotated ref-2", tok.AccessToken, tok.RefreshToken)
	}
	journalText, err := os.ReadFile(c.JournalPath(Shard{}))
	for _, secret := range []string{"acc-", "ref-", "client-shh"} {
		if err != nil || bytes.Contains(journalText, []byte(secret)) || strings.Contains(debug.String(), secret) {
			t.Errorf("the journal (%v) or the transcript holds %q", err, secret)
		}
	}
}

// TestStoredTokenExpired: an access token past its expiry is refreshed
// before a login, without a refusal; a refresh token the provider no
// longer takes is an error that says to log in again, without the token.
func TestStoredTokenExpired(t *testing.T) {
	p := oauthtest.Start(t, "batch-test", "client-shh", 0)
	c, config := loginCampaign(t, nil, p)
	path := login(t, c, config)
	tok := stored(t, path)
	tok.Expiry = time.Now().Add(-time.Minute)
	if err := writeTokenFile(path, tok); err != nil {
		t.Fatal(err)
	}
	got, err := c.SMTP.Token(loginSecrets)(t.Context())
	if err != nil || got != "acc-2" || got != p.Current() {
		t.Fatalf("Token: %q, %v; want the refreshed acc-2", got, err)
	}
	if got, err := c.SMTP.Token(loginSecrets)(t.Context()); err != nil || got != "acc-2" {
		t.Errorf("Token again: %q, %v; want acc-2 from the file, no refresh", got, err)
	}
	if want := []string{"device_code", "refresh_token ref-1"}; !slices.Equal(p.Grants(), want) {
		t.Errorf("grants %q, want %q", p.Grants(), want)
	}

	tok.Expiry = time.Now().Add(-time.Minute) // ref-1, which ref-2 replaced
	if err := writeTokenFile(path, tok); err != nil {
		t.Fatal(err)
	}
	_, err = c.SMTP.Token(loginSecrets)(t.Context())
	if err == nil || !strings.Contains(err.Error(), "invalid_grant") || !strings.Contains(err.Error(), "run batch login again") || strings.Contains(err.Error(), "ref-1") {
		t.Errorf("Token with a revoked refresh token: %v; want invalid_grant, batch login again, no token", err)
	}
}

// TestNoStoredLogin: auth without token_cmd and before batch login is
// ErrNoLogin, which says what to run; a login with another provider than
// the campaign's, or without the client secret, fails saying why.
func TestNoStoredLogin(t *testing.T) {
	p := oauthtest.Start(t, "batch-test", "client-shh", 0)
	c, _ := loginCampaign(t, nil, p)
	_, err := c.SMTP.Token(loginSecrets)(t.Context())
	if !errors.Is(err, ErrNoLogin) || !strings.Contains(err.Error(), "run batch login") {
		t.Errorf("Token: %v, want ErrNoLogin saying to run batch login", err)
	}
	if _, err := c.SMTP.Login(t.Context(), LoginRequest{Provider: "google", Secrets: loginSecrets, Prompt: new(bytes.Buffer)}); err == nil || !strings.Contains(err.Error(), `provider = "google"`) {
		t.Errorf("Login --provider google of a custom campaign: %v", err)
	}
	_, err = c.SMTP.Login(t.Context(), LoginRequest{Secrets: Secrets{Getenv: func(string) string { return "" }}, Prompt: new(bytes.Buffer)})
	if err == nil || !strings.Contains(err.Error(), "signing in as news@example.org: invalid_client") {
		t.Errorf("Login without the client secret: %v, want the provider's invalid_client", err)
	}
}

// TestOAuthProblemsAtTheirLines: a problem of [smtp.oauth] names its key's line.
func TestOAuthProblemsAtTheirLines(t *testing.T) {
	_, path, err := load(t, minimal+"[smtp]\nhost = \"smtp.example.org\"\nusername = \"news@example.org\"\nauth = \"xoauth2\"\n[smtp.oauth]\nprovider = \"custom\"\ntoken_url = \"ftp://x\"\ndevice_url = \"http://login.example.org/device\"\n", nil)
	p := problemsOf(t, err)
	lines := strings.Count(minimal, "\n")
	for _, want := range []string{
		fmt.Sprintf("%s:%d: smtp.oauth.token_url", path, lines+7),
		fmt.Sprintf("%s:%d: smtp.oauth.device_url: \"http://login.example.org/device\": provider \"custom\" needs", path, lines+8),
	} {
		if !strings.Contains(p.Error(), want) {
			t.Errorf("%v\nwant %q", p, want)
		}
	}
}

// TestStoredLoginHint: a token of batch login's refused twice says to
// check the account batch login signed in as, not token_cmd.
func TestStoredLoginHint(t *testing.T) {
	p := oauthtest.Start(t, "batch-test", "client-shh", 0)
	c, _ := loginCampaign(t, nil, p)
	err := c.explainConn(&deliver.ConnError{Addr: "127.0.0.1:25", Step: "auth", Hint: deliver.HintToken, Err: errors.New("no")})
	for _, want := range []string{"refused the access token", "[smtp] username (" + c.loc("smtp.username") + ")", "batch login signed in as that account", "[smtp.oauth] scopes (" + c.loc("smtp.oauth.scopes") + ")"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "token_cmd") || !strings.Contains(c.loc("smtp.oauth.scopes"), ":") {
		t.Errorf("%q names token_cmd, or scopes has no line (%s)", err, c.loc("smtp.oauth.scopes"))
	}
}

// TestOAuthProviders: google's and microsoft's endpoints and scopes are
// built in, the provider guessed from the host; the client ID comes from
// the environment when [smtp.oauth] has none, and the secret from
// client_secret_cmd.
func TestOAuthProviders(t *testing.T) {
	env := Secrets{Getenv: func(k string) string {
		if k == DefaultClientIDEnv {
			return "id-from-env"
		}
		return ""
	}}
	for _, tc := range []struct {
		host, oauth, provider, device string
		scopes                        []string
	}{
		{"smtp.gmail.com", "", "google", "https://oauth2.googleapis.com/device/code", []string{"https://mail.google.com/"}},
		{"smtp.office365.com", "", "microsoft", "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode", []string{"https://outlook.office.com/SMTP.Send", "offline_access"}},
		{"mail.example.org", "[smtp.oauth]\nprovider = \"microsoft\"\n", "microsoft", "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode", []string{"https://outlook.office.com/SMTP.Send", "offline_access"}},
	} {
		c, _, err := load(t, minimal+fmt.Sprintf("[smtp]\nhost = %q\nusername = \"news@example.org\"\nauth = \"xoauth2\"\n", tc.host)+tc.oauth, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.host, err)
		}
		cfg, err := c.SMTP.oauthConfig(t.Context(), env)
		if err != nil || c.SMTP.OAuth.Provider != tc.provider || cfg.Endpoint.DeviceAuthURL != tc.device || !slices.Equal(cfg.Scopes, tc.scopes) || cfg.ClientID != "id-from-env" {
			t.Errorf("%s: %v, provider %q, %+v", tc.host, err, c.SMTP.OAuth.Provider, cfg)
		}
	}
	c, _, err := load(t, minimal+"[smtp]\nhost = \"smtp.gmail.com\"\nusername = \"news@example.org\"\nauth = \"xoauth2\"\n[smtp.oauth]\nclient_id = \"batch\"\nclient_secret_cmd = \"echo from-cmd\"\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := c.SMTP.oauthConfig(t.Context(), env)
	if err != nil || cfg.ClientID != "batch" || cfg.ClientSecret != "from-cmd" {
		t.Errorf("client_secret_cmd: %v, %q, %q", err, cfg.ClientID, cfg.ClientSecret)
	}
	c.SMTP.OAuth.ClientID = ""
	if _, err = c.SMTP.oauthConfig(t.Context(), Secrets{Getenv: func(string) string { return "" }}); err == nil || !strings.Contains(err.Error(), DefaultClientIDEnv) {
		t.Errorf("no client ID: %v, want it to name %s", err, DefaultClientIDEnv)
	}
}

// TestPrintable: what the provider says to show goes to the terminal as
// it is, but quoted when it holds control characters (an escape sequence
// could rewrite the screen).
func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"https://microsoft.com/devicelogin": "https://microsoft.com/devicelogin",
		"WDJB-MJHT":                         "WDJB-MJHT",
		"WDJB\x1b[2J":                       `"WDJB\x1b[2J"`,
		"a\nb":                              `"a\nb"`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %s, want %s", in, got, want)
		}
	}
}
