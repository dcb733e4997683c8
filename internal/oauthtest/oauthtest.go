// Package oauthtest provides an OAuth2 provider for the tests of OAuth2
// clients, as net/http/httptest does for HTTP: a non-test package that only
// tests import.
//
// Start starts one on 127.0.0.1 with the two endpoints of the device
// authorization flow (RFC 8628) for one client: the device authorization
// endpoint (DeviceURL), which hands out a device code and a user code, and
// the token endpoint (TokenURL), which answers the device code's polls
// with authorization_pending a number of times (Pending) and then with an
// access token and a refresh token, and takes the refresh grant (RFC 6749
// section 6), rotating the refresh token at each. One access token is
// valid at a time (Current), which a test server's check takes; Revoke
// makes it invalid before its expiry, as a provider may.
//
// The provider records the grants it was asked for (Grants).
package oauthtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// The codes the provider hands out.
const (
	DeviceCode = "dev-code-1"
	UserCode   = "WDJB-MJHT"
	// VerificationURI is where the user is told to go.
	VerificationURI = "https://login.example.org/activate"
)

// Provider is a running OAuth2 provider.
type Provider struct {
	srv      *httptest.Server
	clientID string
	secret   string

	mu      sync.Mutex
	pending int // polls left to answer authorization_pending
	issued  int // access tokens issued
	access  string
	refresh string
	grants  []string
}

// Start starts a provider for the client clientID with secret ("" for a
// public client), answering the first pending polls of the device code
// with authorization_pending. It is closed when the test ends.
func Start(t testing.TB, clientID, secret string, pending int) *Provider {
	p := &Provider{clientID: clientID, secret: secret, pending: pending}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /device", p.device)
	mux.HandleFunc("POST /token", p.token)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// DeviceURL is the device authorization endpoint.
func (p *Provider) DeviceURL() string { return p.srv.URL + "/device" }

// TokenURL is the token endpoint.
func (p *Provider) TokenURL() string { return p.srv.URL + "/token" }

// AuthURL is the authorization endpoint, which the device flow doesn't use.
func (p *Provider) AuthURL() string { return p.srv.URL + "/authorize" }

// Current is the access token valid now; "" before the first.
func (p *Provider) Current() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.access
}

// Revoke makes the current access token invalid; the refresh token stays.
func (p *Provider) Revoke() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.access = "revoked"
}

// RevokedAt returns a check of tokens for an SMTP test server (the
// Token of smtptest.Auth): the current access token, revoked as the nth
// login asks for it, so that a send must refresh it part way.
func (p *Provider) RevokedAt(n int) func() string {
	var mu sync.Mutex
	checks := 0
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		if checks++; checks == n {
			p.Revoke()
		}
		return p.Current()
	}
}

// Grants lists the token endpoint's requests: "device_code pending",
// "device_code", "refresh_token ref-1", "refresh_token ref-0 refused".
func (p *Provider) Grants() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.grants...)
}

// client checks the request's client, in the form or HTTP basic auth.
func (p *Provider) client(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	return id == p.clientID && secret == p.secret
}

// device answers the device authorization request, which names the client
// without its secret (RFC 8628 section 3.1).
func (p *Provider) device(w http.ResponseWriter, r *http.Request) {
	if r.PostFormValue("client_id") != p.clientID {
		reply(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client"})
		return
	}
	reply(w, http.StatusOK, map[string]any{
		"device_code": DeviceCode, "user_code": UserCode, "verification_uri": VerificationURI,
		"expires_in": 60, "interval": 1,
	})
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if !p.client(r) {
		reply(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client"})
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch grant := r.PostFormValue("grant_type"); grant {
	case "urn:ietf:params:oauth:grant-type:device_code":
		if r.PostFormValue("device_code") != DeviceCode || p.issued > 0 {
			p.grants = append(p.grants, "device_code refused")
			reply(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant"})
			return
		}
		if p.pending > 0 {
			p.pending--
			p.grants = append(p.grants, "device_code pending")
			reply(w, http.StatusBadRequest, map[string]any{"error": "authorization_pending"})
			return
		}
		p.grants = append(p.grants, "device_code")
		p.issue(w)
	case "refresh_token":
		got := r.PostFormValue("refresh_token")
		if got == "" || got != p.refresh {
			p.grants = append(p.grants, "refresh_token "+got+" refused")
			reply(w, http.StatusBadRequest, map[string]any{"error": "invalid_grant", "error_description": "the refresh token was revoked"})
			return
		}
		p.grants = append(p.grants, "refresh_token "+got)
		p.issue(w)
	default:
		reply(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type"})
	}
}

// issue answers with a new access token and refresh token, which replace
// the old ones. p.mu is held.
func (p *Provider) issue(w http.ResponseWriter) {
	p.issued++
	p.access = fmt.Sprintf("acc-%d", p.issued)
	p.refresh = fmt.Sprintf("ref-%d", p.issued)
	reply(w, http.StatusOK, map[string]any{
		"access_token": p.access, "refresh_token": p.refresh, "token_type": "Bearer", "expires_in": 3600,
	})
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
