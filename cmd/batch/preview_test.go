package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/campaign"
)

// previewPNG is a banner to see in screenshots: blue, a yellow band.
var previewPNG = func() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 480, 80))
	for y := range 80 {
		for x := range 480 {
			c := color.RGBA{0x37, 0x76, 0xab, 0xff}
			if y >= 30 && y < 50 {
				c = color.RGBA{0xff, 0xd3, 0x43, 0xff}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}()

// previewFixture is a campaign with two {{if}} branches, non-ASCII names,
// an image, an attachment, a preheader, an invalid row and a hostile name.
func previewFixture() map[string]string {
	return map[string]string{
		"c.toml": `name = "2026-11-preview"
from = "Python爱好者 <news@example.org>"
subject = "来自SMTP的问候 {{.name}}"
template = "news.md"
recipients = "list.csv"
attachments = ["活动日程.txt"]
preheader = "Thursday in {{.city}}"
`,
		"news.md": "![logo](logo.png)\n\n# Hello {{.name}}!\n\n" +
			"{{if eq .plan \"pro\"}}You have a **reserved seat**.{{else}}[Upgrade](https://example.org/pro?who={{.email}}) to reserve one.{{end}}\n",
		"list.csv": "email,name,city,plan\n" +
			"zhang@example.com,张伟,北京,pro\n" + // row 1
			"not-an-address,Nobody,Paris,free\n" + // row 2: invalid
			"bob@example.net,\"*Bob* <script>alert(1)</script>\",Paris,free\n" + // row 3
			"carol@example.com,Carol,London,pro\n" + // row 4
			"erin@example.com,Erin,Berlin,free\n", // row 5
		"logo.png": string(previewPNG),
		"活动日程.txt": "19:00 talks\n20:00 pizza\n",
	}
}

// writeDir writes files (name → content) into a new directory.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// previewEnv is the environment of the preview tests: messages dated as
// a dry run with SOURCE_DATE_EPOCH dates them.
func previewEnv(name string) string {
	if name == "SOURCE_DATE_EPOCH" {
		return "1764000000"
	}
	return ""
}

// previewHandler is batch preview's server of the campaign file at path.
func previewHandler(t *testing.T, path string) http.Handler {
	t.Helper()
	c := &cli{stdout: io.Discard, stderr: io.Discard, getenv: previewEnv}
	now, err := c.previewNow()
	if err != nil {
		t.Fatal(err)
	}
	return newPreviewServer(campaign.NewPreview(path, now), "127.0.0.1")
}

// startPreview serves a preview of the campaign file at path, as batch
// preview does, on a loopback test server.
func startPreview(t *testing.T, path string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(previewHandler(t, path))
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   string
}

func get(t *testing.T, url string) response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(body)}
}

// wantContains checks that a page holds each of the strings.
func wantContains(t *testing.T, what, page string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, page)
		}
	}
}

func TestPreviewIndex(t *testing.T) {
	dir := writeDir(t, previewFixture())
	srv := startPreview(t, filepath.Join(dir, "c.toml"))
	r := get(t, srv.URL+"/")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %d %s", r.status, r.header.Get("Content-Type"))
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("the index's Content-Security-Policy is %q", csp)
	}
	wantContains(t, "the index", r.body,
		"Ready to send: 4 messages, 1 row skipped (1 invalid, 0 repeated addresses).",
		// The pro rows (1, 4) and the free ones (3, 5): two shapes.
		`<a href="/row/1">shape 1: 2 rows, e.g. row 1</a>`,
		`<a href="/row/3">shape 2: 2 rows, e.g. row 3</a>`,
		"differs from shape 1 at line 5 of the body: <code>[Upgrade](https://example.org/pro?who={{…}}) to reserve one.</code> where shape 1 has <code>You have a **reserved seat**.</code>",
		`<tr id="row-1"><td><a href="/row/1">1</a></td><td>zhang@example.com</td><td>张伟</td><td>1</td>`,
		`<tr id="row-3"><td><a href="/row/3">3</a></td><td>bob@example.net</td><td>*Bob* &lt;script&gt;alert(1)&lt;/script&gt;</td><td>2</td>`,
		`<tr id="row-4"><td><a href="/row/4">4</a></td><td>carol@example.com</td><td>Carol</td><td>1</td>`,
		`<tr class="skipped" id="row-2">`,
		`list.csv:3: row 2: invalid address &#34;not-an-address&#34;: no @; row skipped`,
		"Rows 1 to 5 of 5",
	)
	// The only script is the preview's own.
	if n := strings.Count(r.body, "<script"); n != 1 {
		t.Errorf("the index has %d <script> tags, want 1, the preview's", n)
	}
}

// TestPreviewIndexPages checks that a long list is shown a page at a time.
func TestPreviewIndexPages(t *testing.T) {
	files := previewFixture()
	var list strings.Builder
	list.WriteString("email,name,city,plan\n")
	for i := 1; i <= campaign.PreviewRows+10; i++ {
		fmt.Fprintf(&list, "r%d@example.org,R%d,Paris,pro\n", i, i)
	}
	files["list.csv"] = list.String()
	srv := startPreview(t, filepath.Join(writeDir(t, files), "c.toml"))
	first := get(t, srv.URL+"/")
	wantContains(t, "page 1", first.body, fmt.Sprintf("Rows 1 to %d of %d, page 1 of 2", campaign.PreviewRows, campaign.PreviewRows+10), `href="/?page=2"`)
	if strings.Contains(first.body, fmt.Sprintf("r%d@example.org", campaign.PreviewRows+1)) {
		t.Errorf("page 1 lists row %d", campaign.PreviewRows+1)
	}
	second := get(t, srv.URL+"/?page=2")
	wantContains(t, "page 2", second.body, fmt.Sprintf("Rows %d to %d of %d, page 2 of 2", campaign.PreviewRows+1, campaign.PreviewRows+10, campaign.PreviewRows+10),
		fmt.Sprintf("r%d@example.org", campaign.PreviewRows+10), `href="/?page=1"`,
		fmt.Sprintf("shape 1: %d rows, e.g. row 1", campaign.PreviewRows+10))
	if n := strings.Count(second.body, "<tr id=\"row-"); n != 10 {
		t.Errorf("page 2 lists %d rows, want 10", n)
	}
}

func TestPreviewRow(t *testing.T) {
	dir := writeDir(t, previewFixture())
	srv := startPreview(t, filepath.Join(dir, "c.toml"))
	r := get(t, srv.URL+"/row/1")
	if r.status != http.StatusOK {
		t.Fatalf("GET /row/1: %d\n%s", r.status, r.body)
	}
	// The header fields are encoded in the message (RFC 2047) and shown
	// decoded.
	raw := get(t, srv.URL+"/row/1.eml").body
	wantContains(t, "the message", raw, "From: =?utf-8?", "Subject: =?utf-8?")
	wantContains(t, "row 1's page", r.body,
		`<dd id="from">Python爱好者 &lt;news@example.org&gt;</dd>`,
		`<dd id="to">张伟 &lt;zhang@example.com&gt;</dd>`,
		`<dd id="subject">来自SMTP的问候 张伟</dd>`,
		`<dd id="date">Mon, 24 Nov 2025 16:00:00 &#43;0000</dd>`,
		`<dd id="preheader">Thursday in 北京</dd>`,
		`<iframe id="html" sandbox="allow-popups allow-popups-to-escape-sandbox" src="/row/1/html" width="800"`,
		"Hello 张伟!\n\nYou have a reserved seat.\n", // the text alternative
		"<tr><td>活动日程.txt</td><td>text/plain</td><td>24 bytes</td></tr>",
		`<a id="next" href="/row/2">row 2 →</a>`,
		`<a id="phone" href="/row/1?width=phone">Phone, 375 px</a>`,
		`<a id="eml" href="/row/1.eml">0000001-zhang@example.com.eml</a>`,
	)
	if strings.Contains(r.body, `id="prev"`) {
		t.Errorf("row 1 has a link to a previous row")
	}
	// At phone width, and the width kept from row to row.
	phone := get(t, srv.URL+"/row/3?width=phone")
	wantContains(t, "row 3 at phone width", phone.body,
		`src="/row/3/html" width="375"`,
		`<a id="prev" href="/row/2?width=phone">`, `<a id="next" href="/row/4?width=phone">`,
		`<b id="phone" aria-current="true">`,
		// The hostile name is text.
		`<dd id="to">*Bob* &lt;script&gt;alert(1)&lt;/script&gt; &lt;bob@example.net&gt;</dd>`)
	if n := strings.Count(phone.body, "<script"); n != 1 {
		t.Errorf("row 3's page has %d <script> tags, want 1, the preview's", n)
	}
}

// TestPreviewEMLIsDryRun compares every row's .eml, byte for byte, with
// the file batch send --dry-run writes for it.
func TestPreviewEMLIsDryRun(t *testing.T) {
	dir := writeDir(t, previewFixture())
	path := filepath.Join(dir, "c.toml")
	out := filepath.Join(t.TempDir(), "out")
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"send", "--dry-run", out, path}, nil, io.Discard, &stderr, previewEnv); code != exitOK {
		t.Fatalf("dry run: exit %d\n%s", code, stderr.String())
	}
	files, err := os.ReadDir(out)
	if err != nil || len(files) != 4 {
		t.Fatalf("the dry run wrote %d files (%v), want 4", len(files), err)
	}
	srv := startPreview(t, path)
	for _, f := range files {
		want, err := os.ReadFile(filepath.Join(out, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var row int
		fmt.Sscanf(f.Name(), "%d-", &row)
		r := get(t, fmt.Sprintf("%s/row/%d.eml", srv.URL, row))
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "message/rfc822" {
			t.Errorf("/row/%d.eml: %d %s", row, r.status, r.header.Get("Content-Type"))
		}
		if !bytes.Equal([]byte(r.body), want) {
			t.Errorf("/row/%d.eml differs from the dry run's %s", row, f.Name())
		}
		if cd := r.header.Get("Content-Disposition"); cd != fmt.Sprintf("attachment; filename=%q", f.Name()) {
			t.Errorf("/row/%d.eml: Content-Disposition %q", row, cd)
		}
	}
}

// TestPreviewHTML checks the message's HTML as the iframe gets it: under a
// policy without scripts, its cid: images pointed at the preview, which
// serves them from the message with their type.
func TestPreviewHTML(t *testing.T) {
	dir := writeDir(t, previewFixture())
	srv := startPreview(t, filepath.Join(dir, "c.toml"))
	r := get(t, srv.URL+"/row/3/html")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /row/3/html: %d %s", r.status, r.header.Get("Content-Type"))
	}
	csp := r.header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "sandbox allow-popups allow-popups-to-escape-sandbox", "frame-ancestors 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("the HTML's Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "script-src") {
		t.Errorf("the HTML's Content-Security-Policy %q allows scripts", csp)
	}
	wantContains(t, "row 3's HTML", r.body,
		"*Bob* &lt;script&gt;alert(1)&lt;/script&gt;",
		`<a href="https://example.org/pro?who=bob%40example.net" style="color: #1a62c7;" target="_blank" rel="noopener noreferrer">Upgrade</a>`)
	if strings.Contains(r.body, "cid:") {
		t.Errorf("row 3's HTML still has a cid: URL")
	}
	src := regexp.MustCompile(`<img src="(/row/3/cid/[^"]+)"`).FindStringSubmatch(r.body)
	if src == nil {
		t.Fatalf("row 3's HTML has no image from the preview:\n%s", r.body)
	}
	img := get(t, srv.URL+src[1])
	if img.status != http.StatusOK || img.header.Get("Content-Type") != "image/png" || img.body != string(previewPNG) {
		t.Errorf("GET %s: %d %s, %d bytes; want the PNG, image/png", src[1], img.status, img.header.Get("Content-Type"), len(img.body))
	}
	if csp := img.header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
		t.Errorf("the image's Content-Security-Policy %q has no sandbox", csp)
	}
	if r := get(t, srv.URL+"/row/3/cid/nope@example.org"); r.status != http.StatusNotFound {
		t.Errorf("an unknown Content-ID: %d, want 404", r.status)
	}
}

func TestPreviewNotFound(t *testing.T) {
	dir := writeDir(t, previewFixture())
	srv := startPreview(t, filepath.Join(dir, "c.toml"))
	for path, want := range map[string]string{
		"/row/0":        "has no row 0: rows are counted from 1",
		"/row/6":        "list.csv has no row 6: its rows are 1 to 5",
		"/row/6.eml":    "has no row 6",
		"/row/6/html":   "has no row 6",
		"/row/x":        `no row &#34;x&#34;: rows are numbers`,
		"/row/+1":       "rows are numbers",
		"/row/2":        `invalid address &#34;not-an-address&#34;`, // skipped: no message
		"/row/2.eml":    `invalid address "not-an-address"`,
		"/?page=2":      "page 2 of 1",
		"/?page=x":      "pages are numbers",
		"/nope":         "no page /nope",
		"/static/x.css": "404 page not found",
	} {
		r := get(t, srv.URL+path)
		if r.status != http.StatusNotFound || !strings.Contains(r.body, want) {
			t.Errorf("GET %s: %d, want 404 saying %q:\n%s", path, r.status, want, r.body)
		}
	}
}

// TestPreviewBroken checks that a broken campaign's pages list its
// problems, each with its file and line, rather than failing.
func TestPreviewBroken(t *testing.T) {
	files := previewFixture()
	files["c.toml"] += "colour = \"red\"\nlayout = \"missing.html\"\n"
	files["news.md"] = "Hello {{.nmae}}!\n"
	dir := writeDir(t, files)
	srv := startPreview(t, filepath.Join(dir, "c.toml"))
	r := get(t, srv.URL+"/")
	if r.status != http.StatusOK {
		t.Fatalf("GET /: %d, want 200 and the problems\n%s", r.status, r.body)
	}
	wantContains(t, "the broken campaign's index", r.body,
		"<h2>3 problems</h2>",
		"c.toml:8: colour: unknown key",
		"c.toml:9: layout: "+filepath.Join(dir, "missing.html")+": no such file",
		"news.md:1:9: no column &#34;nmae&#34;",
		`<tr id="row-1"><td><a href="/row/1">1</a></td><td>zhang@example.com</td>`)
	row := get(t, srv.URL+"/row/1")
	if row.status != http.StatusOK {
		t.Errorf("GET /row/1: %d, want 200 and the problems", row.status)
	}
	wantContains(t, "a row of the broken campaign", row.body, "<h2>No message</h2>", "colour: unknown key", "no column &#34;nmae&#34;")
	if eml := get(t, srv.URL+"/row/1.eml"); eml.status != http.StatusUnprocessableEntity || !strings.Contains(eml.body, "colour: unknown key") {
		t.Errorf("GET /row/1.eml: %d %s, want 422 and the problems", eml.status, eml.body)
	}
	// A campaign file that isn't TOML: a page with the line.
	if err := os.WriteFile(filepath.Join(dir, "c.toml"), []byte("name = \"x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = get(t, srv.URL+"/")
	if r.status != http.StatusOK {
		t.Fatalf("GET / of a broken TOML file: %d\n%s", r.status, r.body)
	}
	wantContains(t, "the index of a broken TOML file", r.body, "<h2>1 problem</h2>", "c.toml:1:")
}

// TestPreviewReload edits the template on disk: the next request shows
// the change, and /version, which the pages poll, changes with it.
func TestPreviewReload(t *testing.T) {
	dir := writeDir(t, previewFixture())
	srv := startPreview(t, filepath.Join(dir, "c.toml"))
	v := get(t, srv.URL+"/version").body
	wantContains(t, "row 1", get(t, srv.URL+"/row/1").body, "Hello 张伟!")
	if again := get(t, srv.URL+"/version").body; again != v {
		t.Errorf("the version changed from %q to %q with no change on disk", v, again)
	}
	md := strings.Replace(previewFixture()["news.md"], "# Hello", "# Good morning", 1)
	if err := os.WriteFile(filepath.Join(dir, "news.md"), []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	if again := get(t, srv.URL+"/version").body; again == v {
		t.Errorf("the version is %q still after the template changed", v)
	}
	wantContains(t, "row 1 after the edit", get(t, srv.URL+"/row/1").body, "Good morning 张伟!")
	wantContains(t, "the HTML after the edit", get(t, srv.URL+"/row/1/html").body, "Good morning 张伟!")
}

// TestPreviewHost checks that the preview answers to addresses and
// localhost only, so that a page elsewhere can't reach it through a name
// of its own pointed at 127.0.0.1.
func TestPreviewHost(t *testing.T) {
	dir := writeDir(t, previewFixture())
	srv := startPreview(t, filepath.Join(dir, "c.toml"))
	for host, want := range map[string]int{
		"evil.example:80":   http.StatusForbidden,
		"127.0.0.1.nip.io":  http.StatusForbidden,
		"localhost:8025":    http.StatusOK,
		"LOCALHOST":         http.StatusOK,
		"127.0.0.1:8025":    http.StatusOK,
		"[::1]:8025":        http.StatusOK,
		"192.168.1.20:8025": http.StatusOK, // --listen beyond loopback
	} {
		req, err := http.NewRequest("GET", srv.URL+"/row/1.eml", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
		if want == http.StatusForbidden && (strings.Contains(string(body), "zhang@") || !strings.Contains(string(body), "localhost and IP addresses only")) {
			t.Errorf("Host %s: %s", host, body)
		}
	}
}

func TestFrameHTML(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`<img src="cid:abc@example.org" alt="x">`, `<img src="/row/7/cid/abc@example.org" alt="x">`},
		{`<IMG SRC="CID:a%2Fb@x">`, `<img src="/row/7/cid/a%2Fb@x">`},
		{`<td background="cid:bg@x">`, `<td background="/row/7/cid/bg@x">`},
		{`<a href="https://example.org/?a=1&amp;b=2" target="_self">x</a>`, `<a href="https://example.org/?a=1&amp;b=2" target="_blank" rel="noopener noreferrer">x</a>`},
		{`<a href="#top">top</a>`, `<a href="#top">top</a>`},
		{`<p style="color: red">cid:text stays &amp; so does this</p>`, `<p style="color: red">cid:text stays &amp; so does this</p>`},
		{"<style>a { color: red }</style><!-- c -->", "<style>a { color: red }</style><!-- c -->"},
	} {
		if got := frameHTML(tc.in, 7); got != tc.want {
			t.Errorf("frameHTML(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBrowserCommand(t *testing.T) {
	for goos, want := range map[string]string{
		"linux":   "xdg-open http://127.0.0.1:1/",
		"freebsd": "xdg-open http://127.0.0.1:1/",
		"darwin":  "open http://127.0.0.1:1/",
		"windows": "rundll32 url.dll,FileProtocolHandler http://127.0.0.1:1/",
	} {
		name, args := browserCommand(goos, "http://127.0.0.1:1/")
		if got := strings.Join(append([]string{name}, args...), " "); got != want {
			t.Errorf("%s: %s, want %s", goos, got, want)
		}
	}
}

// TestPreviewOpen runs batch preview --open with a stand-in xdg-open that
// records the URL it is given, then with none, which is a warning.
func TestPreviewOpen(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the stand-in xdg-open is a shell script")
	}
	bin := t.TempDir()
	// The stand-in writes the URL into a named pipe, which the test reads:
	// reading waits for it.
	opened := filepath.Join(t.TempDir(), "opened")
	if err := syscall.Mkfifo(opened, 0o600); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nprintf '%s' \"$1\" > " + opened + "\n"
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(writeDir(t, previewFixture()), "c.toml")

	if _, err := batchBinary(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	got := make(chan string, 1)
	go func() {
		b, err := os.ReadFile(opened) // opens when the stand-in does
		if err != nil {
			got <- err.Error()
		}
		got <- string(b)
	}()
	p := startBatch(t, "preview", "--open", path)
	select {
	case url := <-got:
		if url != p.url {
			t.Errorf("xdg-open was given %q, want %q", url, p.url)
		}
	case <-time.After(20 * time.Second): // a guard against a hung test, not a measure
		t.Errorf("xdg-open was not run:\n%s", p.stderr.String())
	}
	p.stop(t)
	if strings.Contains(p.stderr.String(), "warning") {
		t.Errorf("a warning with xdg-open there:\n%s", p.stderr.String())
	}

	t.Setenv("PATH", t.TempDir()) // no xdg-open
	p = startBatch(t, "preview", "--open", path)
	p.await(t, "batch: warning: --open: exec: \"xdg-open\": executable file not found in $PATH: open "+p.url+" in a browser yourself\n")
	p.stop(t)
}

// batchProc is batch preview or unsubscribe-server running as a process.
type batchProc struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	line   chan struct{} // a token for each line of stderr
	done   chan error
	// stopped is the line batch ends with after Ctrl-C.
	stopped string
}

// await waits until batch has written want on stderr; a guard ends a hung
// test.
func (p *batchProc) await(t *testing.T, want string) {
	t.Helper()
	guard := time.After(20 * time.Second) // a guard against a hung test, not a measure
	for !strings.Contains(p.stderr.String(), want) {
		select {
		case <-p.line:
		case <-guard:
			t.Fatalf("batch did not write %q on stderr:\n%s", want, p.stderr.String())
		}
	}
}

// batchBinary is the test binary, which testscript put in PATH as batch
// (see TestMain); looked up once, before a test changes PATH.
var batchBinary = sync.OnceValues(func() (string, error) { return exec.LookPath("batch") })

// startBatch starts batch with args and waits for the URL it serves.
func startBatch(t *testing.T, args ...string) *batchProc {
	t.Helper()
	bin, err := batchBinary()
	if err != nil {
		t.Fatalf("batch, which TestMain puts in PATH: %v", err)
	}
	p := &batchProc{cmd: exec.Command(bin, args...), stderr: &syncBuffer{}, line: make(chan struct{}, 1), done: make(chan error, 1), stopped: "preview stopped"}
	if args[0] == "unsubscribe-server" {
		p.stopped = "unsubscribe server stopped"
	}
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			p.stderr.Write([]byte(line + "\n"))
			select {
			case p.line <- struct{}{}:
			default:
			}
			if m := regexp.MustCompile(`^batch: (?:preview|unsubscribe server) at (\S+) .*— .*Ctrl-C to stop$`).FindStringSubmatch(line); m != nil {
				urls <- m[1]
			}
		}
		p.done <- p.cmd.Wait()
	}()
	select {
	case p.url = <-urls:
	case err := <-p.done:
		t.Fatalf("batch %s exited (%v) before serving:\n%s", strings.Join(args, " "), err, p.stderr.String())
	case <-time.After(20 * time.Second): // a guard against a hung test, not a measure
		p.cmd.Process.Kill()
		t.Fatalf("batch %s said no URL:\n%s", strings.Join(args, " "), p.stderr.String())
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	return p
}

// stop sends Ctrl-C and checks that batch stops cleanly, with status 0.
func (p *batchProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("after Ctrl-C: %v, want exit status 0\n%s", err, p.stderr.String())
		}
	case <-time.After(20 * time.Second): // a guard against a hung test, not a measure
		p.cmd.Process.Kill()
		t.Fatalf("batch did not stop after Ctrl-C:\n%s", p.stderr.String())
	}
	if !strings.HasSuffix(p.stderr.String(), "\nbatch: "+p.stopped+"\n") {
		t.Errorf("stderr after Ctrl-C:\n%s", p.stderr.String())
	}
}

// TestPreviewLoopback runs batch preview as a process: by default it
// listens on 127.0.0.1 only, on a free port, serves the campaign there,
// and stops on Ctrl-C with status 0.
func TestPreviewLoopback(t *testing.T) {
	path := filepath.Join(writeDir(t, previewFixture()), "c.toml")
	p := startBatch(t, "preview", path)
	m := regexp.MustCompile(`^http://127\.0\.0\.1:(\d+)/$`).FindStringSubmatch(p.url)
	if m == nil {
		t.Fatalf("batch preview serves %s, want http://127.0.0.1:PORT/", p.url)
	}
	if r := get(t, p.url); r.status != http.StatusOK || !strings.Contains(r.body, "shape 2: 2 rows, e.g. row 3") {
		t.Errorf("GET %s: %d\n%s", p.url, r.status, r.body)
	}
	if strings.Contains(p.stderr.String(), "warning") {
		t.Errorf("a warning with the default address:\n%s", p.stderr.String())
	}
	// Another address of this machine's loopback is another address: a
	// server on every address (0.0.0.0, ::) would answer there too.
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.2", m[1]), 5*time.Second)
	if err == nil {
		conn.Close()
		t.Errorf("batch preview answers on 127.0.0.2:%s: it listens beyond 127.0.0.1", m[1])
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Logf("127.0.0.2:%s: %v (not refused: this machine may not route 127.0.0.2)", m[1], err)
	}
	p.stop(t)
	if _, err := net.DialTimeout("tcp", "127.0.0.1:"+m[1], 5*time.Second); err == nil {
		t.Errorf("the port is still open after Ctrl-C")
	}
}

func TestPreviewListenWarning(t *testing.T) {
	// Listening on every address of a machine warns; the URL printed is
	// the loopback's, which reaches it.
	path := filepath.Join(writeDir(t, previewFixture()), "c.toml")
	p := startBatch(t, "preview", "--listen", "0.0.0.0:0", path)
	p.stop(t)
	if !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/$`).MatchString(p.url) {
		t.Errorf("the URL is %s, want http://127.0.0.1:PORT/", p.url)
	}
	wantContains(t, "stderr", p.stderr.String(), "batch: warning: listening on 0.0.0.0:", "beyond this machine's loopback: whoever can reach it can read the list's addresses and every message\n")
}
