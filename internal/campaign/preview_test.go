package campaign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/merge"
)

// previewOf writes a campaign of minimal with the list and template given
// (and extra files and lines) and returns a Preview of it and its
// directory.
func previewOf(t *testing.T, list, md, more string, extra map[string]string) (*Preview, string) {
	t.Helper()
	files := map[string]string{"list.csv": list, "news.md": md, "c.toml": minimal + more}
	for k, v := range extra {
		files[k] = v
	}
	dir := writeFiles(t, files)
	return NewPreview(filepath.Join(dir, "c.toml"), func() time.Time { return now }), dir
}

func TestPreviewOverview(t *testing.T) {
	p, _ := previewOf(t, goodList, goodBody, "", nil)
	o, err := p.Overview(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Problems) != 0 {
		t.Errorf("problems: %v", o.Problems)
	}
	if o.Name != "2026-11-test" || o.Total != 7 || o.Page != 1 || o.Pages != 1 {
		t.Errorf("name %q, %d rows, page %d of %d; want 2026-11-test, 7, 1 of 1", o.Name, o.Total, o.Page, o.Pages)
	}
	if o.Summary.Messages != 4 || o.Summary.Invalid != 2 || o.Summary.Duplicates != 1 {
		t.Errorf("summary: %d messages, %d invalid, %d repeated; want 4, 2, 1", o.Summary.Messages, o.Summary.Invalid, o.Summary.Duplicates)
	}
	if len(o.Warnings) != 3 || !errors.Is(o.Warnings[0], merge.ErrInvalid) || !errors.Is(o.Warnings[1], merge.ErrDuplicate) {
		t.Errorf("warnings: %v; want the two invalid rows and the repeat", o.Warnings)
	}
	// Ada and Carol are pro, Bob and Erin free: two shapes of two rows.
	want := []Shape{
		{N: 1, Rows: 2, Example: 1},
		{N: 2, Rows: 2, Example: 3, Line: 3, Text: "[Upgrade](https://example.org/pro?who={{…}}).", Base: "You have a **reserved seat**."},
	}
	if fmt.Sprint(o.Shapes) != fmt.Sprint(want) {
		t.Errorf("shapes:\n%+v\nwant\n%+v", o.Shapes, want)
	}
	var got []string
	for _, r := range o.Rows {
		s := fmt.Sprintf("%d %s shape %d", r.Row, r.Email, r.Shape)
		switch {
		case errors.Is(r.Skipped, merge.ErrInvalid):
			s = fmt.Sprintf("%d invalid", r.Row)
		case errors.Is(r.Skipped, merge.ErrDuplicate):
			s = fmt.Sprintf("%d repeated", r.Row)
		case r.Problem != nil:
			s += ": " + r.Problem.Error()
		}
		got = append(got, s)
	}
	wantRows := "1 ada@example.org shape 1|2 invalid|3 bob@example.net shape 2|4 repeated|5 carol@example.com shape 1|6 invalid|7 erin@example.com shape 2"
	if strings.Join(got, "|") != wantRows {
		t.Errorf("rows:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.ReplaceAll(wantRows, "|", "\n"))
	}
	if _, err := p.Overview(context.Background(), 2); !errors.Is(err, ErrNoPage) {
		t.Errorf("page 2 of 1: %v, want ErrNoPage", err)
	}
}

// TestPreviewPages lists a long list a page at a time.
func TestPreviewPages(t *testing.T) {
	var list strings.Builder
	list.WriteString("email,name,plan\n")
	for i := range 2*PreviewRows + 50 {
		fmt.Fprintf(&list, "r%d@example.org,R %d,%s\n", i+1, i+1, []string{"pro", "free"}[i%3/2])
	}
	p, _ := previewOf(t, list.String(), goodBody, "", nil)
	o, err := p.Overview(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	if o.Pages != 3 || len(o.Rows) != 50 || o.Rows[0].Row != 2*PreviewRows+1 || o.Rows[49].Email != fmt.Sprintf("r%d@example.org", 2*PreviewRows+50) {
		t.Errorf("page 3: %d pages, %d rows from %d; want 3 pages, 50 rows from %d", o.Pages, len(o.Rows), o.Rows[0].Row, 2*PreviewRows+1)
	}
	if len(o.Shapes) != 2 || o.Shapes[0].Rows+o.Shapes[1].Rows != 2*PreviewRows+50 || o.Shapes[1].Example != 3 {
		t.Errorf("shapes: %+v; want two, of every row, the second first in row 3", o.Shapes)
	}
	for _, page := range []int{0, 4} {
		if _, err := p.Overview(context.Background(), page); !errors.Is(err, ErrNoPage) {
			t.Errorf("page %d: %v, want ErrNoPage", page, err)
		}
	}
}

// TestPreviewRowIsDryRun renders every row and compares it with the file a
// dry run writes.
func TestPreviewRowIsDryRun(t *testing.T) {
	extra := map[string]string{"logo.png": string(testPNGBytes()), "notes.txt": "notes\n"}
	md := "![logo](logo.png)\n\n" + goodBody
	p, dir := previewOf(t, goodList, md, "attachments = [\"notes.txt\"]\npreheader = \"For {{.name}}\"\n", extra)
	c, err := Load(p.Path())
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if _, err := c.Send(context.Background(), func(*Summary) (deliver.Sender, error) { return deliver.NewDir(out), nil },
		Options{Now: now, SinglePass: true}); err != nil {
		t.Fatal(err)
	}
	written := 0
	for n := 1; n <= 7; n++ {
		r, err := p.Row(context.Background(), n)
		if err != nil {
			t.Fatalf("row %d: %v", n, err)
		}
		if r.Prev != n-1 || r.Next != (n+1)%8 {
			t.Errorf("row %d: prev %d, next %d", n, r.Prev, r.Next)
		}
		if r.Skipped != nil {
			if r.Message != nil {
				t.Errorf("row %d is skipped (%v) but has a message", n, r.Skipped)
			}
			continue
		}
		want, err := os.ReadFile(filepath.Join(out, r.FileName))
		if err != nil {
			t.Fatalf("row %d: %v", n, err)
		}
		if string(r.Message) != string(want) {
			t.Errorf("row %d differs from the dry run's %s", n, r.FileName)
		}
		if r.Preheader != "For "+r.Name {
			t.Errorf("row %d: preheader %q", n, r.Preheader)
		}
		written++
	}
	if written != 4 {
		t.Errorf("%d rows have messages, want 4", written)
	}
	for _, n := range []int{0, 8} {
		var nr *NoRowError
		if _, err := p.Row(context.Background(), n); !errors.As(err, &nr) || nr.Row != n {
			t.Errorf("row %d: %v, want a NoRowError", n, err)
		}
	}
}

// testPNGBytes is a real 1x1 PNG.
func testPNGBytes() []byte {
	return []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\xdac\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa75\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")
}

// TestPreviewReload edits each of the campaign's files and sees the change
// at the next call.
func TestPreviewReload(t *testing.T) {
	extra := map[string]string{"logo.png": string(testPNGBytes())}
	p, dir := previewOf(t, goodList, "![logo](logo.png)\n\nHello {{.name}}!\n", "", extra)
	ctx := context.Background()
	row := func() string {
		t.Helper()
		r, err := p.Row(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if r.Problem != nil {
			return r.Problem.Error()
		}
		return string(r.Message)
	}
	edit := func(name, content string) {
		t.Helper()
		before := p.Version()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		// The same size and time would be no change: make the time differ
		// whatever the file system's clock.
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
		if p.Version() == before {
			t.Fatalf("the version is the same after %s changed", name)
		}
	}
	if m := row(); !strings.Contains(m, "Hello Ada!") || !strings.Contains(m, "Subject: News for Ada") {
		t.Fatalf("row 1 before any change:\n%s", m)
	}
	v := p.Version()
	if p.Version() != v {
		t.Errorf("the version changed with no change on disk")
	}
	edit("news.md", "![logo](logo.png)\n\nGood morning {{.name}}!\n")
	if m := row(); !strings.Contains(m, "Good morning Ada!") {
		t.Errorf("row 1 after the template changed:\n%s", m)
	}
	edit("c.toml", strings.Replace(minimal, "News for", "Tidings for", 1))
	if m := row(); !strings.Contains(m, "Subject: Tidings for Ada") {
		t.Errorf("row 1 after the campaign file changed:\n%s", m)
	}
	edit("list.csv", strings.Replace(goodList, ",Ada,", ",Adeline,", 1))
	if m := row(); !strings.Contains(m, "Good morning Adeline!") {
		t.Errorf("row 1 after the list changed:\n%s", m)
	}
	// The image was read for the first message: a new one is a new part.
	before := row()
	edit("logo.png", string(testPNGBytes())+"more")
	if after := row(); after == before {
		t.Errorf("row 1 is the same after the image changed")
	}
	// A broken template is a problem, then fixed, a message again.
	edit("news.md", "Hello {{.name}\n")
	if m := row(); !strings.Contains(m, "news.md:1") {
		t.Errorf("row 1 with a broken template: %s", m)
	}
	edit("news.md", "Fixed, {{.name}}!\n")
	if m := row(); !strings.Contains(m, "Fixed, Adeline!") {
		t.Errorf("row 1 after the template was fixed:\n%s", m)
	}
}

// TestPreviewBroken checks that a broken campaign has an Overview that
// lists its problems, as check does, and rows that say why they have no
// message.
func TestPreviewBroken(t *testing.T) {
	ctx := context.Background()
	t.Run("unknown field", func(t *testing.T) {
		p, _ := previewOf(t, goodList, "Hello {{.nmae}}!\n", "", nil)
		o, err := p.Overview(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		var fe *merge.FieldError
		if len(o.Problems) != 1 || !errors.As(o.Problems[0], &fe) || fe.Field != "nmae" {
			t.Errorf("problems: %v; want the unknown field nmae", o.Problems)
		}
		if len(o.Rows) != 7 || o.Rows[0].Email != "ada@example.org" {
			t.Errorf("rows: %+v; want the list's 7", o.Rows)
		}
		r, err := p.Row(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if r.Message != nil || !errors.As(r.Problem, &fe) {
			t.Errorf("row 1: problem %v; want the unknown field and no message", r.Problem)
		}
	})
	t.Run("campaign file", func(t *testing.T) {
		p, dir := previewOf(t, goodList, goodBody, "", nil)
		if err := os.WriteFile(filepath.Join(dir, "c.toml"), []byte(minimal+"colour = \"red\"\nlayout = \"missing.html\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		o, err := p.Overview(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		text := fmt.Sprint(o.Problems)
		if len(o.Problems) != 2 || !strings.Contains(text, "c.toml:6: colour: unknown key") || !strings.Contains(text, "missing.html: no such file") {
			t.Errorf("problems: %v; want the unknown key and the missing layout", o.Problems)
		}
		r, err := p.Row(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if r.Message != nil || r.Problem == nil || !strings.Contains(r.Problem.Error(), "colour: unknown key") {
			t.Errorf("row 1: problem %v; want the campaign's", r.Problem)
		}
	})
	t.Run("toml", func(t *testing.T) {
		p, dir := previewOf(t, goodList, goodBody, "", nil)
		if err := os.WriteFile(filepath.Join(dir, "c.toml"), []byte("name = \"x\nfrom = 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		o, err := p.Overview(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(o.Problems) != 1 || !strings.Contains(o.Problems[0].Error(), "c.toml:1:") || o.Name != "" || o.Summary != nil {
			t.Errorf("problems %v, name %q; want the TOML error with its line, and no campaign", o.Problems, o.Name)
		}
	})
	t.Run("a row's problem", func(t *testing.T) {
		// The pro branch's image is missing: the pro rows have no message.
		md := "Hi {{.name}}\n\n{{if eq .plan \"pro\"}}![x](missing.png){{end}}\n"
		p, _ := previewOf(t, goodList, md, "", nil)
		o, err := p.Overview(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(o.Problems) != 1 || !strings.Contains(o.Problems[0].Error(), "missing.png") {
			t.Errorf("problems: %v; want the missing image", o.Problems)
		}
		if o.Rows[0].Problem == nil || o.Rows[2].Problem != nil {
			t.Errorf("row 1 (pro): %v, row 3 (free): %v; want a problem for the pro row only", o.Rows[0].Problem, o.Rows[2].Problem)
		}
		r, err := p.Row(ctx, 3)
		if err != nil || r.Message == nil {
			t.Errorf("row 3 (free): %v, %v; want its message", err, r.Problem)
		}
	})
}

// TestPreviewConcurrent asks for pages and rows from many goroutines while
// the template changes (go test -race).
func TestPreviewConcurrent(t *testing.T) {
	p, dir := previewOf(t, goodList, goodBody, "", nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				if g == 0 && i%3 == 0 {
					body := fmt.Sprintf("# Take %d, {{.name}}\n", i)
					if err := os.WriteFile(filepath.Join(dir, "news.md"), []byte(body), 0o644); err != nil {
						errs <- err
					}
				}
				if _, err := p.Overview(ctx, 1); err != nil {
					errs <- err
				}
				if r, err := p.Row(ctx, 1+i%7); err != nil {
					errs <- err
				} else if r.Problem != nil {
					errs <- r.Problem
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
