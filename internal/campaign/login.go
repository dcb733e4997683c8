package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"golang.org/x/oauth2/microsoft"

	"github.com/batch-mailer/batch/internal/deliver"
)

// An OAuth2 login without token_cmd takes its token from a file batch
// login wrote: the device authorization flow (RFC 8628), whose refresh
// token is kept under the user's config directory, never beside the
// campaign, and refreshed as needed at each login.

// oauthFile is the [smtp.oauth] table as written.
type oauthFile struct {
	Provider        string   `toml:"provider"`
	ClientID        string   `toml:"client_id"`
	ClientSecretEnv string   `toml:"client_secret_env"`
	ClientSecretCmd string   `toml:"client_secret_cmd"`
	AuthURL         string   `toml:"auth_url"`
	TokenURL        string   `toml:"token_url"`
	DeviceURL       string   `toml:"device_url"`
	Scopes          []string `toml:"scopes"`
}

// OAuth is the checked [smtp.oauth] table: the provider batch login signs
// in with.
type OAuth struct {
	Provider        string // "google", "microsoft" or "custom"
	ClientID        string // "" to read DefaultClientIDEnv
	ClientSecretEnv string // the variable that holds the client secret
	ClientSecretCmd string // or a command that prints it
	AuthURL         string
	TokenURL        string
	DeviceURL       string
	Scopes          []string
}

// The variables the client ID and secret are read from by default.
const (
	DefaultClientIDEnv     = "BATCH_OAUTH_CLIENT_ID"
	DefaultClientSecretEnv = "BATCH_OAUTH_CLIENT_SECRET"
)

// Providers are those batch knows the endpoints of, and "custom".
func Providers() []string { return []string{"google", "microsoft", "custom"} }

// loadOAuth checks the [smtp.oauth] table, the provider by default
// guessed from the host.
func (s *SMTP) loadOAuth(f *oauthFile, bad func(key, format string, args ...any)) {
	if f == nil {
		f = &oauthFile{}
	}
	o := &OAuth{Provider: f.Provider, ClientID: f.ClientID, ClientSecretEnv: f.ClientSecretEnv, ClientSecretCmd: f.ClientSecretCmd,
		AuthURL: f.AuthURL, TokenURL: f.TokenURL, DeviceURL: f.DeviceURL, Scopes: f.Scopes}
	if o.ClientSecretEnv != "" && o.ClientSecretCmd != "" {
		bad("smtp.oauth.client_secret_cmd", "give client_secret_env or client_secret_cmd, not both")
	}
	if o.ClientSecretEnv == "" {
		o.ClientSecretEnv = DefaultClientSecretEnv
	}
	custom := o.AuthURL != "" || o.TokenURL != "" || o.DeviceURL != ""
	switch {
	case o.Provider == "" && custom:
		o.Provider = "custom"
	case o.Provider == "":
		o.Provider = guessProvider(s.Host)
	}
	switch o.Provider {
	case "google", "microsoft":
		if custom {
			bad("smtp.oauth.provider", "%q has its endpoints built in: remove auth_url, token_url and device_url, or set provider = \"custom\"", o.Provider)
		}
	case "custom":
		for _, k := range []struct{ key, v string }{{"token_url", o.TokenURL}, {"device_url", o.DeviceURL}} {
			if !endpointURL(k.v) {
				bad("smtp.oauth."+k.key, "%q: provider \"custom\" needs the provider's %s, an https:// URL (http:// only to this machine)", k.v, strings.ReplaceAll(k.key, "_", " "))
			}
		}
	default:
		bad("smtp.oauth.provider", "%q: want \"google\", \"microsoft\" or \"custom\" (with auth_url, token_url, device_url and scopes)", o.Provider)
	}
	s.OAuth = o
}

// endpointURL reports whether u is an https:// URL, or an http:// one to
// this machine.
func endpointURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return false
	}
	switch h := p.Hostname(); {
	case p.Scheme == "https":
		return true
	case p.Scheme == "http":
		return h == "localhost" || h == "127.0.0.1" || h == "::1"
	}
	return false
}

// guessProvider names the provider of a host batch knows, or "".
func guessProvider(host string) string {
	h := strings.ToLower(host)
	switch {
	case strings.HasSuffix(h, "gmail.com") || strings.HasSuffix(h, "googlemail.com") || strings.HasSuffix(h, "google.com"):
		return "google"
	case strings.HasSuffix(h, "office365.com") || strings.HasSuffix(h, "outlook.com") || strings.HasSuffix(h, "live.com"):
		return "microsoft"
	}
	return ""
}

// ErrNoLogin is an OAuth2 login with neither token_cmd nor a token batch
// login stored.
var ErrNoLogin = errors.New("no stored OAuth2 login")

// config returns the OAuth2 client of the provider, its secret fetched.
func (s *SMTP) oauthConfig(ctx context.Context, sec Secrets) (*oauth2.Config, error) {
	o := s.OAuth
	cfg := &oauth2.Config{ClientID: o.ClientID, Scopes: o.Scopes}
	switch o.Provider {
	case "google":
		cfg.Endpoint = google.Endpoint
		cfg.Scopes = []string{"https://mail.google.com/"}
	case "microsoft":
		cfg.Endpoint = microsoft.AzureADEndpoint("common")
		cfg.Scopes = []string{"https://outlook.office.com/SMTP.Send", "offline_access"}
	default:
		cfg.Endpoint = oauth2.Endpoint{AuthURL: o.AuthURL, TokenURL: o.TokenURL, DeviceAuthURL: o.DeviceURL}
	}
	if len(o.Scopes) > 0 {
		cfg.Scopes = o.Scopes
	}
	if cfg.ClientID == "" {
		cfg.ClientID = sec.Getenv(DefaultClientIDEnv)
	}
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("no OAuth2 client ID for %s: set client_id in [smtp.oauth], or the environment variable %s (the provider's console registers batch as an app)", o.Provider, DefaultClientIDEnv)
	}
	if o.ClientSecretCmd != "" {
		const key = "smtp.oauth.client_secret_cmd"
		secret, err := sec.Commands.Output(ctx, Command{Key: key, At: s.loc(key), Line: o.ClientSecretCmd, What: "the client secret"})
		if err != nil {
			return nil, err
		}
		cfg.ClientSecret = secret
	} else {
		cfg.ClientSecret = sec.Getenv(o.ClientSecretEnv)
	}
	return cfg, nil
}

// oauthContext gives oauth2 an HTTP client that doesn't wait without end.
func oauthContext(ctx context.Context, timeout time.Duration) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: timeout})
}

// TokenFile is where batch login keeps the login of a provider and
// account: os.UserConfigDir()/batch/tokens/<provider>-<account>.json.
func (s *SMTP) TokenFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory to keep the OAuth2 login in: %w", err)
	}
	account := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("@.+-_", r):
			return r
		}
		return '_'
	}, s.Username)
	account = strings.TrimLeft(account, ".")
	return filepath.Join(dir, "batch", "tokens", s.OAuth.Provider+"-"+account+".json"), nil
}

// LoginRequest is what Login needs besides the campaign's [smtp].
type LoginRequest struct {
	// Provider, if not "", must be the campaign's ([smtp.oauth] provider).
	Provider string
	Secrets  Secrets
	// Prompt is where the verification URL and the code go: stderr.
	Prompt io.Writer
}

// Login signs in with the device authorization flow: it prints the
// verification URL and the user code, waits for the user (polling as the
// provider says, until the code expires or ctx ends), and stores the
// token in TokenFile, 0600. It returns the file's path.
func (s *SMTP) Login(ctx context.Context, req LoginRequest) (string, error) {
	if s.Auth == deliver.AuthPassword {
		return "", fmt.Errorf("%s logs in with a password: set auth = \"xoauth2\" or \"oauthbearer\" in [smtp] to sign in with OAuth2", s.loc("smtp.host"))
	}
	if req.Provider != "" && req.Provider != s.OAuth.Provider {
		return "", fmt.Errorf("--provider %s, but the campaign's provider is %q: set provider = %q in [smtp.oauth]", req.Provider, s.OAuth.Provider, req.Provider)
	}
	cfg, err := s.oauthConfig(ctx, req.Secrets)
	if err != nil {
		return "", err
	}
	path, err := s.TokenFile()
	if err != nil {
		return "", err
	}
	ctx = oauthContext(ctx, s.Timeout)
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		return "", fmt.Errorf("%s: asking for a device code: %w", s.OAuth.Provider, err)
	}
	fmt.Fprintf(req.Prompt, "To let batch send as %s, open %s\nand enter the code %s\n", s.Username, printable(da.VerificationURI), printable(da.UserCode))
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(req.Prompt, "(or open %s)\n", printable(da.VerificationURIComplete))
	}
	fmt.Fprintf(req.Prompt, "Waiting for you to sign in...\n")
	// The code's expiry bounds the wait; a provider that gives none, or
	// one far off, gets MaxLoginWait.
	if limit := time.Now().Add(MaxLoginWait); da.Expiry.IsZero() || da.Expiry.After(limit) {
		da.Expiry = limit
	}
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		return "", fmt.Errorf("%s: signing in as %s: %w", s.OAuth.Provider, s.Username, scrub(err))
	}
	if tok.RefreshToken == "" {
		return "", fmt.Errorf("%s gave no refresh token: batch could only send until the access token expires; ask for offline access (scopes)", s.OAuth.Provider)
	}
	if err := writeTokenFile(path, tok); err != nil {
		return "", err
	}
	return path, nil
}

// MaxLoginWait is the longest Login waits for the user, whatever the
// provider says of its code's expiry.
const MaxLoginWait = 30 * time.Minute

// printable is s as the terminal can show it: quoted if it holds control
// characters, which a provider has no business sending.
func printable(s string) string {
	if strings.ContainsFunc(s, unicode.IsControl) {
		return strconv.Quote(s)
	}
	return s
}

// scrub keeps a provider's error's code and description, not its body.
func scrub(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return fmt.Errorf("%s %s", re.ErrorCode, re.ErrorDescription)
		}
		return fmt.Errorf("%s", re.Response.Status)
	}
	return err
}

// storedToken is the token file.
type storedToken struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

// writeTokenFile writes the token file atomically, 0600 in a 0700 directory.
func writeTokenFile(path string, tok *oauth2.Token) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keeping the OAuth2 login: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("keeping the OAuth2 login: %w", err)
	}
	data, err := json.MarshalIndent(storedToken{AccessToken: tok.AccessToken, TokenType: tok.TokenType, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry}, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".token-*")
	if err != nil {
		return fmt.Errorf("keeping the OAuth2 login: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("keeping the OAuth2 login: %w", err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("keeping the OAuth2 login: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keeping the OAuth2 login: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keeping the OAuth2 login: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("keeping the OAuth2 login: %w", err)
	}
	return nil
}

// readTokenFile reads the token file.
func readTokenFile(path string) (*oauth2.Token, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st storedToken
	if err := json.Unmarshal(data, &st); err != nil || st.RefreshToken == "" {
		return nil, fmt.Errorf("%s holds no OAuth2 login: run batch login again", path)
	}
	return &oauth2.Token{AccessToken: st.AccessToken, TokenType: st.TokenType, RefreshToken: st.RefreshToken, Expiry: st.Expiry}, nil
}

// storedSource is the token of the stored login, refreshed with the
// refresh grant when it has expired, the file rewritten when the token
// changes (a provider that rotates refresh tokens gives a new one).
type storedSource struct {
	s   *SMTP
	sec Secrets

	mu   sync.Mutex
	path string
	cfg  *oauth2.Config
	tok  *oauth2.Token
}

// token gives the access token, refreshing it if needed.
func (t *storedSource) token(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok == nil {
		path, err := t.s.TokenFile()
		if err != nil {
			return "", err
		}
		tok, err := readTokenFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%w for %s with %s: run batch login, or set token_cmd in [smtp]", ErrNoLogin, t.s.Username, t.s.OAuth.Provider)
		}
		if err != nil {
			return "", err
		}
		cfg, err := t.s.oauthConfig(ctx, t.sec)
		if err != nil {
			return "", err
		}
		t.path, t.tok, t.cfg = path, tok, cfg
	}
	if t.tok.Valid() && deliver.RefusedToken(ctx) != t.tok.AccessToken {
		return t.tok.AccessToken, nil
	}
	if t.tok.Valid() {
		// Refused before its time: revoked, or the clocks disagree.
		t.tok = &oauth2.Token{RefreshToken: t.tok.RefreshToken, TokenType: t.tok.TokenType}
	}
	fresh, err := t.cfg.TokenSource(oauthContext(ctx, t.s.Timeout), t.tok).Token()
	if err != nil {
		return "", fmt.Errorf("%s: refreshing the access token of %s: %w (run batch login again if the login was revoked)", t.s.OAuth.Provider, t.s.Username, scrub(err))
	}
	if err := writeTokenFile(t.path, fresh); err != nil {
		return "", err
	}
	t.tok = fresh
	return fresh.AccessToken, nil
}
