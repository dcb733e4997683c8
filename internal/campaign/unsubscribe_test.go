package campaign

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/mail"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/render"
)

// fieldOf returns a message's header field, unfolded.
func fieldOf(t *testing.T, data []byte, name string) string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Header.Get(name)
}

func TestUnsubscribe(t *testing.T) {
	list := "email,name\nada+news&more@example.org,Ada\nbob@example.net,Bob\n"
	body := "Hi {{.name}}\n\n[Leave the list]({{unsubscribe}}) or <{{unsubscribe}}>\n"
	more := "[unsubscribe]\nurl = \"https://example.org/u?e={{.email}}&n={{.name}}\"\nmailto = \"leave@example.org\"\n"
	c := newCampaign(t, list, body, more, nil)
	rec := &recorder{}
	if _, err := c.Send(context.Background(), rec.open, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct{ email, name string }{{"ada+news&more@example.org", "Ada"}, {"bob@example.net", "Bob"}} {
		data := rec.msgs[i].Data
		lu := fieldOf(t, data, "List-Unsubscribe")
		m := regexp.MustCompile(`^<(https://[^>]+)>, <mailto:leave@example.org>$`).FindStringSubmatch(lu)
		if m == nil {
			t.Fatalf("List-Unsubscribe: %q", lu)
		}
		u, err := url.Parse(m[1])
		if err != nil {
			t.Fatal(err)
		}
		// Each recipient's URL decodes back to exactly their own values.
		if got := u.Query().Get("e"); got != want.email {
			t.Errorf("e=%q, want %q", got, want.email)
		}
		if got := u.Query().Get("n"); got != want.name {
			t.Errorf("n=%q, want %q", got, want.name)
		}
		if p := fieldOf(t, data, "List-Unsubscribe-Post"); p != "List-Unsubscribe=One-Click" {
			t.Errorf("List-Unsubscribe-Post: %q", p)
		}
		// {{unsubscribe}} in the template is the same URL, in both parts.
		unfolded := bytes.ReplaceAll(data, []byte("=\r\n"), nil) // quoted-printable soft breaks
		if !bytes.Contains(unfolded, []byte(`href=3D"`+strings.ReplaceAll(strings.ReplaceAll(m[1], "&", "&amp;"), "=", "=3D")+`"`)) ||
			!bytes.Contains(unfolded, []byte("Leave the list ("+strings.ReplaceAll(m[1], "=", "=3D")+")")) {
			t.Errorf("the URL is not in the body of %s", want.email)
		}
		// The text links it already: the built-in layout's text footer
		// doesn't say it again (TestUnsubscribeFooter).
		if bytes.Contains(unfolded, []byte("\nUnsubscribe: ")) {
			t.Errorf("the text footer of %s repeats the template's unsubscribe link", want.email)
		}
	}
}

// TestUnsubscribeFooter: with a template that doesn't link
// {{unsubscribe}}, the built-in layout's text footer gives the URL, once.
func TestUnsubscribeFooter(t *testing.T) {
	c := newCampaign(t, goodList, goodBody, "[unsubscribe]\nurl = \"https://example.org/u?e={{.email}}\"\n", nil)
	rec := &recorder{}
	if _, err := c.Send(context.Background(), rec.open, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	data := rec.msgs[0].Data
	u := strings.Trim(fieldOf(t, data, "List-Unsubscribe"), "<>")
	unfolded := bytes.ReplaceAll(data, []byte("=\r\n"), nil)
	if n := bytes.Count(unfolded, []byte("\nUnsubscribe: "+strings.ReplaceAll(u, "=", "=3D")+"\r\n")); n != 1 {
		t.Errorf("%d lines \"Unsubscribe: %s\" in the message, want 1 in the text footer", n, u)
	}
}

func TestUnsubscribeMailtoOnly(t *testing.T) {
	c := newCampaign(t, goodList, goodBody, "[unsubscribe]\nmailto = \"leave@example.org\"\n", nil)
	rec := &recorder{}
	if _, err := c.Send(context.Background(), rec.open, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	data := rec.msgs[0].Data
	if lu := fieldOf(t, data, "List-Unsubscribe"); lu != "<mailto:leave@example.org>" {
		t.Errorf("List-Unsubscribe: %q", lu)
	}
	if p := fieldOf(t, data, "List-Unsubscribe-Post"); p != "" {
		t.Errorf("List-Unsubscribe-Post %q without an https URL", p)
	}
}

func TestUnsubscribeProblems(t *testing.T) {
	tests := []struct{ name, more, body, want string }{
		{"http", "[unsubscribe]\nurl = \"http://example.org/u?e={{.email}}\"\n", goodBody, "unsubscribe.url: \"http://example.org/u?e={{.email}}\": one-click unsubscribe (RFC 8058) needs an https URL"},
		{"host from a value", "[unsubscribe]\nurl = \"https://{{.name}}.example.org/u\"\n", goodBody, "a merge field can't be part of the host"},
		{"host ended by a value", "[unsubscribe]\nurl = \"https://example.org{{.name}}/u\"\n", goodBody, "a merge field can't be part of the host"},
		{"port from a value", "[unsubscribe]\nurl = \"https://example.org:{{.plan}}/u\"\n", goodBody, "a merge field can't be part of the host"},
		{"user from a value", "[unsubscribe]\nurl = \"https://{{.name}}@example.org/u\"\n", goodBody, "a merge field can't be part of the host"},
		{"bad mailto", "[unsubscribe]\nmailto = \"nobody\"\n", goodBody, "unsubscribe.mailto: \"nobody\": no @"},
		{"empty", "[unsubscribe]\n", goodBody, "give url"},
		{"template without url", "", goodBody + "[x]({{unsubscribe}})\n", "the template uses {{unsubscribe}}, but the campaign has no [unsubscribe] url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := load(t, minimal+tt.more, map[string]string{"list.csv": goodList, "news.md": tt.body})
			p := problemsOf(t, err)
			found := false
			for _, e := range p {
				found = found || strings.Contains(e.Error(), tt.want)
			}
			if !found {
				t.Errorf("no problem says %q:\n%v", tt.want, err)
			}
		})
	}
}

func TestPreheader(t *testing.T) {
	c := newCampaign(t, goodList, goodBody, "preheader = \"Seats for {{.plan}} members <b>now</b>\"\n", nil)
	rec := &recorder{}
	if _, err := c.Send(context.Background(), rec.open, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	// The preview text is in the HTML part, escaped (the layout is an
	// html/template), for the recipient's own plan.
	if !bytes.Contains(rec.msgs[0].Data, []byte("Seats for pro members &lt;b&gt;now&lt;/b&gt;")) {
		t.Error("the first message has no preheader")
	}
	if !bytes.Contains(rec.msgs[1].Data, []byte("Seats for free members")) {
		t.Error("the second message's preheader is not its own")
	}
}

func TestRecipientAttachments(t *testing.T) {
	list := "email,name,files\n" +
		"ada@example.org,Ada,docs/ada.pdf;docs/common.txt\n" +
		"bob@example.net,Bob,\n" +
		"carol@example.com,Carol, docs/common.txt \n"
	files := map[string]string{"docs/ada.pdf": "%PDF ada", "docs/common.txt": "common"}
	c := newCampaign(t, list, "Hi {{.name}}\n", "[columns]\nattachments = \"files\"\nattachments_dir = \"docs\"\n", files)
	rec := &recorder{}
	if _, err := c.Send(context.Background(), rec.open, Options{Now: now}); err != nil {
		t.Fatal(err)
	}
	filenames := func(data []byte) []string {
		var out []string
		for _, m := range regexp.MustCompile(`Content-Disposition: attachment; filename="([^"]+)"`).FindAllSubmatch(data, -1) {
			out = append(out, string(m[1]))
		}
		return out
	}
	for i, want := range []string{"ada.pdf common.txt", "", "common.txt"} {
		if got := strings.Join(filenames(rec.msgs[i].Data), " "); got != want {
			t.Errorf("%s: attachments %q, want %q", rec.msgs[i].To, got, want)
		}
	}
}

func TestRecipientAttachmentProblems(t *testing.T) {
	list := "email,name,files\n" +
		"ada@example.org,Ada,docs/missing.pdf\n" +
		"bob@example.net,Bob,../outside.txt\n" +
		"carol@example.com,Carol,/etc/passwd\n"
	c := newCampaign(t, list, "Hi {{.name}}\n", "[columns]\nattachments = \"files\"\nattachments_dir = \"docs\"\n", map[string]string{"docs/ok.txt": "ok"})
	rec := &recorder{}
	_, err := c.Send(context.Background(), rec.open, Options{Now: now})
	p := problemsOf(t, err)
	if len(p) != 3 || len(rec.msgs) != 0 {
		t.Fatalf("%d problems, %d sent; want 3, 0:\n%v", len(p), len(rec.msgs), err)
	}
	for i, want := range []string{
		filepath.Join("docs", "missing.pdf") + ": no such file (in the message to row 1",
		`"../outside.txt": not in the directory of the recipients' files (` + filepath.Join(filepath.Dir(c.Path), "docs") + string(filepath.Separator) + `): a row attaches only the files in it ([columns] attachments_dir), so move it there (in the message to row 2`,
		`"/etc/passwd": not in the directory of the recipients' files`,
	} {
		if !strings.Contains(p[i].Error(), want) {
			t.Errorf("problem %d: %v\nwant it to say %q", i, p[i], want)
		}
	}
	if !errors.Is(p[0], fs.ErrNotExist) || !errors.Is(p[1], render.ErrOutside) || !errors.Is(p[2], render.ErrOutside) {
		t.Errorf("problems %v: want a missing file, then two outside the directory", p)
	}
	// A column that isn't there.
	files := map[string]string{"list.csv": goodList, "news.md": goodBody, "files/x.txt": "x"}
	_, _, err = load(t, minimal+"[columns]\nattachments = \"files\"\n", files)
	if err != nil {
		t.Fatal(err)
	}
	c2 := newCampaign(t, goodList, goodBody, "[columns]\nattachments = \"files\"\n", map[string]string{"files/x.txt": "x"})
	_, err = c2.Check(context.Background(), Options{Now: now})
	if p := problemsOf(t, err); !strings.Contains(p[0].Error(), `no "files" column for [columns] attachments`) {
		t.Errorf("got %v", err)
	}
}

// TestUnsubscribeQueryAfterHost: a field may follow the host in the query
// or the fragment as well as in the path, and a URL without a field needs
// no path.
func TestUnsubscribeQueryAfterHost(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"https://example.org?e={{.email}}", "https://example.org?e=ada%40example.org"},
		{"https://example.org/u#{{.email}}", "https://example.org/u#ada%40example.org"},
		{"https://example.org", "https://example.org"},
	} {
		c := newCampaign(t, "email,name\nada@example.org,Ada\n", "Hi {{.name}}\n", "[unsubscribe]\nurl = \""+tt.url+"\"\n", nil)
		rec := &recorder{}
		if _, err := c.Send(context.Background(), rec.open, Options{Now: now}); err != nil {
			t.Fatalf("%s: %v", tt.url, err)
		}
		if lu := fieldOf(t, rec.msgs[0].Data, "List-Unsubscribe"); lu != "<"+tt.want+">" {
			t.Errorf("%s: List-Unsubscribe %q, want <%s>", tt.url, lu, tt.want)
		}
	}
}

// TestUnsubscribeLayoutWithout: a layout that prints {{unsubscribe}} in a
// campaign without [unsubscribe] url is a check problem that says what to
// add, where; and [headers] can't set the fields [unsubscribe] does.
func TestUnsubscribeLayoutWithout(t *testing.T) {
	layout := "<!DOCTYPE html>\n<html><body>{{.Body}}<a href=\"{{unsubscribe}}\">leave</a></body></html>\n"
	c := newCampaign(t, goodList, goodBody, "layout = \"l.html\"\n", map[string]string{"l.html": layout})
	_, err := c.Check(context.Background(), Options{Now: now})
	p := problemsOf(t, err)
	if len(p) != 1 || !errors.Is(p[0], render.ErrNoUnsubscribe) {
		t.Fatalf("Check: %v, want ErrNoUnsubscribe, once", err)
	}
	if want := "give the campaign an [unsubscribe] url, in " + c.Path; !strings.Contains(p[0].Error(), want) {
		t.Errorf("%q does not say %q", p[0], want)
	}

	_, path, err := load(t, minimal+"[headers]\nList-Unsubscribe = \"<https://example.org/u>\"\nReply-To = \"x@example.org\"\n", nil)
	p = problemsOf(t, err)
	for _, want := range []string{
		path + ":7: headers.List-Unsubscribe: header field List-Unsubscribe is set by the [unsubscribe] table",
		path + ":8: headers.Reply-To: header field Reply-To is set by the campaign key reply_to",
	} {
		if findProblem(p, want) == nil {
			t.Errorf("no problem %q in:\n%v", want, err)
		}
	}
}
