package main

import (
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const unsubscribeSecret = "a-test-secret-of-more-than-32-bytes-0123456789"

// unsubscribeFixture is a campaign whose unsubscribe links carry tokens,
// with a suppression list.
func unsubscribeFixture(suppress string) map[string]string {
	return map[string]string{
		"c.toml": `name = "2026-12-unsub"
from = "Example News <news@example.org>"
subject = "News for {{.name}}"
template = "news.md"
recipients = "list.csv"
` + suppress + `
[unsubscribe]
url = "https://news.example.org/unsubscribe"
token = true
secret_env = "BATCH_UNSUBSCRIBE_SECRET"
`,
		"news.md":  "Hello {{.name}}\n",
		"list.csv": "email,name\nada@example.org,Ada\nbob@example.net,Bob\n",
	}
}

// TestUnsubscribeServer: a dry run's message carries the token link in
// List-Unsubscribe; batch unsubscribe-server, a process, takes the
// one-click POST of that link and the list then has the address, while a
// forged token gets 400.
func TestUnsubscribeServer(t *testing.T) {
	dir := writeDir(t, unsubscribeFixture(`suppress = "suppressed.csv"`))
	path := filepath.Join(dir, "c.toml")
	env := map[string]string{"BATCH_UNSUBSCRIBE_SECRET": unsubscribeSecret}
	out := filepath.Join(dir, "out")
	if code, stdout, stderr := batch(t, env, "send", "--dry-run", out, path); code != 0 {
		t.Fatalf("dry run: exit %d\n%s%s", code, stdout, stderr)
	}
	emls, err := filepath.Glob(filepath.Join(out, "*.eml"))
	if err != nil || len(emls) != 2 {
		t.Fatalf("dry run wrote %v (%v)", emls, err)
	}
	f, err := os.Open(emls[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msg, err := mail.ReadMessage(f)
	if err != nil {
		t.Fatal(err)
	}
	if to := msg.Header.Get("To"); !strings.Contains(to, "ada@example.org") {
		t.Fatalf("the first message is to %q", to)
	}
	m := regexp.MustCompile(`^<(https://news\.example\.org/unsubscribe\?t=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43})>$`).FindStringSubmatch(msg.Header.Get("List-Unsubscribe"))
	if m == nil {
		t.Fatalf("List-Unsubscribe: %q, want the token URL", msg.Header.Get("List-Unsubscribe"))
	}
	if p := msg.Header.Get("List-Unsubscribe-Post"); p != "List-Unsubscribe=One-Click" {
		t.Errorf("List-Unsubscribe-Post: %q", p)
	}
	link, err := url.Parse(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(link.String(), "ada@") {
		t.Errorf("the link shows the address in clear: %s", link)
	}

	t.Setenv("BATCH_UNSUBSCRIBE_SECRET", unsubscribeSecret)
	p := startBatch(t, "unsubscribe-server", "--listen", "127.0.0.1:0", path)
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/$`).MatchString(p.url) {
		t.Fatalf("the server is at %s, want http://127.0.0.1:PORT/", p.url)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(target string) int {
		t.Helper()
		r, err := client.Post(strings.TrimSuffix(p.url, "/")+target, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	// bob's address with ada's MAC
	forged := link.Query().Get("t")
	forged = "Ym9iQGV4YW1wbGUubmV0" + forged[strings.Index(forged, "."):]
	if code := post("/unsubscribe?t=" + forged); code != http.StatusBadRequest {
		t.Errorf("forged token: %d, want 400", code)
	}
	if code := post(link.RequestURI()); code != http.StatusOK {
		t.Errorf("one-click POST: %d, want 200", code)
	}
	p.stop(t)

	code, stdout, _ := batch(t, nil, "suppress", "list", path)
	if code != 0 || !regexp.MustCompile(`(?m)^ada@example\.org,unsubscribed,20[-0-9T:]+Z,2026-12-unsub,$`).MatchString(stdout) || strings.Contains(stdout, "bob@") {
		t.Errorf("suppress list: exit %d\n%s", code, stdout)
	}
}

// TestUnsubscribeServerRefused: the server doesn't start for a campaign
// without a suppression list, or without its secret, and says what to do.
func TestUnsubscribeServerRefused(t *testing.T) {
	path := filepath.Join(writeDir(t, unsubscribeFixture("")), "c.toml")
	code, _, stderr := batch(t, map[string]string{"BATCH_UNSUBSCRIBE_SECRET": unsubscribeSecret}, "unsubscribe-server", path)
	if code != exitProblem || !strings.Contains(stderr, `has no suppression list: add suppress = "../suppressed.csv"`) {
		t.Errorf("no list: exit %d\n%s", code, stderr)
	}
	path = filepath.Join(writeDir(t, unsubscribeFixture(`suppress = "suppressed.csv"`)), "c.toml")
	code, _, stderr = batch(t, nil, "unsubscribe-server", path)
	if code != exitProblem || !strings.Contains(stderr, "the environment variable BATCH_UNSUBSCRIBE_SECRET is not set") {
		t.Errorf("no secret: exit %d\n%s", code, stderr)
	}
	code, _, stderr = batch(t, nil, "send", "--dry-run", t.TempDir(), path)
	if code != exitProblem || !strings.Contains(stderr, "the environment variable BATCH_UNSUBSCRIBE_SECRET is not set") {
		t.Errorf("dry run without the secret: exit %d\n%s", code, stderr)
	}
}
