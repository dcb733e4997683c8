package deliver

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"sync"
)

// transcript writes an SMTP dialogue for --debug, a line at a time, like
// Python smtplib's set_debuglevel(1): "C:" for what batch sends, "S:" for
// what the server answers, the connection's number first. Secrets never
// reach it: the arguments of AUTH and every line of the exchange that
// follows are replaced by "***", and so is the password wherever else it
// might appear, in clear or in base64. A message's content is summed up in
// one line rather than copied.
type transcript struct {
	mu      *sync.Mutex // shared by all connections writing to out
	out     io.Writer
	id      int
	secrets []string
	partial []byte
	auth    bool // inside an AUTH exchange
	data    bool // inside DATA
	lines   int
	size    int
}

func newTranscript(out io.Writer, mu *sync.Mutex, id int, password string) *transcript {
	t := &transcript{out: out, mu: mu, id: id}
	t.hide(password)
	return t
}

// hide keeps secret, an access token, out of the lines to come, in clear
// or in base64.
func (t *transcript) hide(secret string) {
	if secret != "" {
		t.secrets = append(t.secrets, secret, base64.StdEncoding.EncodeToString([]byte(secret)))
	}
}

// note writes a line of batch's own.
func (t *transcript) note(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.out, "[%d] -- %s\n", t.id, fmt.Sprintf(format, args...))
}

// Write takes bytes in either direction, as go-smtp's DebugWriter gives
// them, and writes whole lines.
func (t *transcript) Write(b []byte) (int, error) {
	t.partial = append(t.partial, b...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(t.partial[:i]), "\r")
		t.partial = t.partial[i+1:]
		t.line(line)
	}
	return len(b), nil
}

// isReply reports whether line is a server reply: three digits, then a
// space, a hyphen or nothing.
func isReply(line string) bool {
	if len(line) < 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if line[i] < '0' || line[i] > '9' {
			return false
		}
	}
	return len(line) == 3 || line[3] == ' ' || line[3] == '-'
}

func (t *transcript) line(line string) {
	if line == syntheticGreeting {
		return
	}
	who := "C"
	switch {
	case t.data:
		if line == "." {
			t.data = false
			t.emit("C", fmt.Sprintf("<message: %d lines, %d bytes>", t.lines, t.size))
			t.emit("C", ".")
			return
		}
		t.lines++
		t.size += len(line) + 2
		return
	case isReply(line):
		who = "S"
		if t.auth && !strings.HasPrefix(line, "334") {
			t.auth = false
		}
		if strings.HasPrefix(line, "354") {
			t.data, t.lines, t.size = true, 0, 0
		}
		if strings.HasPrefix(line, "334") {
			line = "334 ***"
		}
	case t.auth:
		line = "***"
	case len(line) >= 5 && strings.EqualFold(line[:5], "AUTH "):
		mech, _, _ := strings.Cut(line[5:], " ")
		line = "AUTH " + mech + " ***"
		t.auth = true
	}
	for _, s := range t.secrets {
		line = strings.ReplaceAll(line, s, "***")
	}
	t.emit(who, line)
}

func (t *transcript) emit(who, line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.out, "[%d] %s: %s\n", t.id, who, line)
}
