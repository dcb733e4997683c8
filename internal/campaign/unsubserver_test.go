package campaign

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/suppress"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

// tokenCampaign is a campaign with a suppression list and unsubscribe
// tokens, its secret read from BATCH_TEST_SECRET = secret.
func tokenCampaign(t *testing.T, name, secret string) *Campaign {
	t.Helper()
	text := strings.Replace(minimal, `"2026-11-test"`, `"`+name+`"`, 1) + `suppress = "suppressed.csv"
[unsubscribe]
url = "https://example.org/u"
token = true
secret_env = "BATCH_TEST_SECRET"
`
	c, _, err := load(t, text, map[string]string{"list.csv": "email,name\nAda@Example.org,Ada\nbob@example.net,Bob\n", "news.md": "Hi {{.name}}\n"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	getenv := func(k string) string {
		if k == "BATCH_TEST_SECRET" {
			return secret
		}
		return ""
	}
	if err := c.ReadSecret(context.Background(), Secrets{Getenv: getenv}); err != nil {
		t.Fatal(err)
	}
	return c
}

// linkOf returns the campaign's unsubscribe link for addr.
func linkOf(t *testing.T, c *Campaign, addr string) *url.URL {
	t.Helper()
	s, err := c.Unsubscribe.link(addr, map[string]string{"email": addr})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// suppressedOf returns the reason addr is on c's list, "" for none.
func suppressedOf(t *testing.T, c *Campaign, addr string) suppress.Reason {
	t.Helper()
	l, err := suppress.Open(c.Suppress)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := l.Has(addr)
	return e.Reason
}

func serve(t *testing.T, h http.Handler, method, target, body string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func handlerOf(t *testing.T, c *Campaign) http.Handler {
	t.Helper()
	h, err := c.UnsubscribeHandler(func(err error) { t.Errorf("warned: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestUnsubscribeOneClick: RFC 8058's POST to a recipient's link adds the
// address to the list as unsubscribed; a GET only shows the button.
func TestUnsubscribeOneClick(t *testing.T) {
	c := tokenCampaign(t, "news", testSecret)
	h := handlerOf(t, c)
	link := linkOf(t, c, "Ada@Example.org")
	if link.Host != "example.org" || link.Path != "/u" || link.Query().Get("t") == "" {
		t.Fatalf("link %s", link)
	}

	code, page := serve(t, h, http.MethodGet, link.RequestURI(), "")
	if code != http.StatusOK || !strings.Contains(page, `<form method="post">`) || !strings.Contains(page, "Ada@Example.org") {
		t.Errorf("GET: %d\n%s", code, page)
	}
	if r := suppressedOf(t, c, "ada@example.org"); r != "" {
		t.Fatalf("a GET suppressed the address (%s)", r)
	}

	code, page = serve(t, h, http.MethodPost, link.RequestURI(), "List-Unsubscribe=One-Click")
	if code != http.StatusOK {
		t.Errorf("POST: %d\n%s", code, page)
	}
	if r := suppressedOf(t, c, "ada@example.org"); r != suppress.Unsubscribed {
		t.Errorf("after the POST the address is suppressed as %q, want unsubscribed", r)
	}
	if r := suppressedOf(t, c, "bob@example.net"); r != "" {
		t.Errorf("bob, who didn't unsubscribe, is suppressed as %q", r)
	}
	// Again: the list keeps its one line.
	if code, _ := serve(t, h, http.MethodPost, link.RequestURI(), "List-Unsubscribe=One-Click"); code != http.StatusOK {
		t.Errorf("second POST: %d", code)
	}
	data, err := os.ReadFile(c.Suppress)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.ToLower(string(data)), "ada@example.org"); n != 1 {
		t.Errorf("the list has the address %d times:\n%s", n, data)
	}
}

// TestUnsubscribeForged: a token batch didn't write for this campaign and
// address gets 400 and adds nothing.
func TestUnsubscribeForged(t *testing.T) {
	c := tokenCampaign(t, "news", testSecret)
	h := handlerOf(t, c)
	ada := linkOf(t, c, "ada@example.org").Query().Get("t")
	other := tokenCampaign(t, "other-news", testSecret)       // same secret, other campaign
	stranger := tokenCampaign(t, "news", testSecret+"-other") // same campaign, other secret
	adaMAC := ada[strings.Index(ada, "."):]
	for _, tc := range []struct{ name, token string }{
		{"missing", ""},
		{"no dot", "YWRhQGV4YW1wbGUub3Jn"},
		{"not base64", "!!!.???"},
		{"other campaign", linkOf(t, other, "ada@example.org").Query().Get("t")},
		{"other secret", linkOf(t, stranger, "ada@example.org").Query().Get("t")},
		{"tampered address", "Ym9iQGV4YW1wbGUubmV0" + adaMAC}, // bob@example.net with ada's MAC
		{"MAC cut short", ada[:len(ada)-4]},
		{"huge", strings.Repeat("A", 5000) + adaMAC},
	} {
		target := "/u?t=" + url.QueryEscape(tc.token)
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			code, page := serve(t, h, method, target, "List-Unsubscribe=One-Click")
			if code != http.StatusBadRequest || !strings.Contains(page, "not valid") {
				t.Errorf("%s, %s: %d\n%s", tc.name, method, code, page)
			}
		}
	}
	if _, err := os.Stat(c.Suppress); !errors.Is(err, os.ErrNotExist) {
		data, _ := os.ReadFile(c.Suppress)
		t.Errorf("forged tokens wrote the list:\n%s", data)
	}
	if _, err := c.Unsubscribe.Verify("Ym9iQGV4YW1wbGUubmV0" + adaMAC); !errors.Is(err, ErrBadToken) {
		t.Errorf("Verify of a tampered token: %v, want ErrBadToken", err)
	}
	if got, err := c.Unsubscribe.Verify(ada); err != nil || got != "ada@example.org" {
		t.Errorf("Verify of ada's token: %q, %v", got, err)
	}
}

// TestUnsubscribeBadRequests: a POST without the one-click body, a body too
// large and another method add nothing.
func TestUnsubscribeBadRequests(t *testing.T) {
	c := tokenCampaign(t, "news", testSecret)
	h := handlerOf(t, c)
	target := linkOf(t, c, "ada@example.org").RequestURI()
	for _, tc := range []struct {
		method, body string
		code         int
	}{
		{http.MethodPost, "", http.StatusBadRequest},
		{http.MethodPost, "List-Unsubscribe=Two-Clicks", http.StatusBadRequest},
		{http.MethodPost, "x=" + strings.Repeat("a", 10000) + "&List-Unsubscribe=One-Click", http.StatusRequestEntityTooLarge},
		{http.MethodPut, "List-Unsubscribe=One-Click", http.StatusMethodNotAllowed},
	} {
		if code, page := serve(t, h, tc.method, target, tc.body); code != tc.code {
			t.Errorf("%s %.40q: %d, want %d\n%s", tc.method, tc.body, code, tc.code, page)
		}
	}
	if r := suppressedOf(t, c, "ada@example.org"); r != "" {
		t.Errorf("suppressed as %q", r)
	}
}

// TestUnsubscribeHandlerRefused: a campaign without a list or without
// tokens can't be served, and says what to add.
func TestUnsubscribeHandlerRefused(t *testing.T) {
	c := tokenCampaign(t, "news", testSecret)
	c.Suppress = ""
	if _, err := c.UnsubscribeHandler(nil); !errors.Is(err, ErrNoSuppressionList) || !strings.Contains(err.Error(), `add suppress = "../suppressed.csv"`) {
		t.Errorf("no list: %v", err)
	}
	plain := newCampaign(t, goodList, goodBody, "suppress = \"s.csv\"\n[unsubscribe]\nurl = \"https://example.org/u?e={{.email}}\"\n", nil)
	if _, err := plain.UnsubscribeHandler(nil); !errors.Is(err, ErrNoToken) || !strings.Contains(err.Error(), "add token = true") {
		t.Errorf("no token: %v", err)
	}
}

// TestUnsubscribeSecret: the secret's keys, and a secret that is missing,
// too short, or written in the file.
func TestUnsubscribeSecret(t *testing.T) {
	for _, tc := range []struct{ more, want string }{
		{"[unsubscribe]\nurl = \"https://example.org/u\"\ntoken = true\n", "unsubscribe.token: needs a secret"},
		{"[unsubscribe]\nurl = \"https://example.org/u\"\nsecret_env = \"S\"\n", "secret_env and secret_cmd go with token = true"},
		{"[unsubscribe]\nmailto = \"u@example.org\"\ntoken = true\nsecret_env = \"S\"\n", "unsubscribe.token: goes with url"},
		{"[unsubscribe]\nurl = \"https://example.org/u\"\ntoken = true\nsecret_env = \"S\"\nsecret_cmd = \"echo\"\n", "give secret_env or secret_cmd, not both"},
		{"[unsubscribe]\nurl = \"https://example.org/u\"\ntoken = true\nsecret = \"hunter2\"\n", "unsubscribe.secret: a secret can't be kept in the campaign file"},
	} {
		_, _, err := load(t, minimal+tc.more, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.more, err, tc.want)
		}
	}

	c := newCampaign(t, goodList, goodBody, "[unsubscribe]\nurl = \"https://example.org/u\"\ntoken = true\nsecret_cmd = \"echo short\"\n", nil)
	if err := c.ReadSecret(context.Background(), Secrets{Getenv: func(string) string { return "" }}); err == nil || !strings.Contains(err.Error(), "the unsubscribe secret is 5 bytes: give at least 32") {
		t.Errorf("short secret: %v", err)
	}
	c = newCampaign(t, goodList, goodBody, "[unsubscribe]\nurl = \"https://example.org/u\"\ntoken = true\nsecret_cmd = \"exit 3\"\n", nil)
	var ce *CommandError
	if err := c.ReadSecret(context.Background(), Secrets{}); !errors.As(err, &ce) || ce.Key != "unsubscribe.secret_cmd" {
		t.Errorf("failing secret_cmd: %v", err)
	}
	c = newCampaign(t, goodList, goodBody, "[unsubscribe]\nurl = \"https://example.org/u\"\ntoken = true\nsecret_cmd = \"echo "+testSecret+"\"\n", nil)
	if err := c.ReadSecret(context.Background(), Secrets{}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Unsubscribe.Verify(linkOf(t, c, "ada@example.org").Query().Get("t")); err != nil || got != "ada@example.org" {
		t.Errorf("secret_cmd's token: %q, %v", got, err)
	}
	c = newCampaign(t, goodList, goodBody, "[unsubscribe]\nurl = \"https://example.org/u\"\ntoken = true\nsecret_env = \"NOPE\"\n", nil)
	if err := c.ReadSecret(context.Background(), Secrets{Getenv: func(string) string { return "" }}); err == nil || !strings.Contains(err.Error(), "c.toml:") || !strings.Contains(err.Error(), "the environment variable NOPE is not set") {
		t.Errorf("unset secret_env: %v", err)
	}
}

// TestUnsubscribeTokenLink: t= joins a query the URL has, before its
// fragment, and the message's List-Unsubscribe carries it.
func TestUnsubscribeTokenLink(t *testing.T) {
	for _, tc := range []struct{ link, want string }{
		{"https://e.org/u", "https://e.org/u?t=TOK"},
		{"https://e.org/u?a=1", "https://e.org/u?a=1&t=TOK"},
		{"https://e.org/u?", "https://e.org/u?t=TOK"},
		{"https://e.org/u?a=1#x", "https://e.org/u?a=1&t=TOK#x"},
	} {
		if got := withToken(tc.link, "TOK"); got != tc.want {
			t.Errorf("withToken(%q) = %q, want %q", tc.link, got, tc.want)
		}
	}

	c := tokenCampaign(t, "news", testSecret)
	rec := &recorder{}
	if _, err := c.Send(context.Background(), rec.open, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	lu := fieldOf(t, rec.msgs[0].Data, "List-Unsubscribe")
	u, err := url.Parse(strings.Trim(lu, "<>"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Unsubscribe.Verify(u.Query().Get("t")); err != nil || got != "Ada@Example.org" {
		t.Errorf("List-Unsubscribe %q: token of %q, %v", lu, got, err)
	}
}

// BenchmarkUnsubscribeToken is what token = true adds to each message:
// the link with its MAC, and the server's check of it.
func BenchmarkUnsubscribeToken(b *testing.B) {
	u := &Unsubscribe{Token: true, key: []byte(testSecret), campaign: "news"}
	var tok string
	b.Run("make", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tok = u.token("ada.lovelace@example.org")
		}
	})
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := u.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
