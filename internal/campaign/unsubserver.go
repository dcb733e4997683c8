package campaign

import (
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/batch-mailer/batch/internal/suppress"
)

// The unsubscribe server (batch unsubscribe-server) answers the links
// token = true writes: a POST of RFC 8058's one-click body, or of the
// confirm page's button, adds the token's address to the suppression list
// as unsubscribed; a GET only shows the button, as link scanners follow
// GETs.

// ErrNoToken is a campaign served for unsubscribing whose [unsubscribe]
// table has no token = true: its links carry no token to check.
var ErrNoToken = errors.New("has no unsubscribe tokens")

// maxUnsubscribeBody bounds a request's body: RFC 8058's is 26 bytes,
// the confirm page's little more.
const maxUnsubscribeBody = 4 << 10

// UnsubscribeHandler returns the handler of the campaign's unsubscribe
// links. The campaign needs a suppression list and token = true, its
// secret read (ReadSecret). warn, which may be nil, is told of a list
// that can't be written.
func (c *Campaign) UnsubscribeHandler(warn func(error)) (http.Handler, error) {
	if c.Suppress == "" {
		return nil, fmt.Errorf(`%s %w: add suppress = "../suppressed.csv" (a path relative to it), the list the unsubscribed are added to`, c.Path, ErrNoSuppressionList)
	}
	if c.Unsubscribe == nil || !c.Unsubscribe.Token {
		return nil, fmt.Errorf(`%s %w: add token = true and secret_env or secret_cmd to [unsubscribe], so that its links can't be forged`, c.Path, ErrNoToken)
	}
	if c.Unsubscribe.key == nil {
		return nil, fmt.Errorf("%s: the unsubscribe secret was not read", c.Path)
	}
	l, err := c.suppressionList()
	if err != nil {
		return nil, err
	}
	return &unsubscribeHandler{u: c.Unsubscribe, list: l, campaign: c.Name, warn: warn}, nil
}

type unsubscribeHandler struct {
	u        *Unsubscribe
	mu       sync.Mutex // a List is for one goroutine at a time
	list     *suppress.List
	campaign string
	warn     func(error)
}

var unsubscribePage = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{{.Title}}</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 3em auto; padding: 0 1em">
<h1>{{.Title}}</h1><p>{{.Text}}</p>
{{if .Button}}<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>{{end}}
</body></html>
`))

type unsubscribeView struct {
	Title, Text string
	Button      bool
}

func (h *unsubscribeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	addr, err := h.u.Verify(r.URL.Query().Get("t"))
	if err != nil {
		h.page(w, http.StatusBadRequest, unsubscribeView{Title: "Invalid link", Text: "This unsubscribe link is not valid: it may have been cut short. Copy the whole link from the message, or reply to the message to be unsubscribed."})
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.page(w, http.StatusOK, unsubscribeView{Title: "Unsubscribe", Text: "Unsubscribe " + addr + " from these messages?", Button: true})
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, maxUnsubscribeBody)
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "malformed form", http.StatusBadRequest)
			return
		}
		if r.PostForm.Get("List-Unsubscribe") != "One-Click" {
			http.Error(w, "the body must be List-Unsubscribe=One-Click (RFC 8058)", http.StatusBadRequest)
			return
		}
		if err := h.add(addr); err != nil {
			if h.warn != nil {
				h.warn(fmt.Errorf("%s not added to the suppression list: %w", addr, err))
			}
			http.Error(w, "the address could not be unsubscribed: try again later", http.StatusInternalServerError)
			return
		}
		h.page(w, http.StatusOK, unsubscribeView{Title: "Unsubscribed", Text: addr + " will get no more of these messages."})
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// add appends addr to the list as unsubscribed, unless it is on it.
func (h *unsubscribeHandler) add(addr string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.list.Append(suppress.Entry{Email: addr, Reason: suppress.Unsubscribed, Campaign: h.campaign})
	return err
}

func (h *unsubscribeHandler) page(w http.ResponseWriter, status int, v unsubscribeView) {
	var b strings.Builder
	if err := unsubscribePage.Execute(&b, v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, b.String())
}
