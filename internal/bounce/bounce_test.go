package bounce

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/batch-mailer/batch/internal/render"
)

const (
	campaign     = "2026-12-newsletter"
	domain       = "example.org"
	unsubMailbox = "unsubscribe@example.org"
)

// id is batch's Message-ID of the campaign's message to addr.
func id(addr string) string { return render.MessageID(campaign, addr, domain) }

// The corpus in testdata: reports in the shapes Postfix, Exim, Gmail and
// Microsoft send, from their documented formats, and what is not one.
func TestCorpus(t *testing.T) {
	for _, tc := range []struct {
		file   string
		want   Verdict
		reason string // what Reason says, for Leave
	}{
		{file: "postfix-hard.eml", want: Verdict{Kind: Hard, MessageID: id("ada@example.net"), Recipients: []Recipient{
			{Address: "ada@example.net", Kind: Hard, Status: "5.1.1",
				Detail: "550 5.1.1 <ada.lovelace@mx.example.net>: Recipient address rejected: User unknown in local recipient table"}}}},
		{file: "postfix-delayed.eml", want: Verdict{Kind: Soft, MessageID: id("bob@example.com"), Recipients: []Recipient{
			{Address: "bob@example.com", Kind: Soft, Status: "4.4.1",
				Detail: "connect to mx.example.com[198.51.100.7]:25: Connection timed out"}}}},
		{file: "postfix-two.eml", want: Verdict{Kind: Hard, MessageID: id("grace@example.net"), Recipients: []Recipient{
			{Address: "grace@example.net", Kind: Hard, Status: "5.2.2", Detail: "552 5.2.2 mailbox full"},
			{Address: "frank@example.com", Kind: Soft, Status: "4.4.1",
				Detail: "delivery temporarily suspended: connect to mx.example.com[198.51.100.8]:25: Connection refused"}}}},
		{file: "exim-hard.eml", want: Verdict{Kind: Hard, MessageID: id("bob@example.com"), Recipients: []Recipient{
			{Address: "bob@example.com", Kind: Hard, Status: "5.0.0",
				Detail: "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown"}}}},
		{file: "exim-delayed.eml", want: Verdict{Kind: Soft, MessageID: id("carol@gmail.com"), Recipients: []Recipient{
			{Address: "carol@gmail.com", Kind: Soft, Status: "4.0.0",
				Detail: "421-4.7.28 Gmail has detected an unusual rate of unsolicited mail."}}}},
		{file: "gmail-hard.eml", want: Verdict{Kind: Hard, MessageID: id("carol@gmail.com"), Recipients: []Recipient{
			{Address: "carol@gmail.com", Kind: Hard, Status: "5.1.1",
				Detail: "550-5.1.1 The email account that you tried to reach does not exist. Please try 550-5.1.1 double-checking the recipient's email address for typos or 550-5.1.1 unnecessary spaces. For more information, go to 550 5.1.1 https://support.google.com/mail/?p=NoSuchUser 41be03b00d2f7-5c2a9b1d3e0si1234567a12."}}}}, // cut at 300 bytes
		{file: "gmail-no-original.eml", want: Verdict{Kind: Soft, MessageID: id("dan@contoso.com"), Recipients: []Recipient{
			{Address: "dan@contoso.com", Kind: Soft, Status: "4.4.2", Detail: "421 4.4.2 Connection dropped"}}}},
		{file: "microsoft-ndr.eml", want: Verdict{Kind: Hard, MessageID: id("dan@contoso.com"), Recipients: []Recipient{
			{Address: "dan@contoso.com", Kind: Hard, Status: "5.1.10",
				Detail: "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient dan@contoso.com not found by SMTP address lookup"}}}},
		// JMRP names no recipient: the Message-ID tells whose it was.
		{file: "microsoft-jmrp.eml", want: Verdict{Kind: Complaint, MessageID: id("erin@outlook.com")}},
		// The returned headers' To is not who complained: Original-Rcpt-To is.
		{file: "arf-abuse.eml", want: Verdict{Kind: Complaint, MessageID: id("frank@example.com"), Recipients: []Recipient{
			{Address: "frank@example.com", Kind: Complaint, Detail: "abuse report by SomeGenerator/1.0"}}}},
		{file: "dsn-utf8-recipient.eml", want: Verdict{Kind: Hard, MessageID: id("zoe@example.net")}},
		{file: "unsubscribe.eml", want: Verdict{Kind: Unsubscribe, Recipients: []Recipient{
			{Address: "Ada@Example.net", Kind: Unsubscribe, Detail: "a mail to " + unsubMailbox}}}},
		{file: "unsubscribe-reply.eml", want: Verdict{Kind: Unsubscribe, MessageID: id("zoe@example.net"), Recipients: []Recipient{
			{Address: "zoe@example.net", Kind: Unsubscribe, Detail: "a mail to " + unsubMailbox}}}},
		{file: "arf-not-spam.eml", reason: "not-spam"},
		{file: "vacation-gmail.eml", reason: "Auto-Submitted: auto-replied"},
		{file: "outlook-oof.eml", reason: "Auto-Submitted: auto-generated"},
		{file: "vacation-program.eml", reason: "X-Autoreply"},
		{file: "vacation-subject.eml", reason: "out of office"},
		{file: "qmail-text-bounce.eml", reason: "no address from its text"},
		{file: "read-receipt.eml", reason: "disposition-notification"},
		{file: "dsn-delivered.eml", reason: "no failure"},
		{file: "human-reply.eml", reason: "not a delivery report"},
		{file: "not-a-message.eml", reason: "not a message"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Classify(bytes.NewReader(data), Options{Unsubscribe: unsubMailbox})
			if err != nil {
				t.Fatal(err)
			}
			if tc.reason != "" {
				if got.Kind != Leave || len(got.Recipients) > 0 {
					t.Fatalf("got %+v, want it left alone", got)
				}
				if !strings.Contains(got.Reason, tc.reason) {
					t.Errorf("reason %q does not say %q", got.Reason, tc.reason)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

// Without the unsubscribe mailbox, a mail to it is a mail like any other.
func TestUnsubscribeNeedsTheMailbox(t *testing.T) {
	data, _ := os.ReadFile("testdata/unsubscribe.eml")
	for _, o := range []Options{{}, {Unsubscribe: "leave@example.org"}} {
		got, err := Classify(bytes.NewReader(data), o)
		if err != nil || got.Kind != Leave {
			t.Errorf("with %+v: %+v, %v", o, got, err)
		}
	}
}

func TestUnsubscribeRefused(t *testing.T) {
	for name, msg := range map[string]string{
		"two senders":  "From: a@example.net, b@example.net\nTo: unsubscribe@example.org\n\nstop\n",
		"no sender":    "To: unsubscribe@example.org\n\nstop\n",
		"bad address":  "From: \"x\" <a b@example.net>\nTo: unsubscribe@example.org\n\nstop\n",
		"from itself":  "From: unsubscribe@example.org\nTo: unsubscribe@example.org\n\nstop\n",
		"null sender":  "Return-Path: <>\nFrom: a@example.net\nTo: unsubscribe@example.org\n\nstop\n",
		"quoted local": "From: \"a b\"@example.net\nTo: unsubscribe@example.org\n\nstop\n",
	} {
		got, err := Classify(strings.NewReader(msg), Options{Unsubscribe: unsubMailbox})
		if err != nil || got.Kind != Leave || len(got.Recipients) > 0 || got.Reason == "" {
			t.Errorf("%s: %+v, %v: want it left alone", name, got, err)
		}
	}
}

// A message over the limit is left alone, and read no further than it.
func TestTooLarge(t *testing.T) {
	data, _ := os.ReadFile("testdata/postfix-hard.eml")
	r := &countingReader{r: bytes.NewReader(append(data, bytes.Repeat([]byte("x"), 1<<20)...))}
	got, err := Classify(r, Options{MaxSize: int64(len(data))})
	if err != nil || got.Kind != Leave || !strings.Contains(got.Reason, "larger than") {
		t.Errorf("got %+v, %v", got, err)
	}
	if r.n > int64(len(data))+1 {
		t.Errorf("read %d bytes of a limit of %d", r.n, len(data))
	}
	if got, _ := Classify(bytes.NewReader(data), Options{MaxSize: int64(len(data))}); got.Kind != Hard {
		t.Errorf("at the limit: %+v", got)
	}
}

type countingReader struct {
	r *bytes.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// A report inside multiparts nested deeper than the limit is left alone;
// as deep as the limit, it is read.
func TestNesting(t *testing.T) {
	report, _ := os.ReadFile("testdata/exim-delayed.eml")
	_, body, _ := bytes.Cut(report, []byte("\n\n"))
	inner := "Content-Type: multipart/report; report-type=delivery-status; boundary=1764692400-eximdsn-846930886\n\n" + string(body)
	wrap := func(depth int) string {
		msg := inner
		for i := range depth {
			b := "b" + strings.Repeat("x", i)
			msg = "Content-Type: multipart/mixed; boundary=" + b + "\n\n--" + b + "\n" + msg + "\n--" + b + "--\n"
		}
		return "From: x@example.net\nMIME-Version: 1.0\n" + msg
	}
	got, err := Classify(strings.NewReader(wrap(DefaultMaxDepth-1)), Options{})
	if err != nil || got.Kind != Soft || len(got.Recipients) != 1 {
		t.Errorf("at the limit: %+v, %v", got, err)
	}
	got, err = Classify(strings.NewReader(wrap(DefaultMaxDepth)), Options{})
	if err != nil || got.Kind != Leave || !strings.Contains(got.Reason, "nested") {
		t.Errorf("past the limit: %+v, %v", got, err)
	}
	many := "From: x@example.net\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n" + strings.Repeat("--b\n\nx\n", maxParts+1) + "--b--\n"
	got, err = Classify(strings.NewReader(many), Options{})
	if err != nil || got.Kind != Leave || !strings.Contains(got.Reason, "parts") {
		t.Errorf("too many parts: %+v, %v", got, err)
	}
}

// Classify's error is the reader's.
func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	if _, err := Classify(iotest.ErrReader(boom), Options{}); !errors.Is(err, boom) {
		t.Errorf("error %v, want boom", err)
	}
}

func TestStatusCode(t *testing.T) {
	for in, want := range map[string]string{
		"5.1.1": "5.1.1", " 4.4.7 (delivery expired)": "4.4.7", "5.1.10": "5.1.10", "2.0.0": "2.0.0",
		"5.1": "", "6.1.1": "", "5.1.1000": "", "5.x.1": "", "": "", "550": "", "5..1": "",
	} {
		if got := statusCode(in); got != want {
			t.Errorf("statusCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOneLine(t *testing.T) {
	for in, want := range map[string]string{
		"a\r\n  b\tc":   "a b c",
		"caf\xe9":       "caf\uFFFD",
		"x\u2028y\x00z": "x y z",
		"  ":            "",
	} {
		if got := oneLine(in, 100); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
	if got := oneLine(strings.Repeat("é", 200), 301); len(got) != 300 {
		t.Errorf("cut to %d bytes, want 300 (a whole é)", len(got))
	}
}

// A report part too large to be one, or a complaint about too many
// recipients, is left alone.
func TestReportBounds(t *testing.T) {
	dsn := "Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\n"
	arf := "Content-Type: multipart/report; boundary=b\n\n--b\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\n"
	for name, tc := range map[string]struct {
		msg  string
		kind Kind
		n    int
	}{
		"blocks at the limit":      {dsn + strings.Repeat("Action: failed\nStatus: 5.1.1\nFinal-Recipient: rfc822; a@b.co\n\n", maxBlocks-1) + "--b--\n", Hard, maxBlocks - 1},
		"blocks past the limit":    {dsn + strings.Repeat("Action: failed\nStatus: 5.1.1\nFinal-Recipient: rfc822; a@b.co\n\n", maxBlocks+1) + "--b--\n", Leave, 0},
		"part too large":           {dsn + "Action: failed\nFinal-Recipient: rfc822; a@b.co\nX: " + strings.Repeat("x", maxReportPart) + "\n--b--\n", Leave, 0},
		"complainers at the limit": {arf + strings.Repeat("Original-Rcpt-To: a@b.co\n", maxComplaintRcpts) + "\n--b--\n", Complaint, maxComplaintRcpts},
		"too many complainers":     {arf + strings.Repeat("Original-Rcpt-To: a@b.co\n", maxComplaintRcpts+1) + "\n--b--\n", Leave, 0},
	} {
		v, err := Classify(strings.NewReader(tc.msg), Options{})
		if err != nil || v.Kind != tc.kind || len(v.Recipients) != tc.n {
			t.Errorf("%s: %s with %d recipients (%s), %v; want %s with %d", name, v.Kind, len(v.Recipients), v.Reason, err, tc.kind, tc.n)
		}
	}
}

// A message left alone for a parser's error, which quotes the line it
// could not read, says so on one bounded line: a mailbox of them can't
// fill the memory of the report that lists them.
func TestReasonBounded(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	for name, msg := range map[string]string{
		"header":    "From: a@b.co\r\n" + long + "\r\n\r\nbody",
		"part":      "From: a@b.co\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + long + "\r\n\r\nbody\r\n--b--\r\n",
		"multiline": "From: a@b.co\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nx\x1b[2J\n" + long + "\r\n\r\n--b--\r\n",
	} {
		v, err := Classify(strings.NewReader(msg), Options{})
		if err != nil || v.Kind != Leave || len(v.Reason) > maxReason || !strings.Contains(v.Reason, "malformed MIME header line") || strings.ContainsAny(v.Reason, "\r\n\x1b") {
			t.Errorf("%s: %s, %d bytes: %.100q, %v; want left alone, at most %d bytes on one line", name, v.Kind, len(v.Reason), v.Reason, err, maxReason)
		}
	}
}

// A bounce cut short, its closing boundary missing, is read as far as it
// goes.
func TestTruncated(t *testing.T) {
	data, _ := os.ReadFile("testdata/postfix-hard.eml")
	cut := data[:bytes.Index(data, []byte("Hello Ada!"))]
	v, err := Classify(bytes.NewReader(cut), Options{})
	if err != nil || v.Kind != Hard || len(v.Recipients) != 1 || v.MessageID != id("ada@example.net") {
		t.Errorf("got %+v, %v", v, err)
	}
}

// A report that names no address batch could have sent to and no message
// is left alone: there is nothing to match it to.
func TestReportOfNobody(t *testing.T) {
	data, _ := os.ReadFile("testdata/dsn-utf8-recipient.eml")
	data = bytes.Replace(data, []byte("Message-ID: <4rk7x7zoequoo7ezfdofth43@example.org>\n"), nil, 1)
	v, err := Classify(bytes.NewReader(data), Options{})
	if err != nil || v.Kind != Leave || !strings.Contains(v.Reason, "names neither") {
		t.Errorf("got %+v, %v", v, err)
	}
	data, _ = os.ReadFile("testdata/microsoft-jmrp.eml")
	data = bytes.Replace(data, []byte("Message-ID: <2ugolyjnr45q7stewo5lfuwo@example.org>\n"), nil, 1)
	if v, _ := Classify(bytes.NewReader(data), Options{}); v.Kind != Leave {
		t.Errorf("a complaint about nobody: %+v", v)
	}
}
