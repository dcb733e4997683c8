package campaign

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/batch-mailer/batch/internal/suppress"
)

// softCampaigns are three campaigns of one list sharing suppressed.csv,
// the first two with more (their campaign files' other lines).
var softCampaigns = []string{"2026-10-news", "2026-11-news", "2026-12-news"}

// softSetup writes the three campaigns and one Maildir of soft bounces of
// all of them, in the corpus' Postfix and Exim shapes: for each campaign
// Postfix's "delayed" of bob's message, and then its "failed" with 4.4.1
// (the same message given up on); Exim's delayed of carol's message, of
// the first two campaigns only. It returns the campaigns and the Maildir.
func softSetup(t *testing.T, more string) ([]*Campaign, string) {
	t.Helper()
	files := map[string]string{
		"news.md":  "Hi {{.name}}!\n",
		"list.csv": "email,name\nbob@example.com,Bob\ncarol@gmail.com,Carol\nada@example.org,Ada\n",
	}
	for _, name := range softCampaigns {
		files[name+".toml"] = strings.Replace(minimal, `name = "2026-11-test"`, `name = "`+name+`"`, 1) + "suppress = \"suppressed.csv\"\n" + more
	}
	postfix, err := os.ReadFile("../bounce/testdata/postfix-delayed.eml")
	if err != nil {
		t.Fatal(err)
	}
	exim, err := os.ReadFile("../bounce/testdata/exim-delayed.eml")
	if err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, files)
	var cs []*Campaign
	for i, name := range softCampaigns {
		c, err := Load(filepath.Join(dir, name+".toml"))
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		// The corpus' reports are of campaign 2026-12-newsletter's messages:
		// made those of this campaign's.
		delayed := strings.ReplaceAll(string(postfix), "quahcalljfmn3miws226ek7g@example.org", c.MessageID("bob@example.com"))
		failed := strings.Replace(delayed, "Action: delayed", "Action: failed", 1)
		msgs := map[string]string{"new/" + name + ".1.mx": delayed, "cur/" + name + ".2.mx:2,S": failed}
		if i < 2 {
			msgs["new/"+name+".3.mx"] = strings.ReplaceAll(string(exim), "olrswzamxs5twf2fear6jehh@example.org", c.MessageID("carol@gmail.com"))
		}
		writeTree(t, filepath.Join(dir, "Maildir"), msgs)
	}
	if err := os.MkdirAll(filepath.Join(dir, "Maildir", "tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	return cs, filepath.Join(dir, "Maildir")
}

// softOf returns the emails of rep.Soft with their campaigns and whether
// new, as "email campaigns new".
func softOf(rep *BounceReport) []string {
	var out []string
	for _, sb := range rep.Soft {
		mark := "recorded"
		if sb.New {
			mark = "new"
		}
		out = append(out, sb.Email+" "+strconv.Itoa(sb.Campaigns)+" "+mark+" "+sb.Status)
	}
	return out
}

func mustBounces(t *testing.T, c *Campaign, o BounceOptions) *BounceReport {
	t.Helper()
	rep, err := c.Bounces(o)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	return rep
}

// Soft bounces are recorded once per (address, campaign) across the
// campaigns that share the list, and the address is suppressed at the
// third campaign's, not before; reading the mailbox again counts nothing
// again; the dry run writes nothing.
func TestBouncesSoftAcrossCampaigns(t *testing.T) {
	cs, dir := softSetup(t, "")
	soft := suppress.SoftPath(cs[0].Suppress)
	if filepath.Base(soft) != "suppressed.soft.csv" {
		t.Fatalf("the record is %s", soft)
	}

	// The dry run of the first campaign: what would be counted, nothing
	// written.
	rep := mustBounces(t, cs[0], BounceOptions{Maildir: dir, DryRun: true})
	if got, want := softOf(rep), []string{"bob@example.com 1 new 4.4.1", "carol@gmail.com 1 new 4.0.0"}; !reflect.DeepEqual(got, want) || rep.Counted != 2 || rep.SoftList != soft || rep.SoftLimit != 3 {
		t.Errorf("dry run: soft %q, counted %d, %s at %d; want %q, 2", got, rep.Counted, rep.SoftList, rep.SoftLimit, want)
	}
	for _, p := range []string{soft, cs[0].Suppress} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the dry run wrote %s: %v", p, err)
		}
	}
	// Three messages of the campaign's (bob's delayed and failed, carol's);
	// the other campaigns' five are left alone.
	if rep.Messages != 8 || rep.Counts["soft bounce"] != 3 || rep.Counts[LeftAloneKind] != 5 {
		t.Errorf("dry run: %d messages, counts %v", rep.Messages, rep.Counts)
	}

	for i, c := range cs[:2] {
		rep := mustBounces(t, c, BounceOptions{Maildir: dir})
		n := strconv.Itoa(i + 1)
		if got, want := softOf(rep), []string{"bob@example.com " + n + " new 4.4.1", "carol@gmail.com " + n + " new 4.0.0"}; !reflect.DeepEqual(got, want) || rep.Counted != 2 || len(rep.Limited) != 0 || len(rep.Suppress) != 0 {
			t.Errorf("%s: soft %q, counted %d, limited %q, suppress %+v; want %q", c.Name, got, rep.Counted, rep.Limited, rep.Suppress, want)
		}
		// Read again: recorded already, nothing counted twice.
		rep = mustBounces(t, c, BounceOptions{Maildir: dir})
		if got, want := softOf(rep), []string{"bob@example.com " + n + " recorded 4.4.1", "carol@gmail.com " + n + " recorded 4.0.0"}; !reflect.DeepEqual(got, want) || rep.Counted != 0 {
			t.Errorf("%s again: soft %q, counted %d; want %q, 0", c.Name, got, rep.Counted, want)
		}
	}
	if _, err := os.Stat(cs[0].Suppress); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("suppressed before the third campaign: %v", err)
	}
	record := readText(t, soft)
	if lines := strings.Split(strings.TrimSuffix(record, "\n"), "\n"); len(lines) != 5 || lines[0] != "email,at,campaign,status,detail" ||
		!strings.HasPrefix(lines[1], "bob@example.com,20") || !strings.Contains(lines[1], ",2026-10-news,4.4.1,connect to mx.example.com[198.51.100.7]:25: Connection timed out") {
		t.Errorf("the record:\n%s", record)
	}

	// The third campaign's dry run says bob would be suppressed, and
	// writes nothing.
	rep = mustBounces(t, cs[2], BounceOptions{Maildir: dir, DryRun: true})
	wantDetail := "3 soft bounces: campaign 2026-10-news 4.4.1, campaign 2026-11-news 4.4.1, campaign 2026-12-news 4.4.1"
	wantSuppress := []BounceAction{{Message: filepath.Join(dir, "new", "2026-12-news.1.mx"), Email: "bob@example.com", Reason: "bounced", Detail: wantDetail}}
	if !reflect.DeepEqual(rep.Limited, []string{"bob@example.com"}) || !reflect.DeepEqual(rep.Suppress, wantSuppress) || rep.Added != 1 || rep.Counted != 1 {
		t.Errorf("dry run of the third: limited %q, suppress %+v, added %d, counted %d; want bob, %+v", rep.Limited, rep.Suppress, rep.Added, rep.Counted, wantSuppress)
	}
	if got := readText(t, soft); got != record {
		t.Errorf("the dry run changed the record:\n%s", got)
	}
	if _, err := os.Stat(cs[0].Suppress); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the dry run wrote the list: %v", err)
	}

	rep = mustBounces(t, cs[2], BounceOptions{Maildir: dir})
	if !reflect.DeepEqual(rep.Limited, []string{"bob@example.com"}) || !reflect.DeepEqual(rep.Suppress, wantSuppress) || rep.Added != 1 {
		t.Errorf("the third: limited %q, suppress %+v, added %d", rep.Limited, rep.Suppress, rep.Added)
	}
	var list bytes.Buffer
	if err := cs[2].ListSuppressed(&list); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSuffix(list.String(), "\n"), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], "bob@example.com,bounced,20") ||
		!strings.HasSuffix(lines[1], ",2026-12-news,\""+wantDetail+"\"") {
		t.Errorf("the list:\n%s", list.String())
	}

	// Once suppressed, bob is neither counted nor suppressed again.
	for _, c := range cs {
		rep := mustBounces(t, c, BounceOptions{Maildir: dir})
		if rep.Added != 0 || len(rep.Limited) != 0 || slicesHave(softOf(rep), "bob@") {
			t.Errorf("%s after: added %d, limited %q, soft %q", c.Name, rep.Added, rep.Limited, softOf(rep))
		}
	}
	if got := strings.Count(readText(t, soft), "\n"); got != 6 {
		t.Errorf("the record has %d lines, want 6 (the header, bob's 3, carol's 2):\n%s", got, readText(t, soft))
	}
}

func slicesHave(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A line of the record deleted by hand resets the count it made: bob, at
// two campaigns, drops to one, and the third campaign's bounce doesn't
// suppress him; reading the first campaign's again counts it again, and
// then he is. batch suppress remove drops his lines too.
func TestBouncesSoftHandDeleted(t *testing.T) {
	cs, dir := softSetup(t, "")
	for _, c := range cs[:2] {
		mustBounces(t, c, BounceOptions{Maildir: dir})
	}
	soft := suppress.SoftPath(cs[0].Suppress)
	var kept []string
	for _, line := range strings.SplitAfter(readText(t, soft), "\n") {
		if !strings.HasPrefix(line, "bob@example.com,") || !strings.Contains(line, ",2026-10-news,") {
			kept = append(kept, line)
		}
	}
	if err := os.WriteFile(soft, []byte(strings.Join(kept, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := mustBounces(t, cs[2], BounceOptions{Maildir: dir})
	if got, want := softOf(rep), []string{"bob@example.com 2 new 4.4.1"}; !reflect.DeepEqual(got, want) || len(rep.Limited) != 0 || rep.Added != 0 {
		t.Errorf("after the line went: soft %q, limited %q, added %d; want %q, none", got, rep.Limited, rep.Added, want)
	}
	rep = mustBounces(t, cs[0], BounceOptions{Maildir: dir})
	if !reflect.DeepEqual(rep.Limited, []string{"bob@example.com"}) || rep.Added != 1 ||
		rep.Suppress[0].Detail != "3 soft bounces: campaign 2026-11-news 4.4.1, campaign 2026-12-news 4.4.1, campaign 2026-10-news 4.4.1" {
		t.Errorf("the first campaign's read again: limited %q, added %d, %+v", rep.Limited, rep.Added, rep.Suppress)
	}
	if n, err := cs[0].RemoveSuppressed("Bob@example.com"); err != nil || n != 1 {
		t.Fatalf("removed %d, %v", n, err)
	}
	if got := readText(t, soft); strings.Contains(got, "bob@") || !strings.Contains(got, "carol@gmail.com,") {
		t.Errorf("suppress remove left the record:\n%s", got)
	}
	if sl, err := suppress.OpenSoft(soft); err != nil || sl.Count("bob@example.com") != 0 || sl.Count("carol@gmail.com") != 2 {
		t.Errorf("the record after remove: %v", err)
	}
}

// A record batch can't read stops batch bounces with its file and line,
// before the list is written.
func TestBouncesSoftBadRecord(t *testing.T) {
	cs, dir := softSetup(t, "")
	soft := suppress.SoftPath(cs[0].Suppress)
	if err := os.WriteFile(soft, []byte("email,at,campaign,status,detail\nbob@example.com,yesterday,2026-10-news\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := cs[0].Bounces(BounceOptions{Maildir: dir})
	if err == nil || !strings.Contains(err.Error(), "suppressed.soft.csv:2: time \"yesterday\" for bob@example.com") {
		t.Errorf("got %v", err)
	}
}

// soft_limit = 0 counts nothing: the soft bounces are handled as before,
// no record is written, and no one is suppressed for them.
func TestBouncesSoftLimitOff(t *testing.T) {
	cs, dir := softSetup(t, "[bounces]\nsoft_limit = 0\n")
	for _, c := range cs {
		if c.SoftLimit != 0 || c.Bounce != nil {
			t.Fatalf("soft_limit %d, mailbox %+v", c.SoftLimit, c.Bounce)
		}
		rep := mustBounces(t, c, BounceOptions{Maildir: dir})
		if rep.Soft != nil || rep.SoftList != "" || rep.Counts["soft bounce"] == 0 || len(rep.Suppress) != 0 {
			t.Errorf("%s: %+v", c.Name, rep)
		}
	}
	if _, err := os.Stat(suppress.SoftPath(cs[0].Suppress)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a record was written: %v", err)
	}
}

// soft_limit = 2 suppresses at the second campaign, from an mbox.
func TestBouncesSoftLimitMbox(t *testing.T) {
	cs, dir := softSetup(t, "[bounces]\nsoft_limit = 2\n")
	var mbox bytes.Buffer
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			mbox.WriteString("From MAILER-DAEMON Tue Dec  1 16:19:20 2026\n")
			mbox.WriteString(strings.ReplaceAll(readText(t, filepath.Join(dir, sub, e.Name())), "\nFrom ", "\n>From "))
			mbox.WriteString("\n")
		}
	}
	path := filepath.Join(t.TempDir(), "mbox")
	if err := os.WriteFile(path, mbox.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if rep := mustBounces(t, cs[0], BounceOptions{Mbox: path}); len(rep.Limited) != 0 || rep.Counted != 2 {
		t.Errorf("the first: limited %q, counted %d", rep.Limited, rep.Counted)
	}
	rep := mustBounces(t, cs[1], BounceOptions{Mbox: path})
	if !reflect.DeepEqual(rep.Limited, []string{"bob@example.com", "carol@gmail.com"}) || rep.Added != 2 ||
		rep.Suppress[1].Detail != "2 soft bounces: campaign 2026-10-news 4.0.0, campaign 2026-11-news 4.0.0" || !strings.HasPrefix(rep.Suppress[1].Message, path+":") {
		t.Errorf("the second: limited %q, added %d, %+v", rep.Limited, rep.Added, rep.Suppress)
	}
}

func TestLoadSoftLimit(t *testing.T) {
	c, _, err := load(t, minimal+"suppress = \"s.csv\"\n", nil)
	if err != nil || c.SoftLimit != DefaultSoftLimit || c.Bounce != nil {
		t.Errorf("the default: %d, %+v, %v", c.SoftLimit, c.Bounce, err)
	}
	c, _, err = load(t, minimal+"suppress = \"s.csv\"\n[bounces]\nsoft_limit = 5\nimap = \"imaps://u@imap.example.org\"\n", nil)
	if err != nil || c.SoftLimit != 5 || c.Bounce == nil {
		t.Errorf("with imap: %d, %+v, %v", c.SoftLimit, c.Bounce, err)
	}
	if c, _, err := load(t, minimal, nil); err != nil || c.SoftLimit != 0 {
		t.Errorf("no suppression list: %d, %v", c.SoftLimit, err)
	}
	for text, want := range map[string]string{
		"suppress = \"s.csv\"\n[bounces]\nsoft_limit = -1\n":                    "c.toml:8: bounces.soft_limit: -1: want the number of campaigns, 1 to 100, or 0",
		"suppress = \"s.csv\"\n[bounces]\nsoft_limit = 101\n":                   "c.toml:8: bounces.soft_limit: 101: want",
		"[bounces]\nsoft_limit = 3\n":                                           "c.toml:7: bounces.soft_limit: goes with suppress",
		"[bounces]\nsoft_limit = \"3\"\n":                                       "c.toml",
		"suppress = \"s.csv\"\n[bounces]\nsoft_limit = 2\nmove_to = \"Done\"\n": "bounces.imap: is required",
	} {
		_, _, err := load(t, minimal+text, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", text, err, want)
		}
	}
}

// Over IMAP a soft bounce is handled, and moved, once it is counted: the
// one whose campaign is known moves to Processed after the record is
// written; the one without a Message-ID stays in INBOX, unseen; and when
// the record can't be read, nothing moves.
func TestBouncesSoftIMAP(t *testing.T) {
	s := startIMAP(t, imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapMove: {}})
	table := fmt.Sprintf("[bounces]\nimap = \"imaps://bounces@%s/INBOX\"\nca_file = %q\npassword_env = \"TEST_IMAP_PW\"\ntimeout = \"10s\"\nmove_to = \"Processed\"\nsoft_limit = 2\n", s.Addr(), s.CAFile())
	c := newCampaign(t, listOf(faultList), "# Hello {{.name}}!\n", "suppress = \"suppressed.csv\"\n"+table, nil)
	s.Append(t, "INBOX", testdataMail(t, "postfix-delayed.eml", "bob@example.com", "bob@example.net", "quahcalljfmn3miws226ek7g@example.org", c.MessageID("bob@example.net")))
	s.Append(t, "INBOX", testdataMail(t, "exim-delayed.eml", "carol@gmail.com", "carol@example.com", "References: <olrswzamxs5twf2fear6jehh@example.org>\n", ""))
	soft := suppress.SoftPath(c.Suppress)

	if err := os.WriteFile(soft, []byte("email,at,campaign,status,detail\nbob@example.net,,\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Bounces(BounceOptions{IMAP: true, Secrets: imapSecrets()}); err == nil || !strings.Contains(err.Error(), "suppressed.soft.csv:2: ") {
		t.Errorf("a bad record: %v", err)
	}
	if got := s.Status(t, "INBOX"); got != "2 messages, 2 unseen" {
		t.Errorf("after the record failed INBOX has %s, want both, unseen", got)
	}
	if err := os.Remove(soft); err != nil {
		t.Fatal(err)
	}

	rep, err := c.Bounces(BounceOptions{IMAP: true, Secrets: imapSecrets()})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := softOf(rep), []string{"bob@example.net 1 new 4.4.1"}; !reflect.DeepEqual(got, want) || rep.Filed != 1 ||
		len(rep.Left) != 1 || !strings.Contains(rep.Left[0].Reason, "without the Message-ID") || !strings.HasSuffix(rep.Left[0].Message, ";UID=2") {
		t.Errorf("soft %q, filed %d, left alone %+v; want %q, 1, carol's", got, rep.Filed, rep.Left, want)
	}
	if sl, err := suppress.OpenSoft(soft); err != nil || sl.Count("bob@example.net") != 1 || sl.Count("carol@example.com") != 0 {
		t.Errorf("the record: %v", err)
	}
	if got := s.Status(t, "INBOX"); got != "1 messages, 1 unseen" {
		t.Errorf("INBOX has %s, want carol's only, unseen", got)
	}
	if got := s.Status(t, "Processed"); got != "1 messages, 1 unseen" {
		t.Errorf("Processed has %s, want bob's", got)
	}
}
