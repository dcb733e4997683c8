package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/smtptest"
)

// TestStatusAfterFailures sends to a server that refuses one recipient for
// good: send exits 3 and says how to go on, status counts it, status
// --failed gives its row back as CSV with the server's reply, and
// --retry-failed sends to it once more.
func TestStatusAfterFailures(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Fault{Rcpt: "bob@example.net", Stage: smtptest.AtRcpt, Code: 550, Enhanced: [3]int{5, 1, 1}})
	dir := t.TempDir()
	files := map[string]string{
		"c.toml": fmt.Sprintf("name = \"st\"\nfrom = \"News <news@example.org>\"\nsubject = \"Hi {{.name}}\"\n"+
			"template = \"t.md\"\nrecipients = \"r.csv\"\n[smtp]\nhost = \"127.0.0.1\"\nport = %d\nsecurity = \"none\"\n", srv.Port()),
		"t.md":  "Hi {{.name}}\n",
		"r.csv": "email,name,city\nada@example.org,Ada,Paris\nbob@example.net,\"Smith, Bob\",Rome\ncarol@example.com,Carol,Oslo\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "c.toml")
	code, stdout, stderr := batch(t, nil, "send", "--yes", path)
	if code != exitFailed || !strings.Contains(stdout, "sent 2, failed 1, unknown 0") {
		t.Fatalf("send: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "batch status --failed "+path) || !strings.Contains(stderr, "batch send --retry-failed "+path) {
		t.Errorf("send does not say how to go on:\n%s", stderr)
	}

	code, stdout, _ = batch(t, nil, "status", "--json", path)
	var counts map[string]int
	if err := json.Unmarshal([]byte(stdout), &counts); err != nil || code != 0 {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, stdout)
	}
	if counts["sent"] != 2 || counts["failed"] != 1 || counts["unknown"] != 0 || counts["pending"] != 0 {
		t.Errorf("status: %v", counts)
	}

	code, stdout, _ = batch(t, nil, "status", "--failed", path)
	rows, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	if err != nil || code != 0 || len(rows) != 2 {
		t.Fatalf("status --failed: exit %d, %v\n%s", code, err, stdout)
	}
	if strings.Join(rows[0], ",") != "email,name,city,error" {
		t.Errorf("header %v", rows[0])
	}
	if r := rows[1]; r[0] != "bob@example.net" || r[1] != "Smith, Bob" || r[2] != "Rome" || !strings.Contains(r[3], "550") || !strings.Contains(r[3], "5.1.1") {
		t.Errorf("failed row %q", r)
	}

	// A second run holds bob back; --retry-failed tries him once more.
	code, stdout, _ = batch(t, nil, "send", "--yes", path)
	if code != exitFailed || !strings.Contains(stdout, "nothing to send: 2 sent before, 1 failed, 0 unknown") {
		t.Errorf("second send: exit %d\n%s", code, stdout)
	}
	srv.SetFaults()
	code, stdout, stderr = batch(t, nil, "send", "--yes", "--retry-failed", path)
	if code != exitOK || !strings.Contains(stdout, "sent 1, failed 0") {
		t.Errorf("--retry-failed: exit %d\n%s%s", code, stdout, stderr)
	}
	if d := srv.Delivered(); d["ada@example.org"] != 1 || d["bob@example.net"] != 1 || d["carol@example.com"] != 1 {
		t.Errorf("delivered %v, want each once", d)
	}
}
