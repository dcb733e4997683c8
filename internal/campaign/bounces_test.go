package campaign

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/bounce"
	"github.com/batch-mailer/batch/internal/render"
)

// mboxMessage is a message readMbox passed on.
type mboxMessage struct{ name, text string }

func readAllMbox(t *testing.T, content string, max int64) ([]mboxMessage, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mbox")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []mboxMessage
	err := readMbox(path, max, func(name string, r io.Reader) error {
		data, err := io.ReadAll(r)
		got = append(got, mboxMessage{strings.TrimPrefix(name, path), string(data)})
		return err
	})
	return got, err
}

func TestReadMbox(t *testing.T) {
	long := strings.Repeat("x", 200<<10) // longer than the reader's buffer
	mbox := "From a@example.org Tue Dec  1 16:19:20 2026\n" +
		"Subject: one\n\n>From the start\n>>From quoted twice\n> From not quoted\n" +
		"From b@example.org Tue Dec  1 16:19:21 2026\n" +
		"Subject: two\n\n" + long + "From in a long line\n" +
		"From c@example.org Tue Dec  1 16:19:22 2026\n" +
		"Subject: three" // no line end at the end of the file
	got, err := readAllMbox(t, mbox, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := []mboxMessage{
		{":1", "Subject: one\n\nFrom the start\n>From quoted twice\n> From not quoted\n"},
		{":7", "Subject: two\n\n" + long + "From in a long line\n"},
		{":11", "Subject: three"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %d messages %.200q, want %.200q", len(got), got, want)
	}
}

// A message larger than the limit is cut at one byte past it, which
// Classify leaves alone, and the next message is read whole.
func TestReadMboxBounded(t *testing.T) {
	big := strings.Repeat("0123456789abcdef\n", 4096)
	mbox := "From a Tue Dec  1 16:19:20 2026\n" + big + "From b Tue Dec  1 16:19:21 2026\nSubject: small\n"
	got, err := readAllMbox(t, mbox, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got[0].text) != 1001 || got[1].text != "Subject: small\n" {
		t.Fatalf("got %d messages, the first of %d bytes; want 2, 1001 bytes", len(got), len(got[0].text))
	}
	v, err := bounce.Classify(strings.NewReader(got[0].text), bounce.Options{MaxSize: 1000})
	if err != nil || v.Kind != bounce.Leave || !strings.Contains(v.Reason, "larger than") {
		t.Errorf("the cut message: %+v, %v", v, err)
	}
}

func TestReadMboxNotMbox(t *testing.T) {
	_, err := readAllMbox(t, "Subject: hi\n\nFrom me\n", 1000)
	if err == nil || !strings.Contains(err.Error(), "mbox:1: not an mbox") {
		t.Errorf("got %v, want the file's line 1 named", err)
	}
}

func TestBounceMatch(t *testing.T) {
	const name = "2026-12-newsletter"
	id := func(a string) string { return render.MessageID(name, a, "example.org") }
	m := &bounceMatcher{campaign: name, soft: true, emails: map[string]string{}, ids: map[string]string{}}
	for _, a := range []string{"Ada@example.org", "bob@example.net", "carol@example.com"} {
		m.emails[strings.ToLower(a)] = a
		m.ids[id(a)] = a
	}
	hard := func(addr string) bounce.Recipient {
		return bounce.Recipient{Address: addr, Kind: bounce.Hard, Status: "5.1.1", Detail: "550 5.1.1 user unknown"}
	}
	for _, tc := range []struct {
		what string
		v    bounce.Verdict
		want []string // email reason detail
		left bool
		soft []string // email status detail
	}{
		{"a hard bounce, its address in the list's case", bounce.Verdict{Kind: bounce.Hard, MessageID: id("Ada@example.org"), Recipients: []bounce.Recipient{hard("ada@EXAMPLE.org")}},
			[]string{"Ada@example.org bounced 5.1.1 550 5.1.1 user unknown"}, false, nil},
		{"a bounce from where the mail was forwarded to: by its Message-ID", bounce.Verdict{Kind: bounce.Hard, MessageID: id("bob@example.net"), Recipients: []bounce.Recipient{hard("bob@elsewhere.example")}},
			[]string{"bob@example.net bounced 5.1.1 550 5.1.1 user unknown"}, false, nil},
		{"a complaint that names no one", bounce.Verdict{Kind: bounce.Complaint, MessageID: id("carol@example.com")},
			[]string{"carol@example.com complained "}, false, nil},
		{"a report without a Message-ID, of an address of the list", bounce.Verdict{Kind: bounce.Hard, Recipients: []bounce.Recipient{hard("bob@example.net")}},
			[]string{"bob@example.net bounced 5.1.1 550 5.1.1 user unknown"}, false, nil},
		{"a soft bounce: counted, not suppressed", bounce.Verdict{Kind: bounce.Soft, MessageID: id("bob@example.net"), Recipients: []bounce.Recipient{{Address: "bob@example.net", Kind: bounce.Soft, Status: "4.4.1"}}},
			nil, false, []string{"bob@example.net 4.4.1 "}},
		{"a soft bounce from where the mail was forwarded to: by its Message-ID", bounce.Verdict{Kind: bounce.Soft, MessageID: id("Ada@example.org"), Recipients: []bounce.Recipient{{Address: "ada@elsewhere.example", Kind: bounce.Soft, Status: "4.2.2", Detail: "452 4.2.2 full"}}},
			nil, false, []string{"Ada@example.org 4.2.2 452 4.2.2 full"}},
		{"a soft bounce without a Message-ID: its campaign can't be told", bounce.Verdict{Kind: bounce.Soft, Recipients: []bounce.Recipient{{Address: "bob@example.net", Kind: bounce.Soft, Status: "4.4.1"}}},
			nil, true, nil},
		{"a hard and a soft bounce without a Message-ID: the hard one acted on", bounce.Verdict{Kind: bounce.Hard, Recipients: []bounce.Recipient{hard("bob@example.net"), {Address: "carol@example.com", Kind: bounce.Soft, Status: "4.4.1"}}},
			[]string{"bob@example.net bounced 5.1.1 550 5.1.1 user unknown"}, false, nil},
		{"another campaign's message to an address of the list", bounce.Verdict{Kind: bounce.Hard, MessageID: render.MessageID("other", "bob@example.net", "example.org"), Recipients: []bounce.Recipient{hard("bob@example.net")}},
			nil, true, nil},
		{"a bounce of an address not in the list", bounce.Verdict{Kind: bounce.Hard, Recipients: []bounce.Recipient{hard("zed@example.org")}},
			nil, true, nil},
		{"an unsubscribe from an address of the list, whatever it replies to", bounce.Verdict{Kind: bounce.Unsubscribe, MessageID: "x@example.net", Recipients: []bounce.Recipient{{Address: "carol@example.com", Kind: bounce.Unsubscribe, Detail: "a mail to u@example.org"}}},
			[]string{"carol@example.com unsubscribed a mail to u@example.org"}, false, nil},
		{"an unsubscribe from an address not in the list", bounce.Verdict{Kind: bounce.Unsubscribe, MessageID: id("bob@example.net"), Recipients: []bounce.Recipient{{Address: "eve@example.org", Kind: bounce.Unsubscribe}}},
			nil, true, nil},
		{"an auto-reply", bounce.Verdict{Kind: bounce.Leave, Reason: "an auto-reply"}, nil, true, nil},
	} {
		acts, softs, reason := m.match("msg", tc.v)
		var got, gotSoft []string
		for _, a := range acts {
			got = append(got, a.Email+" "+a.Reason+" "+a.Detail)
			if a.Message != "msg" {
				t.Errorf("%s: message %q", tc.what, a.Message)
			}
		}
		for _, sb := range softs {
			gotSoft = append(gotSoft, sb.Email+" "+sb.Status+" "+sb.Detail)
		}
		if !reflect.DeepEqual(got, tc.want) || (reason != "") != tc.left || !reflect.DeepEqual(gotSoft, tc.soft) {
			t.Errorf("%s: got %q and soft %q, left alone for %q; want %q and %q, left alone %v", tc.what, got, gotSoft, reason, tc.want, tc.soft, tc.left)
		}
	}
	// With soft_limit = 0, a soft bounce without a Message-ID is handled,
	// as any other of a recipient: nothing is counted.
	m.soft = false
	if acts, softs, reason := m.match("msg", bounce.Verdict{Kind: bounce.Soft, Recipients: []bounce.Recipient{{Address: "bob@example.net", Kind: bounce.Soft}}}); reason != "" || acts != nil || softs != nil {
		t.Errorf("soft_limit = 0: %v, %v, left alone for %q", acts, softs, reason)
	}
}

// bounceCampaign is a campaign of faultList with a suppression list and an
// unsubscribe mailto, and a Maildir of a hard bounce of bob's message,
// a vacation reply, and in tmp/ a hard bounce of carol's.
func bounceCampaign(t *testing.T) (*Campaign, string) {
	t.Helper()
	c := newCampaign(t, listOf(faultList), "# Hello {{.name}}!\n", "suppress = \"suppressed.csv\"\n[unsubscribe]\nmailto = \"u@example.org\"\n", nil)
	dir := filepath.Join(filepath.Dir(c.Path), "Maildir")
	dsn := func(addr string) string {
		return "From: MAILER-DAEMON@mx.example\nTo: b@example.org\nSubject: failed\nMIME-Version: 1.0\n" +
			"Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: text/plain\n\nfailed\n" +
			"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n" +
			"Final-Recipient: rfc822; " + addr + "\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 no such user\n\n" +
			"--b\nContent-Type: text/rfc822-headers\n\nMessage-ID: <" + c.MessageID(addr) + ">\n\n--b--\n"
	}
	writeTree(t, dir, map[string]string{
		"new/1.mx":     dsn("bob@example.net"),
		"cur/2.mx:2,S": "From: dave@example.com\nTo: b@example.org\nSubject: away\nX-Autoreply: yes\n\naway\n",
		"tmp/3.mx":     dsn("carol@example.com"),
	})
	return c, dir
}

func TestBouncesMaildir(t *testing.T) {
	c, dir := bounceCampaign(t)
	rep, err := c.Bounces(BounceOptions{Maildir: dir, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.Suppress); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the dry run wrote the list: %v", err)
	}
	want := []BounceAction{{Message: filepath.Join(dir, "new/1.mx"), Email: "bob@example.net", Reason: "bounced", Detail: "5.1.1 550 5.1.1 no such user"}}
	if rep.Messages != 2 || rep.Added != 1 || !reflect.DeepEqual(rep.Suppress, want) {
		t.Errorf("dry run: %d messages, %d to add, %+v; want 2, 1, %+v", rep.Messages, rep.Added, rep.Suppress, want)
	}
	if len(rep.Left) != 1 || rep.Left[0].Message != filepath.Join(dir, "cur/2.mx:2,S") || rep.Counts[LeftAloneKind] != 1 || rep.Counts["hard bounce"] != 1 {
		t.Errorf("dry run: left alone %+v, counts %v", rep.Left, rep.Counts)
	}

	rep, err = c.Bounces(BounceOptions{Maildir: dir})
	if err != nil || rep.Added != 1 {
		t.Fatalf("added %v, %v; want 1", rep, err)
	}
	var list bytes.Buffer
	if err := c.ListSuppressed(&list); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(list.String(), "\n"); n != 2 || !strings.Contains(list.String(), "\nbob@example.net,bounced,") ||
		!strings.Contains(list.String(), ","+c.Name+",5.1.1 550 5.1.1 no such user\n") {
		t.Errorf("the list, %d lines:\n%s", n, list.String())
	}
	rep, err = c.Bounces(BounceOptions{Maildir: dir})
	if err != nil || rep.Added != 0 || len(rep.Suppress) != 1 {
		t.Errorf("again: %+v, %v; want none added, one on it already", rep, err)
	}
}

func TestBouncesErrors(t *testing.T) {
	c, dir := bounceCampaign(t)
	for _, o := range []BounceOptions{{}, {Maildir: dir, Mbox: "mbox"}} {
		if _, err := c.Bounces(o); !errors.Is(err, ErrBounceSource) {
			t.Errorf("%+v: %v, want ErrBounceSource", o, err)
		}
	}
	if _, err := c.Bounces(BounceOptions{Maildir: filepath.Join(dir, "new")}); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "not a Maildir") {
		t.Errorf("a directory that isn't a Maildir: %v", err)
	}
	if _, err := c.Bounces(BounceOptions{Mbox: filepath.Join(dir, "none")}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing mbox: %v", err)
	}
	plain := newCampaign(t, listOf(faultList), "# Hello\n", "", nil)
	if _, err := plain.Bounces(BounceOptions{Maildir: dir}); !errors.Is(err, ErrNoSuppressionList) {
		t.Errorf("no suppression list: %v", err)
	}
}
