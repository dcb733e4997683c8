package main

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message/mail"
	"golang.org/x/net/html"

	"github.com/batch-mailer/batch/internal/campaign"
)

// batch preview: a web server on this machine's loopback that shows the
// campaign as its readers will see it, row by row, rendered again whenever
// a file of the campaign changes. It sends nothing. The pages are
// html/template, so that every value of the list is escaped; a message's
// HTML is shown in a sandboxed iframe, without scripts, from its own URL
// with a strict Content-Security-Policy.

//go:embed preview
var previewFiles embed.FS

// previewPages are the preview's pages, each with the base layout.
var previewPages = parsePreviewPages()

func parsePreviewPages() map[string]*template.Template {
	funcs := template.FuncMap{
		"plural":   plural,
		"size":     campaign.FormatSize,
		"problems": problemsOf,
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"index", "row", "error"} {
		pages[name] = template.Must(template.New(name).Funcs(funcs).ParseFS(previewFiles, "preview/base.html", "preview/"+name+".html"))
	}
	return pages
}

// problemsOf gives the problems err holds, one by one.
func problemsOf(err error) []error {
	var probs campaign.Problems
	if errors.As(err, &probs) {
		return probs
	}
	return []error{err}
}

// The widths a message is shown at.
const (
	desktopWidth = 800
	phoneWidth   = 375
)

func (c *cli) preview(ctx context.Context, args []string) error {
	flags := c.flags("preview")
	listen := flags.String("listen", "127.0.0.1:0", "")
	open := flags.Bool("open", false, "")
	path, err := c.parse(flags, args)
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return usageError{fmt.Sprintf("preview: --listen %q: want HOST:PORT, such as 127.0.0.1:8025 (port 0 for a free one)", *listen)}
	}
	now, err := c.previewNow()
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: no such campaign file", path)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("preview: --listen %s: %w", *listen, err)
	}
	defer ln.Close()
	stderr := &lockedWriter{w: c.stderr}
	addr := ln.Addr().(*net.TCPAddr)
	if !addr.IP.IsLoopback() {
		fmt.Fprintf(stderr, "batch: warning: listening on %s, beyond this machine's loopback: whoever can reach it can read the list's addresses and every message\n",
			net.JoinHostPort(host, strconv.Itoa(addr.Port)))
	}
	link := previewURL(addr)
	srv := &http.Server{
		Handler:           newPreviewServer(campaign.NewPreview(path, now), host),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute, // a check of a long list comes first
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          log.New(stderr, "batch: preview: ", 0),
	}
	fmt.Fprintf(stderr, "batch: preview at %s — Ctrl-C to stop\n", link)
	if *open {
		if cmd, err := startBrowser(runtime.GOOS, link); err != nil {
			fmt.Fprintf(stderr, "batch: warning: --open: %v: open %s in a browser yourself\n", err, link)
		} else {
			go func() {
				if err := cmd.Wait(); err != nil {
					fmt.Fprintf(stderr, "batch: warning: --open: %s: %v: open %s in a browser yourself\n", cmd.Path, err, link)
				}
			}()
		}
	}
	// Ctrl-C is how a preview ends: the requests under way are cancelled
	// with ctx, and the server waits a moment for them.
	return serve(ctx, srv, ln, "preview")
}

// previewNow gives the Date of a preview's messages each time the campaign
// is loaded: SOURCE_DATE_EPOCH's, as a dry run has it, or the time then.
func (c *cli) previewNow() (func() time.Time, error) {
	opts, err := c.options()
	if err != nil {
		return nil, err
	}
	if c.getenv("SOURCE_DATE_EPOCH") == "" {
		return time.Now, nil
	}
	return func() time.Time { return opts.Now }, nil
}

// previewURL is the URL that reaches the server at addr: on this machine's
// loopback when it listens on every address.
func previewURL(addr *net.TCPAddr) string {
	ip := addr.IP
	if ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port)) + "/"
}

// startBrowser starts the system's way of opening link in a browser.
func startBrowser(goos, link string) (*exec.Cmd, error) {
	name, args := browserCommand(goos, link)
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// browserCommand is the command that opens link in the default browser on
// goos.
func browserCommand(goos, link string) (string, []string) {
	switch goos {
	case "darwin":
		return "open", []string{link}
	case "windows":
		return "rundll32", []string{"url.dll,FileProtocolHandler", link}
	default:
		return "xdg-open", []string{link}
	}
}

// lockedWriter serialises writes from the server's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// previewServer serves a Preview's pages.
type previewServer struct {
	p          *campaign.Preview
	listenHost string // the host --listen named, which may be a name
	mux        *http.ServeMux
}

func newPreviewServer(p *campaign.Preview, listenHost string) *previewServer {
	s := &previewServer{p: p, listenHost: listenHost, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /{$}", s.index)
	s.mux.HandleFunc("GET /row/{n}", s.row)
	s.mux.HandleFunc("GET /row/{n}/html", s.html)
	s.mux.HandleFunc("GET /row/{n}/cid/{id}", s.cid)
	s.mux.HandleFunc("GET /version", s.version)
	s.mux.HandleFunc("GET /static/{name}", s.static)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, http.StatusNotFound, fmt.Errorf("no page %s: the index is at /", r.URL.Path))
	})
	return s
}

// pageCSP is the policy of the preview's own pages: their script and
// style from the server, frames of the server's (a message's HTML), no
// other script, no plug-in, no form.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; frame-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// messageCSP is the policy of a message's HTML: what a mail client allows
// (inline styles, images from the message or the web), sandboxed without
// scripts even when opened on its own.
const messageCSP = "default-src 'none'; img-src 'self' data: https: http:; style-src 'unsafe-inline'; font-src data: https:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"

// fileCSP is the policy of a part of a message (an image): nothing runs,
// whatever it is.
const fileCSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

func (s *previewServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store") // a page is only as good as the files
	if !s.hostAllowed(r.Host) {
		// A web page elsewhere can point a name of its own at 127.0.0.1
		// (DNS rebinding) and read what the server answers: only
		// addresses, localhost and the name --listen gave are served.
		http.Error(w, fmt.Sprintf("batch preview answers to localhost and IP addresses only, not to %q: open http://localhost%s/", r.Host, portOf(r.Host)), http.StatusForbidden)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// hostAllowed reports whether a request's Host is one the server answers
// to: an IP address, localhost, or the host --listen named.
func (s *previewServer) hostAllowed(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return net.ParseIP(host) != nil || strings.EqualFold(host, "localhost") ||
		s.listenHost != "" && strings.EqualFold(host, s.listenHost)
}

// portOf is ":PORT" of a Host, or "".
func portOf(host string) string {
	if _, port, err := net.SplitHostPort(host); err == nil {
		return ":" + port
	}
	return ""
}

// page is what every page's base layout shows.
type page struct {
	Title, Version, Campaign, Path string
}

type indexPage struct {
	page
	O              *campaign.Overview
	First, Last    int // the rows of the page
	PrevPage, Next int // 0 for none
}

type rowPage struct {
	page
	R     *campaign.Row
	M     *messageView
	MErr  error // why the message can't be shown
	Phone bool
	Width int
	Query string // "?width=phone" to keep the width from row to row
}

type errorPage struct {
	page
	Status  int
	Message error
}

// write renders a page to w with status.
func (s *previewServer) write(w http.ResponseWriter, status int, name string, data any) {
	var b bytes.Buffer
	if err := previewPages[name].ExecuteTemplate(&b, "base", data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// fail shows a page that says what went wrong.
func (s *previewServer) fail(w http.ResponseWriter, status int, err error) {
	s.write(w, status, "error", &errorPage{
		page:    page{Title: http.StatusText(status), Version: s.p.Version(), Path: s.p.Path()},
		Status:  status,
		Message: err,
	})
}

// failed answers a request that failed; one cancelled (the browser went
// away, or Ctrl-C) gets no answer.
func (s *previewServer) failed(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	var nr *campaign.NoRowError
	switch {
	case errors.As(err, &nr), errors.Is(err, campaign.ErrNoPage):
		s.fail(w, http.StatusNotFound, err)
	default:
		s.fail(w, http.StatusInternalServerError, err)
	}
}

func (s *previewServer) index(w http.ResponseWriter, r *http.Request) {
	n := 1
	if q := r.URL.Query().Get("page"); q != "" {
		var err error
		if n, err = strconv.Atoi(q); err != nil {
			s.fail(w, http.StatusNotFound, fmt.Errorf("page %q: pages are numbers, from 1", q))
			return
		}
	}
	o, err := s.p.Overview(r.Context(), n)
	if err != nil {
		s.failed(w, r, err)
		return
	}
	pg := &indexPage{
		page: page{Title: "index", Version: o.Version, Campaign: o.Name, Path: o.Path},
		O:    o,
	}
	if len(o.Rows) > 0 {
		pg.First, pg.Last = o.Rows[0].Row, o.Rows[len(o.Rows)-1].Row
	}
	if n > 1 {
		pg.PrevPage = n - 1
	}
	if n < o.Pages {
		pg.Next = n + 1
	}
	s.write(w, http.StatusOK, "index", pg)
}

// rowOf returns the row a request's path names, or answers it.
func (s *previewServer) rowOf(w http.ResponseWriter, r *http.Request, arg string) (*campaign.Row, bool) {
	n, err := strconv.Atoi(arg)
	if err != nil || strings.HasPrefix(arg, "+") {
		s.fail(w, http.StatusNotFound, fmt.Errorf("no row %q: rows are numbers, /row/1 for the first after the header", arg))
		return nil, false
	}
	row, err := s.p.Row(r.Context(), n)
	if err != nil {
		s.failed(w, r, err)
		return nil, false
	}
	return row, true
}

// messageOf returns a row's message, parsed, or answers the request in
// plain text for an HTML part, an image or an .eml file that isn't there.
func (s *previewServer) messageOf(w http.ResponseWriter, row *campaign.Row) (*messageView, bool) {
	switch {
	case row.Skipped != nil:
		http.Error(w, fmt.Sprintf("row %d has no message: %v", row.Row, row.Skipped), http.StatusNotFound)
		return nil, false
	case row.Problem != nil:
		http.Error(w, fmt.Sprintf("row %d has no message:\n%v", row.Row, row.Problem), http.StatusUnprocessableEntity)
		return nil, false
	}
	m, err := readMessage(row.Message)
	if err != nil {
		http.Error(w, fmt.Sprintf("row %d: %v", row.Row, err), http.StatusInternalServerError)
		return nil, false
	}
	return m, true
}

// messageAt returns the row the request's path names ({n}) and its
// message, parsed, or answers the request as rowOf and messageOf do.
func (s *previewServer) messageAt(w http.ResponseWriter, r *http.Request) (*campaign.Row, *messageView, bool) {
	row, ok := s.rowOf(w, r, r.PathValue("n"))
	if !ok {
		return nil, nil, false
	}
	m, ok := s.messageOf(w, row)
	return row, m, ok
}

func (s *previewServer) row(w http.ResponseWriter, r *http.Request) {
	arg, eml := strings.CutSuffix(r.PathValue("n"), ".eml")
	row, ok := s.rowOf(w, r, arg)
	if !ok {
		return
	}
	if eml {
		if _, ok := s.messageOf(w, row); !ok {
			return
		}
		w.Header().Set("Content-Type", "message/rfc822")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", row.FileName))
		w.Header().Set("Content-Length", strconv.Itoa(len(row.Message)))
		w.Write(row.Message)
		return
	}
	pg := &rowPage{
		page:  page{Title: fmt.Sprintf("row %d", row.Row), Version: row.Version, Campaign: row.Campaign, Path: s.p.Path()},
		R:     row,
		Width: desktopWidth,
	}
	if r.URL.Query().Get("width") == "phone" {
		pg.Phone, pg.Width, pg.Query = true, phoneWidth, "?width=phone"
	}
	if row.Message != nil {
		pg.M, pg.MErr = readMessage(row.Message)
	}
	status := http.StatusOK
	if row.Skipped != nil {
		status = http.StatusNotFound
	}
	s.write(w, status, "row", pg)
}

func (s *previewServer) html(w http.ResponseWriter, r *http.Request) {
	row, m, ok := s.messageAt(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", messageCSP)
	io.WriteString(w, frameHTML(m.HTML, row.Row))
}

func (s *previewServer) cid(w http.ResponseWriter, r *http.Request) {
	row, m, ok := s.messageAt(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	for _, img := range m.Images {
		if img.CID == id {
			w.Header().Set("Content-Type", img.Type)
			w.Header().Set("Content-Security-Policy", fileCSP)
			w.Header().Set("Content-Length", strconv.Itoa(len(img.Data)))
			w.Write(img.Data)
			return
		}
	}
	http.Error(w, fmt.Sprintf("row %d's message has no part with Content-ID <%s>", row.Row, id), http.StatusNotFound)
}

// version answers the pages' live reload: the version of the campaign's
// files, which changes when one of them does.
func (s *previewServer) version(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, s.p.Version()+"\n")
}

func (s *previewServer) static(w http.ResponseWriter, r *http.Request) {
	types := map[string]string{"preview.css": "text/css; charset=utf-8", "preview.js": "text/javascript; charset=utf-8"}
	name := r.PathValue("name")
	data, err := fs.ReadFile(previewFiles, "preview/"+name)
	if types[name] == "" || err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", types[name])
	w.Write(data)
}

// messageView is a message as a mail client shows it, read with
// go-message: header fields decoded (RFC 2047), parts decoded.
type messageView struct {
	From, To, ReplyTo, Subject, Date string
	FromName                         string // the sender as an inbox lists it
	Unsubscribe                      string // List-Unsubscribe, as it is
	HTML, Text                       string
	Images                           []inlinePart
	Files                            []attachment
}

type inlinePart struct {
	CID, Type string
	Data      []byte
}

type attachment struct {
	Name, Type string
	Size       int64
}

// readMessage reads an RFC 5322 message for display.
func readMessage(data []byte) (*messageView, error) {
	mr, err := mail.CreateReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("reading the message: %w", err)
	}
	defer mr.Close()
	v := &messageView{}
	h := mr.Header
	from, _ := h.AddressList("From")
	v.From, v.To, v.ReplyTo = showAddresses(from), showAddresses(addressList(h, "To")), showAddresses(addressList(h, "Reply-To"))
	if len(from) > 0 {
		v.FromName = from[0].Name
		if v.FromName == "" {
			v.FromName = from[0].Address
		}
	}
	if v.Subject, err = h.Subject(); err != nil {
		return nil, fmt.Errorf("the message's subject: %w", err)
	}
	if t, err := h.Date(); err == nil {
		v.Date = t.Format("Mon, 2 Jan 2006 15:04:05 -0700")
	}
	v.Unsubscribe = h.Get("List-Unsubscribe")
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the message's parts: %w", err)
		}
		body, err := io.ReadAll(p.Body)
		if err != nil {
			return nil, fmt.Errorf("reading the message's parts: %w", err)
		}
		switch hd := p.Header.(type) {
		case *mail.InlineHeader:
			ctype, _, _ := hd.ContentType()
			cid := strings.TrimSuffix(strings.TrimPrefix(hd.Get("Content-Id"), "<"), ">")
			switch {
			case ctype == "text/html" && v.HTML == "":
				v.HTML = string(body)
			case ctype == "text/plain" && v.Text == "":
				v.Text = strings.ReplaceAll(string(body), "\r\n", "\n")
			case cid != "":
				v.Images = append(v.Images, inlinePart{CID: cid, Type: ctype, Data: body})
			default:
				v.Files = append(v.Files, attachment{Name: "(inline " + ctype + ")", Type: ctype, Size: int64(len(body))})
			}
		case *mail.AttachmentHeader:
			ctype, _, _ := hd.ContentType()
			name, _ := hd.Filename()
			v.Files = append(v.Files, attachment{Name: name, Type: ctype, Size: int64(len(body))})
		}
	}
	return v, nil
}

func addressList(h mail.Header, key string) []*mail.Address {
	list, _ := h.AddressList(key)
	return list
}

// showAddresses writes addresses as a mail client shows them: the name as
// it reads, not encoded.
func showAddresses(list []*mail.Address) string {
	var parts []string
	for _, a := range list {
		if a.Name == "" {
			parts = append(parts, a.Address)
		} else {
			parts = append(parts, a.Name+" <"+a.Address+">")
		}
	}
	return strings.Join(parts, ", ")
}

// frameHTML is a message's HTML as the preview's iframe shows it: its
// images (cid: URLs, RFC 2392) served from the message by the preview,
// and its links opened in a new tab, as a mail client opens them, rather
// than inside the frame.
func frameHTML(src string, row int) string {
	var b strings.Builder
	z := html.NewTokenizer(strings.NewReader(src))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return b.String() // io.EOF: the tokenizer reads a string
		}
		raw := z.Raw()
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			b.Write(raw)
			continue
		}
		tok := z.Token()
		changed := false
		link := false
		for i, a := range tok.Attr {
			if a.Namespace != "" {
				continue
			}
			if len(a.Val) > 4 && strings.EqualFold(a.Val[:4], "cid:") {
				id, err := url.PathUnescape(a.Val[4:]) // RFC 2392: a cid: URL is URL-encoded
				if err != nil {
					id = a.Val[4:]
				}
				tok.Attr[i].Val = fmt.Sprintf("/row/%d/cid/%s", row, url.PathEscape(id))
				changed = true
			}
			if tok.Data == "a" && a.Key == "href" && !strings.HasPrefix(a.Val, "#") {
				link = true
			}
		}
		if link {
			tok.Attr = setAttr(setAttr(tok.Attr, "target", "_blank"), "rel", "noopener noreferrer")
			changed = true
		}
		if !changed {
			b.Write(raw)
			continue
		}
		b.WriteString(tok.String())
	}
}

// setAttr sets an attribute, replacing one of the same name.
func setAttr(attrs []html.Attribute, key, val string) []html.Attribute {
	for i, a := range attrs {
		if a.Namespace == "" && a.Key == key {
			attrs[i].Val = val
			return attrs
		}
	}
	return append(attrs, html.Attribute{Key: key, Val: val})
}
