package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/dnstest"
)

// TestCheckDNSBulk: check --dns counts the list as check does, its
// valid and distinct addresses, against the 5,000 a day past which
// Gmail's and Yahoo's bulk-sender rules apply: 5,000 addresses, with an
// invalid row and a repeated one, are not a bulk sender's; 5,001 are,
// and the campaign, without [unsubscribe] url, doesn't meet the rule of
// one-click unsubscribe. Unmet rules are told, and exit 0: no record is
// missing or wrong.
func TestCheckDNSBulk(t *testing.T) {
	z := dnstest.MustParseZone(t,
		`example.org. TXT "v=spf1 mx -all"`,
		`_dmarc.example.org. TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.org"`,
		`example.org. MX 10 mx.example.org.`)
	env := map[string]string{"BATCH_RESOLVER": dnstest.Serve(t, z)}
	for _, tc := range []struct {
		valid int
		want  string
	}{
		{5000, "bulk sender: no, 5,000 messages (Gmail's and Yahoo's bulk-sender rules apply past 5,000 a day)\n"},
		{5001, "bulk sender: yes, 5,001 messages (past 5,000 a day): 2 of Gmail's and Yahoo's requirements for bulk senders are not met:\n" +
			"unmet    DKIM         every message must carry a DKIM signature that verifies: not checked: the campaign has no [dkim] key; "},
	} {
		t.Run(fmt.Sprint(tc.valid), func(t *testing.T) {
			dir := t.TempDir()
			var list strings.Builder
			list.WriteString("email,name\nnot-an-address,Nobody\n")
			for i := range tc.valid {
				fmt.Fprintf(&list, "r%d@example.org,R%d\n", i, i)
			}
			list.WriteString("R0@example.org,again\n")
			files := map[string]string{
				"c.toml": "name = \"bulk\"\nfrom = \"News <news@example.org>\"\nsubject = \"Hi {{.name}}\"\n" +
					"template = \"t.md\"\nrecipients = \"r.csv\"\n[unsubscribe]\nmailto = \"leave@example.org\"\n",
				"t.md":  "Hi {{.name}}\n",
				"r.csv": list.String(),
			}
			for name, text := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			code, stdout, stderr := batch(t, env, "check", "--dns", filepath.Join(dir, "c.toml"))
			if code != exitOK {
				t.Fatalf("exit %d, want 0\n%s%s", code, stdout, stderr)
			}
			if !strings.Contains(stdout, fmt.Sprintf("ready: %d messages (2 rows skipped: 1 invalid, 1 repeated address)\n", tc.valid)) {
				t.Errorf("not the count of messages:\n%s", stdout)
			}
			if !strings.Contains(stdout, tc.want) {
				t.Errorf("want %q in:\n%s", tc.want, stdout)
			}
			unsubscribe := strings.Contains(stdout, "\nunmet    unsubscribe  every message needs one-click unsubscribe")
			if unsubscribe != (tc.valid > 5000) {
				t.Errorf("one-click unsubscribe unmet: %v, want %v\n%s", unsubscribe, tc.valid > 5000, stdout)
			}
		})
	}
}
