package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// structural are SpamAssassin rules that say a message was built wrong
// (headers, MIME structure, text and HTML that disagree), as opposed to
// rules on what a campaign says.
var structural = regexp.MustCompile(`^(MIME_|MISSING_|INVALID_|MPART_ALT_DIFF|HTML_MIME_NO_HTML_TAG|HTML_IMAGE_ONLY|HTML_SHORT_LINK_IMG|TVD_SPACE_RATIO|BAD_ENC_HEADER|HEADER_FROM_DIFFERENT_DOMAINS|FROM_EXCESS_BASE64|SUBJ_ILLEGAL_CHARS|CTYPE_|MSGID_|DATE_IN_|FORGED_|TO_NO_BRKTS|T_MIME_|__MIME|DKIM_INVALID|T_DKIM_INVALID|NO_HEADERS|EMPTY_MESSAGE|CHARSET_FARAWAY)`)

// TestSpamAssassin runs SpamAssassin (Debian's, with its offline rules),
// where it is installed, on the example campaign's messages: each scores
// under 1.5, and no rule fires that points at how the message was built.
func TestSpamAssassin(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	sa, err := exec.LookPath("spamassassin")
	if err != nil {
		t.Skip("no spamassassin (apt-get install spamassassin)")
	}
	// The example campaign, and a campaign of one line of text, whose
	// text part is tiny beside the layout's HTML.
	short := t.TempDir()
	for name, text := range map[string]string{
		"c.toml": "name = \"short\"\nfrom = \"News <news@example.org>\"\nsubject = \"Hi {{.name}}\"\n" +
			"template = \"t.md\"\nrecipients = \"r.csv\"\n[unsubscribe]\nurl = \"https://example.org/u?e={{.email}}\"\n",
		"t.md":  "Hi {{.name}}!\n",
		"r.csv": "email,name\nann@example.org,Ann\n",
	} {
		if err := os.WriteFile(filepath.Join(short, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var files []string
	for _, campaign := range []string{filepath.Join("..", "..", "campaigns", "newsletter.toml"), filepath.Join(short, "c.toml")} {
		out := t.TempDir()
		if code, stdout, stderr := batch(t, nil, "send", "--dry-run", out, campaign); code != 0 {
			t.Fatalf("dry run: exit %d\n%s%s", code, stdout, stderr)
		}
		found, _ := filepath.Glob(filepath.Join(out, "*.eml"))
		if len(found) == 0 {
			t.Fatal("no messages")
		}
		files = append(files, found[0])
	}
	score := regexp.MustCompile(`(?m)^X-Spam-Status: \w+, score=(-?[0-9.]+) required=[0-9.]+ tests=((?:.|\n\t)*?) autolearn`)
	for _, f := range files { // each run takes a second
		msg, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sa, "-L", "-t")
		cmd.Stdin = msg
		report, err := cmd.Output()
		msg.Close()
		if err != nil {
			t.Fatalf("spamassassin: %v", err)
		}
		m := score.FindSubmatch(report)
		if m == nil {
			t.Fatalf("%s: no X-Spam-Status in SpamAssassin's report", f)
		}
		s, _ := strconv.ParseFloat(string(m[1]), 64)
		rules := strings.Fields(strings.NewReplacer(",", " ", "\n\t", " ").Replace(string(m[2])))
		t.Logf("%s: score %.1f, %v", filepath.Base(f), s, rules)
		if s >= 1.5 {
			t.Errorf("%s scores %.1f, want under 1.5: %v", filepath.Base(f), s, rules)
		}
		for _, r := range rules {
			if structural.MatchString(r) {
				t.Errorf("%s: rule %s says the message is built wrong", filepath.Base(f), r)
			}
		}
	}
}
