package smtptest

import (
	"bytes"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Conn is what the server saw of one connection, as Conns returns it.
type Conn struct {
	ID int // 1 for the first connection the server accepted
	// In is every byte the client sent: in plain text until TLS started,
	// then TLS records.
	In []byte
	// Hellos are the sessions: one for the EHLO after connecting and one
	// for the EHLO after STARTTLS, unless the server turned it away.
	Hellos    []Hello
	Auths     []string // the usernames AUTH tried
	Mails     []string // the MAIL FROM addresses
	Nested    int      // MAIL FROM while a transaction was open (no RSET)
	Delivered int      // messages accepted
	Closed    bool     // by either side
}

// Hello is one session of a connection.
type Hello struct {
	Name string // the client's, in EHLO
	TLS  bool
}

// Commands returns the client's commands, in order, without the message
// content and, when TLS started, only those up to STARTTLS (the rest is
// ciphertext). A BDAT chunk is skipped by its size; DATA content up to its
// dot, unless the next line is a command: the server refused that DATA
// (pipelined after a refused RCPT). A message that starts with a line
// that reads as a command would be taken for one, so test messages start
// with a header field.
func (c Conn) Commands() []string {
	if len(c.In) > 0 && c.In[0] == 0x16 {
		// A TLS handshake record: implicit TLS, all of it ciphertext,
		// whose bytes may hold a CRLF by chance.
		return nil
	}
	var cmds []string
	in := c.In
	line := func() (string, bool) {
		i := bytes.Index(in, []byte("\r\n"))
		if i < 0 {
			return "", false
		}
		l := string(in[:i])
		in = in[i+2:]
		return l, true
	}
	for {
		l, ok := line()
		if !ok {
			return cmds
		}
		if l == "" {
			continue
		}
		cmds = append(cmds, l)
		verb, arg, _ := strings.Cut(strings.ToUpper(l), " ")
		switch verb {
		case "STARTTLS":
			return cmds
		case "BDAT":
			size, _, _ := strings.Cut(arg, " ")
			if n, err := strconv.Atoi(size); err == nil && n <= len(in) {
				in = in[n:]
			}
		case "DATA":
			next, _, _ := strings.Cut(strings.ToUpper(string(in[:min(len(in), 5)])), " ")
			if slices.Contains([]string{"RSET", "MAIL", "RCPT", "DATA", "BDAT", "QUIT", "NOOP"}, strings.TrimSpace(next)) {
				continue
			}
			for {
				if l, ok := line(); !ok || l == "." {
					break
				}
			}
		}
	}
}

// listener keeps track of the connections it accepts.
type listener struct {
	net.Listener
	s *Server
}

func (l *listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	s := l.s
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &conn{Conn: nc, s: s, id: len(s.conns) + 1, lines: s.cfg.cert == nil}
	s.conns = append(s.conns, c)
	s.open++
	s.peak = max(s.peak, s.open)
	return c, nil
}

// conn is the TCP connection under go-smtp (and under TLS): it records
// what the client sends, takes the lines of the extensions turned off out
// of the EHLO reply, and can hang up right after the server's next reply.
type conn struct {
	net.Conn
	s     *Server
	id    int
	lines bool // in plain text: replies are written whole, line by line

	// Under s.mu.
	in        bytes.Buffer
	hellos    []Hello
	auths     []string
	mails     []string
	nested    int
	delivered int
	admitted  bool // a session opened (not turned away at EHLO)
	closed    bool

	wmu        sync.Mutex
	partial    []byte   // the start of a line, written without its end
	reply      [][]byte // the lines of a reply so far, held until its last
	hangUpNext atomic.Bool
	closeOnce  sync.Once
}

// record returns a copy of what c saw; s.mu is held.
func (c *conn) record() Conn {
	return Conn{
		ID:        c.id,
		In:        bytes.Clone(c.in.Bytes()),
		Hellos:    slices.Clone(c.hellos),
		Auths:     slices.Clone(c.auths),
		Mails:     slices.Clone(c.mails),
		Nested:    c.nested,
		Delivered: c.delivered,
		Closed:    c.closed,
	}
}

func (c *conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.s.mu.Lock()
		c.in.Write(b[:n])
		c.s.mu.Unlock()
	}
	if err != nil {
		c.gone()
	}
	return n, err
}

// Write writes go-smtp's replies. In plain text it writes each reply
// whole once its last line is in, without the lines of the extensions
// turned off; under TLS, go-smtp's writes are ciphertext and go through as
// they are. A Flood writes on c.Conn, past this.
func (c *conn) Write(b []byte) (int, error) {
	if !c.lines {
		n, err := c.Conn.Write(b)
		if c.hangUpNext.Load() {
			c.Close()
		}
		return n, err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for rest := b; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			c.partial = append(c.partial, rest...)
			break
		}
		l := append(c.partial, rest[:i+1]...)
		c.partial, rest = nil, rest[i+1:]
		c.reply = append(c.reply, l)
		if len(l) >= 4 && l[3] == '-' {
			continue // more lines of this reply follow
		}
		reply := withoutExtensions(c.reply, c.s.cfg.without)
		c.reply = nil
		if _, err := c.Conn.Write(bytes.Join(reply, nil)); err != nil {
			return 0, err
		}
		if c.hangUpNext.Load() {
			c.Close()
		}
	}
	return len(b), nil
}

// withoutExtensions is the one place where the server changes what go-smtp
// says. go-smtp v0.25 offers PIPELINING and CHUNKING in every EHLO reply,
// with no option to leave either out: this takes the lines of the
// extensions off out of a whole reply, and ends it on its new last line
// ("250 " where the others are "250-"). The EHLO reply is the only reply
// of several 250 lines that go-smtp writes, and each line after its first
// is an extension keyword with its parameters (RFC 5321 §4.1.1.1).
func withoutExtensions(reply [][]byte, off []Extension) [][]byte {
	if len(off) == 0 || len(reply) < 2 || !bytes.HasPrefix(reply[0], []byte("250-")) {
		return reply
	}
	kept := [][]byte{reply[0]}
	for _, l := range reply[1:] {
		text := strings.TrimRight(string(l[4:]), "\r\n")
		keyword, _, _ := strings.Cut(text, " ")
		if !slices.Contains(off, Extension(strings.ToUpper(keyword))) {
			kept = append(kept, l)
		}
	}
	for i, l := range kept {
		sep := byte('-')
		if i == len(kept)-1 {
			sep = ' '
		}
		kept[i] = append([]byte(string(l[:3])+string(sep)), l[4:]...)
	}
	return kept
}

func (c *conn) Close() error {
	c.gone()
	return c.Conn.Close()
}

// gone counts the connection closed, by either side.
func (c *conn) gone() {
	c.closeOnce.Do(func() {
		c.s.mu.Lock()
		defer c.s.mu.Unlock()
		c.closed = true
		c.s.open--
	})
}
