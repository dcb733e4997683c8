package deliver

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/batch-mailer/batch/internal/smtptest"
)

// tokenServer is a server that takes testUser's login by mech only, with
// the access token it holds now.
func tokenServer(t *testing.T, mech string) (*testServer, *atomic.Value) {
	t.Helper()
	current := &atomic.Value{}
	current.Store("tok-1")
	ts := &testServer{auth: &smtptest.Auth{Username: testUser, Mechanisms: []string{mech}, Token: func() string { return current.Load().(string) }}}
	ts.Server = smtptest.Start(t, smtptest.StartTLS(certs(t).good), smtptest.WithAuth(*ts.auth))
	return ts, current
}

// tokens gives the tokens of seq in turn, the last one for ever after,
// and counts the calls.
type tokens struct {
	mu    sync.Mutex
	seq   []string
	calls int
	// refused is RefusedToken at each call.
	refused []string
}

func (k *tokens) get(ctx context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls++
	k.refused = append(k.refused, RefusedToken(ctx))
	return k.seq[min(k.calls, len(k.seq))-1], nil
}

func tokenConfig(t *testing.T, ts *testServer, auth Auth, k *tokens) SMTPConfig {
	cfg := ts.config(t, StartTLS)
	cfg.Username, cfg.Password = testUser, ""
	cfg.Auth, cfg.Token = auth, k.get
	return cfg
}

// TestSMTPTokenRefreshed: the token expires between two connections; the
// next one's login is refused, the token fetched again and the login
// retried, and every message goes once, the token never in the transcript.
func TestSMTPTokenRefreshed(t *testing.T) {
	for _, tc := range []struct {
		mech string
		auth Auth
	}{{"XOAUTH2", AuthXOAUTH2}, {"OAUTHBEARER", AuthOAuthBearer}} {
		t.Run(tc.mech, func(t *testing.T) {
			ts, current := tokenServer(t, tc.mech)
			// The second login still gets the old token, as a cache would
			// give it; the third call gets the new one.
			k := &tokens{seq: []string{"tok-1", "tok-1", "tok-2"}}
			cfg := tokenConfig(t, ts, tc.auth, k)
			cfg.MaxPerConnection = 2
			var debug bytes.Buffer
			cfg.Debug = &debug
			msgs := testMessages(6)
			s, o := sendEach(t, cfg, msgs, func(i int) {
				if i == 1 {
					current.Store("tok-2")
				}
			})
			o.allSent(t, msgs)
			conns, got := ts.snapshot()
			deliveredOnce(t, got, msgs)
			if s.Dials() != 3 || k.calls != 4 {
				t.Errorf("%d dials, the token asked %d times; want 3 and 4 (once more for the refused one)", s.Dials(), k.calls)
			}
			if want := []string{"", "", "tok-1", ""}; !slices.Equal(k.refused, want) {
				t.Errorf("RefusedToken at each ask %q, want %q: the refused token told only when asked again", k.refused, want)
			}
			var auths []string
			for _, c := range conns {
				auths = append(auths, c.Auths...)
			}
			want := []string{testUser, testUser + " (token refused)", testUser, testUser}
			if !slices.Equal(auths, want) {
				t.Errorf("the server saw logins %q, want %q", auths, want)
			}
			out := debug.String()
			if !strings.Contains(out, "C: AUTH "+tc.mech+" ***") {
				t.Errorf("the transcript has no %q:\n%s", "AUTH "+tc.mech+" ***", out)
			}
			for _, secret := range []string{"tok-1", "tok-2", base64.StdEncoding.EncodeToString([]byte("tok-1")), "auth=Bearer"} {
				if strings.Contains(out, secret) {
					t.Errorf("the transcript shows %q:\n%s", secret, out)
				}
			}
		})
	}
}

// TestSMTPTokenRefusedTwice: a token refused, and the fresh one too, is
// the username's or the token's fault: the error says so, without the
// token, and nothing is sent.
func TestSMTPTokenRefusedTwice(t *testing.T) {
	for _, tc := range []struct {
		mech string
		auth Auth
	}{{"XOAUTH2", AuthXOAUTH2}, {"OAUTHBEARER", AuthOAuthBearer}} {
		t.Run(tc.mech, func(t *testing.T) {
			ts, _ := tokenServer(t, tc.mech)
			k := &tokens{seq: []string{"stale-token"}}
			ce := dialFails(t, tokenConfig(t, ts, tc.auth, k), "auth")
			if !errors.Is(ce, errTokenRefused) || ce.Hint != HintToken {
				t.Errorf("error %v, hint %q; want the token refused, HintToken", ce, ce.Hint)
			}
			if tc.auth == AuthXOAUTH2 {
				var se *smtp.SMTPError
				if !errors.As(ce, &se) || se.Code != 535 {
					t.Errorf("error %v, want the server's 535 after the error challenge", ce)
				}
			}
			if strings.Contains(ce.Error(), "stale-token") {
				t.Errorf("the error shows the token: %v", ce)
			}
			if k.calls != 2 {
				t.Errorf("the token asked %d times, want 2: once, and once more when refused", k.calls)
			}
			conns, _ := ts.snapshot()
			if len(conns) != 1 || len(conns[0].Auths) != 2 || len(conns[0].Mails) > 0 {
				t.Errorf("server saw %d connections, AUTH as %v, MAIL %v", len(conns), conns[0].Auths, conns[0].Mails)
			}
		})
	}
}

// TestSMTPTokenFails: a token that can't be had stops the login, with
// the Token's error.
func TestSMTPTokenFails(t *testing.T) {
	ts, _ := tokenServer(t, "XOAUTH2")
	cfg := tokenConfig(t, ts, AuthXOAUTH2, nil)
	boom := errors.New("no credentials")
	cfg.Token = func(context.Context) (string, error) { return "", boom }
	ce := dialFails(t, cfg, "auth")
	var te *TokenError
	if !errors.As(ce, &te) || !errors.Is(ce, boom) || ce.Hint != HintNone {
		t.Errorf("error %v, hint %q; want a *TokenError with the Token's, no hint", ce, ce.Hint)
	}
	if conns, _ := ts.snapshot(); len(conns) != 1 || len(conns[0].Auths) != 0 {
		t.Errorf("server saw AUTH as %v, want none", conns[0].Auths)
	}
}

// TestSMTPTokenMechanismNotOffered: XOAUTH2 to a server that offers only
// PLAIN says what it offers.
func TestSMTPTokenMechanismNotOffered(t *testing.T) {
	ts := startServer(t, serverOpts{cert: &certs(t).good, mechs: []string{"PLAIN"}})
	k := &tokens{seq: []string{"tok-1"}}
	ce := dialFails(t, tokenConfig(t, ts, AuthXOAUTH2, k), "auth")
	if !strings.Contains(ce.Error(), "PLAIN") || !strings.Contains(ce.Error(), "XOAUTH2") || k.calls != 0 {
		t.Errorf("error %q, token asked %d times; want what the server offers, no token", ce, k.calls)
	}
}

// TestAuthHintRefusals: the refusals of a password login that name their
// way out.
func TestAuthHintRefusals(t *testing.T) {
	for _, tc := range []struct {
		err  *smtp.SMTPError
		want Hint
	}{
		{&smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 139}, Message: "Authentication unsuccessful, basic authentication is disabled."}, HintBasicAuthDisabled},
		{&smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 30}, Message: "Basic authentication is not supported for Client Submission."}, HintBasicAuthDisabled},
		{&smtp.SMTPError{Code: 534, EnhancedCode: smtp.EnhancedCode{5, 7, 9}, Message: "Application-specific password required."}, HintAppPassword},
		{&smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Username and Password not accepted."}, HintCredentials},
	} {
		if got := authHint(tc.err); got != tc.want {
			t.Errorf("%d %v: hint %q, want %q", tc.err.Code, tc.err.EnhancedCode, got, tc.want)
		}
	}
}

// TestTranscriptHidesToken: an access token, once the transcript knows
// it, is hidden wherever it appears after, in clear or in base64, as the
// password is; XOAUTH2's error challenge and the empty answer too.
func TestTranscriptHidesToken(t *testing.T) {
	const token = "ya29.tok"
	in := strings.Join([]string{
		"AUTH XOAUTH2 " + base64.StdEncoding.EncodeToString([]byte("user=a@example.org\x01auth=Bearer "+token+"\x01\x01")),
		"334 " + base64.StdEncoding.EncodeToString([]byte(`{"status":"401"}`)),
		"",
		"535 5.7.8 bad token " + token,
		"NOOP " + base64.StdEncoding.EncodeToString([]byte(token)),
		"",
	}, "\r\n")
	var out bytes.Buffer
	var mu sync.Mutex
	tr := newTranscript(&out, &mu, 2, "")
	tr.hide(token)
	tr.Write([]byte(in))
	want := strings.Join([]string{
		"[2] C: AUTH XOAUTH2 ***",
		"[2] S: 334 ***",
		"[2] C: ***",
		"[2] S: 535 5.7.8 bad token ***",
		"[2] C: NOOP ***",
		"",
	}, "\n")
	if out.String() != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", out.String(), want)
	}
}
