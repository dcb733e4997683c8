package render

import (
	"net/mail"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/merge"
)

// parts renders a message and returns its HTML and text parts, decoded,
// with LF line ends, the text's last line ended.
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
	return html, strings.TrimRight(text, "\n") + "\n"
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
	if want := "• ☑ Venue booked\n• ☐ Pizza ordered\n• Schedule attached\n"; !strings.Contains(text, want) {
		t.Errorf("the text part has no\n%s\nin\n%s", want, text)
	}
}

// TestTextStrikethrough: struck text reads as struck, in a sentence and in
// a table, whose columns count the marks.
func TestTextStrikethrough(t *testing.T) {
	r := newFixture(t).renderer()
	_, text := parts(t, r, &Input{Markdown: []byte("The ~~old~~ new plan.\n\n" +
		"| Time  | Talk |\n|-------|------|\n| 19:00 | Typing |\n| 20:00 | ~~Lightning~~ Flash talks |\n")})
	for _, want := range []string{
		"The ~~old~~ new plan.\n",
		"Time   Talk\n" +
			"─────  ─────────────────────────\n" +
			"19:00  Typing\n" +
			"20:00  ~~Lightning~~ Flash talks",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the text part has no\n%s\nin\n%s", want, text)
		}
	}
}

// TestTextImageAlt: an image inside a sentence is its alt text in
// brackets, not a word of the sentence; an image alone is its alt text,
// on its own line; an image without alt text is nothing.
func TestTextImageAlt(t *testing.T) {
	f := newFixture(t)
	f.file("star.png", testPNG)
	f.file("banner.png", testPNG)
	r := f.renderer()
	_, text := parts(t, r, &Input{Markdown: []byte("![Python Meetup](banner.png)\n\n" +
		"As a **pro** member ![star](star.png) you have a reserved seat.\n\n" +
		"[![Our site](banner.png)](https://example.org/)\n\n" +
		"*![emphasised](star.png)*\n\n" +
		"![one](star.png) ![two](star.png)\n\n" +
		"Text ![](star.png)then more.\n\n" +
		"| a | b |\n|---|---|\n| ![cell](star.png) | x ![in a cell](star.png) |\n")})
	want := "Python Meetup\n\n" +
		"As a pro member [star] you have a reserved seat.\n\n" +
		"Our site (https://example.org/)\n\n" +
		"emphasised\n\n" +
		"[one] [two]\n\n" +
		"Text then more.\n\n" +
		"a     b\n" +
		"────  ─────────────\n" +
		"cell  x [in a cell]\n"
	if text != want {
		t.Errorf("the text part reads\n%s\nwant\n%s", text, want)
	}
}

// TestTextFooterUnsubscribe: the built-in layout's text footer says how to
// unsubscribe, unless the template's text already links it: once either
// way.
func TestTextFooterUnsubscribe(t *testing.T) {
	const url = "https://example.org/unsubscribe?e=ada%40example.org"
	r := newFixture(t).rendererWith(func(o *Options) { o.TextFooter = true })
	for _, tt := range []struct {
		name, body, footer string
	}{
		{"in the template", "News.\n\n[Unsubscribe](" + merge.UnsubscribeMarker + ") at any time.\n",
			"News.\n\nUnsubscribe (" + url + ") at any time.\n\n-- \nThis message was sent to ada@example.org.\n"},
		{"not in the template", "News.\n",
			"News.\n\n-- \nThis message was sent to ada@example.org.\nUnsubscribe: " + url + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, text := parts(t, r, &Input{To: mail.Address{Address: "ada@example.org"}, Markdown: []byte(tt.body), Unsubscribe: url})
			if n := strings.Count(text, url); n != 1 {
				t.Errorf("the unsubscribe URL is %d times in the text part, want once:\n%s", n, text)
			}
			if text != tt.footer {
				t.Errorf("the text part reads\n%q\nwant\n%q", text, tt.footer)
			}
		})
	}
}
