package render

import (
	"net/mail"
	"strings"
	"testing"
)

// parts renders body for one recipient and returns its HTML and text
// parts, decoded, with LF line ends.
func parts(t *testing.T, r *Renderer, in *Input) (html, text string) {
	t.Helper()
	if in.To.Address == "" {
		in.To = mail.Address{Address: "a@example.com"}
	}
	in.Seq, in.Subject = 1, "s"
	m, err := r.Render(in)
	if err != nil {
		t.Fatal(err)
	}
	_, root := parse(t, m.Data)
	html = strings.ReplaceAll(string(root.find("text/html")[0].body), "\r\n", "\n")
	text = strings.ReplaceAll(string(root.find("text/plain")[0].body), "\r\n", "\n")
	return html, text
}

// TestTaskList: a task's check box is a glyph in both parts, not a form
// control, which Gmail and Outlook remove.
func TestTaskList(t *testing.T) {
	r := newFixture(t).renderer()
	html, text := parts(t, r, &Input{Markdown: []byte("- [x] Venue booked\n- [ ] Pizza ordered\n- Schedule attached\n")})
	if strings.Contains(html, "<input") {
		t.Errorf("the HTML has a form control:\n%s", html)
	}
	got := shownBlocks(t, []byte(html))
	want := []string{"☑ Venue booked", "☐ Pizza ordered", "Schedule attached"}
	if len(got) < len(want) || strings.Join(got[:len(want)], "|") != strings.Join(want, "|") {
		t.Errorf("the HTML's list items show %q, want %q", got, want)
	}
	if want := "• ☑ Venue booked\n• ☐ Pizza ordered\n• Schedule attached\n"; !strings.Contains(text+"\n", want) {
		t.Errorf("the text part has no\n%s\nin\n%s", want, text)
	}
}
