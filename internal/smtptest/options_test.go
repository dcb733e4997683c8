package smtptest

import (
	"bufio"
	"crypto/tls"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TestExtensions: the EHLO reply offers PIPELINING and CHUNKING unless
// told not to, and stays a well-formed reply: its other lines kept, in
// order, the last one "250 ".
func TestExtensions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		without []Extension
	}{
		{"both", nil},
		{"without CHUNKING", []Extension{Chunking}},
		{"without PIPELINING", []Extension{Pipelining}},
		{"without either", []Extension{Pipelining, Chunking}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, Without(tc.without...))
			c := dialRaw(t, s)
			c.conn.Write([]byte("EHLO client.test\r\n"))
			got := c.reply()
			want := []string{"250-Hello client.test", "250-PIPELINING", "250-8BITMIME", "250-ENHANCEDSTATUSCODES", "250-CHUNKING", "250 SIZE"}
			want = slices.DeleteFunc(want, func(l string) bool { return slices.Contains(tc.without, Extension(l[4:])) })
			if !slices.Equal(got, want) {
				t.Errorf("EHLO reply %q, want %q", got, want)
			}
			// And to a client, which reads the reply as a whole.
			gc := dial(t, s)
			for _, e := range []Extension{Pipelining, Chunking} {
				if ok, _ := gc.Extension(string(e)); ok == slices.Contains(tc.without, e) {
					t.Errorf("the client sees %s offered: %v", e, ok)
				}
			}
		})
	}
}

// TestWithoutExtensionsWrites: the EHLO reply is filtered line by line,
// however its bytes come in writes.
func TestWithoutExtensionsWrites(t *testing.T) {
	reply := "250-Hello client.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-CHUNKING\r\n250 SIZE\r\n"
	want := "250-Hello client.test\r\n250-8BITMIME\r\n250 SIZE\r\n"
	for _, sizes := range [][]int{{len(reply)}, {1}, {7, 3}, {30, 1000}} {
		server, client := net.Pipe()
		s := &Server{cfg: config{without: []Extension{Chunking, Pipelining}}}
		c := &conn{Conn: server, s: s, lines: true}
		go func() {
			defer c.Conn.Close()
			for rest, i := reply, 0; len(rest) > 0; i++ {
				n := min(sizes[i%len(sizes)], len(rest))
				if _, err := c.Write([]byte(rest[:n])); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
				rest = rest[n:]
			}
			// A reply that ends on a line turned off ends on the one before.
			c.Write([]byte("250-Hello again\r\n250-PIPELINING\r\n250 CHUNKING\r\n"))
		}()
		var got strings.Builder
		r := bufio.NewReader(client)
		for {
			l, err := r.ReadString('\n')
			got.WriteString(l)
			if err != nil {
				break
			}
		}
		if got.String() != want+"250 Hello again\r\n" {
			t.Errorf("writes of %v: the client read %q, want %q", sizes, got.String(), want+"250 Hello again\r\n")
		}
	}
}

// testPKI returns a CA, and a certificate it issued for localhost.
func testPKI(t *testing.T) (*CA, tls.Certificate) {
	t.Helper()
	ca, err := NewCA("smtptest CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("localhost", "127.0.0.1", "::1")
	if err != nil {
		t.Fatal(err)
	}
	return ca, cert
}

func TestTLS(t *testing.T) {
	ca, cert := testPKI(t)
	tlsConfig := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
	if !slices.Equal(cert.Leaf.DNSNames, []string{"localhost"}) || len(cert.Leaf.IPAddresses) != 2 {
		t.Errorf("certificate for %q and %v, want localhost, 127.0.0.1 and ::1", cert.Leaf.DNSNames, cert.Leaf.IPAddresses)
	}
	auth := WithAuth(Auth{Username: "u", Password: "p"})
	for _, implicit := range []bool{false, true} {
		t.Run("implicit="+strconv.FormatBool(implicit), func(t *testing.T) {
			var s *Server
			var c *smtp.Client
			var err error
			if implicit {
				s = Start(t, ImplicitTLS(cert), auth)
				c, err = smtp.DialTLS(net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())), tlsConfig)
			} else {
				s = Start(t, StartTLS(cert), auth)
				// In plain text: STARTTLS, and no AUTH.
				raw := dialRaw(t, s)
				raw.conn.Write([]byte("EHLO localhost\r\n"))
				if ehlo := strings.Join(raw.reply(), "\n"); !strings.Contains(ehlo, "STARTTLS") || strings.Contains(ehlo, "AUTH") {
					t.Errorf("EHLO reply in plain text:\n%s\nwant STARTTLS and no AUTH", ehlo)
				}
				raw.cmd("QUIT")
				c, err = smtp.DialStartTLS(net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())), tlsConfig)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if ok, _ := c.Extension("STARTTLS"); ok {
				t.Error("STARTTLS offered in TLS")
			}
			if err := c.Auth(sasl.NewPlainClient("", "u", "p")); err != nil {
				t.Fatal(err)
			}
			if step, err := send(c, message("a@example.net"), "a@example.net"); err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			c.Quit()
			conns := s.Conns()
			wantHellos := []Hello{{"localhost", false}, {"localhost", true}}
			if implicit {
				wantHellos = wantHellos[1:]
			} else {
				conns = conns[1:] // the first was the look at EHLO
			}
			if len(conns) != 1 || !slices.Equal(conns[0].Hellos, wantHellos) {
				t.Fatalf("connections %+v, want one with sessions %v", conns, wantHellos)
			}
			if cmds := conns[0].Commands(); implicit && len(cmds) > 0 || !implicit && !slices.Equal(cmds, []string{"EHLO localhost", "STARTTLS"}) {
				t.Errorf("commands in plain text %q", cmds)
			}
			if in := conns[0].In; implicit && (len(in) == 0 || in[0] != 0x16) {
				t.Errorf("the first byte from the client is not a TLS handshake record: %q", in[:min(len(in), 16)])
			}
			if m := s.Messages(); len(m) != 1 || !m[0].TLS || m[0].User != "u" {
				t.Errorf("messages %+v, want one in TLS from u", m)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		t.Run(mech, func(t *testing.T) {
			s := Start(t, WithAuth(Auth{Username: "u", Password: "pw", Mechanisms: []string{mech}}))
			c := dial(t, s)
			if ok, mechs := c.Extension("AUTH"); !ok || mechs != mech {
				t.Errorf("AUTH %v %q, want %s only", ok, mechs, mech)
			}
			_, err := send(c, message("a@example.net"), "a@example.net")
			wantReply(t, err, 502, smtp.EnhancedCode{5, 7, 0})
			client := sasl.NewPlainClient("", "u", "wrong")
			if mech == "LOGIN" {
				client = sasl.NewLoginClient("u", "wrong")
			}
			wantReply(t, c.Auth(client), 535, smtp.EnhancedCode{5, 7, 8})
			client = sasl.NewPlainClient("", "u", "pw")
			if mech == "LOGIN" {
				client = sasl.NewLoginClient("u", "pw")
			}
			if err := c.Auth(client); err != nil {
				t.Fatal(err)
			}
			if step, err := send(c, message("a@example.net"), "a@example.net"); err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			if conns := s.Conns(); !slices.Equal(conns[0].Auths, []string{"u", "u"}) {
				t.Errorf("AUTH tried as %q, want u twice", conns[0].Auths)
			}
			if m := s.Messages(); len(m) != 1 || m[0].User != "u" {
				t.Errorf("messages %+v, want one from u", m)
			}
		})
	}
	t.Run("optional", func(t *testing.T) {
		s := Start(t, WithAuth(Auth{Username: "u", Password: "pw", Optional: true}))
		c := dial(t, s)
		if ok, mechs := c.Extension("AUTH"); !ok || mechs != "PLAIN LOGIN" {
			t.Errorf("AUTH %v %q, want PLAIN LOGIN", ok, mechs)
		}
		if step, err := send(c, message("a@example.net"), "a@example.net"); err != nil {
			t.Fatalf("without AUTH: %s: %v", step, err)
		}
	})
	t.Run("unknown mechanism", func(t *testing.T) {
		s := Start(t, WithAuth(Auth{Username: "u", Password: "pw", Mechanisms: []string{"CRAM-MD5"}}))
		c := dial(t, s)
		if ok, mechs := c.Extension("AUTH"); !ok || mechs != "CRAM-MD5" {
			t.Errorf("AUTH %v %q, want CRAM-MD5", ok, mechs)
		}
		wantReply(t, c.Auth(sasl.NewPlainClient("", "u", "pw")), 504, smtp.EnhancedCode{5, 7, 4})
	})
}

// TestConns: what the server records of each connection.
func TestConns(t *testing.T) {
	s := Start(t)
	c := dialRaw(t, s)
	other := dial(t, s)
	msg := strings.ReplaceAll(message("a@example.net"), "\r\n.", "\r\n..")
	for _, cmd := range []string{"EHLO client.test", "MAIL FROM:<" + sender + ">", "MAIL FROM:<" + sender + ">", "RSET",
		"MAIL FROM:<" + sender + ">", "RCPT TO:<a@example.net>", "DATA", msg + ".", "QUIT"} {
		c.cmd("%s", cmd)
	}
	if n := s.Peak(); n != 2 {
		t.Errorf("Peak %d, want 2", n)
	}
	s.Drop()
	if err := other.Noop(); err == nil {
		t.Error("a dropped connection still answers")
	}
	conns := s.Conns()
	if len(conns) != 2 || !conns[0].Closed || !conns[1].Closed {
		t.Fatalf("connections %+v, want two, closed", conns)
	}
	want := []string{"EHLO client.test", "MAIL FROM:<" + sender + ">", "MAIL FROM:<" + sender + ">", "RSET",
		"MAIL FROM:<" + sender + ">", "RCPT TO:<a@example.net>", "DATA", "QUIT"}
	if got := conns[0].Commands(); !slices.Equal(got, want) {
		t.Errorf("commands %q, want %q", got, want)
	}
	if c := conns[0]; c.ID != 1 || c.Delivered != 1 || c.Nested != 1 || len(c.Mails) != 3 || !slices.Equal(c.Hellos, []Hello{{"client.test", false}}) {
		t.Errorf("first connection: ID %d, %d delivered, %d nested, MAIL FROM %q, sessions %v; want 1, 1, 1, three, one",
			c.ID, c.Delivered, c.Nested, c.Mails, c.Hellos)
	}
}

// TestAtHello: a fault at EHLO turns a connection away, or lets it in
// after a wait.
func TestAtHello(t *testing.T) {
	t.Run("busy", func(t *testing.T) {
		s := Start(t, Fault{Stage: AtHello, Code: 421, Enhanced: [3]int{4, 7, 0}, Times: 1})
		c, err := smtp.Dial(net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wantReply(t, c.Hello("client.test"), 421, smtp.EnhancedCode{4, 7, 0})
		dial(t, s) // the second is welcome
		if conns := s.Conns(); len(conns) != 2 || len(conns[0].Hellos) != 0 || len(conns[1].Hellos) != 1 {
			t.Errorf("connections %+v, want the first turned away", conns)
		}
	})
	t.Run("hang-up", func(t *testing.T) {
		s := Start(t, Fault{Stage: AtHello, HangUp: true, Times: 1})
		c, err := smtp.Dial(net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wantHangUp(t, c.Hello("client.test"))
	})
	t.Run("when open", func(t *testing.T) {
		// Two at once; a third waits for one to go. One turned away
		// doesn't count.
		refused := make(chan string, 3)
		s := Start(t, Fault{Stage: AtHello, Code: 451, WhenOpen: 2, Notify: refused})
		first, second := dial(t, s), dial(t, s)
		for range 2 {
			c, err := smtp.Dial(net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())))
			if err != nil {
				t.Fatal(err)
			}
			wantReply(t, c.Hello("client.test"), 451, smtp.EnhancedCode{4, 0, 0})
			c.Close()
		}
		if len(refused) != 2 {
			t.Errorf("%d notices, want 2", len(refused))
		}
		first.Quit()
		_ = second
		for deadline := time.Now().Add(2 * time.Second); !s.Conns()[0].Closed && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		dial(t, s)
	})
}

// TestAfterMessages: a fault for a connection that has delivered so many.
func TestAfterMessages(t *testing.T) {
	s := Start(t, Fault{Stage: AtMail, Code: 421, Enhanced: [3]int{4, 3, 2}, AfterMessages: 2})
	for range 2 {
		c := dial(t, s)
		for i := range 2 {
			if step, err := send(c, message("a@example.net"), "a@example.net"); err != nil {
				t.Fatalf("message %d: %s: %v", i+1, step, err)
			}
		}
		_, err := send(c, message("a@example.net"), "a@example.net")
		wantReply(t, err, 421, smtp.EnhancedCode{4, 3, 2})
	}
	wantCounts(t, "Delivered", s.Delivered(), map[string]int{"a@example.net": 4})
}

// TestHoldUntilStop: a Hold that is never opened ends when the server
// stops.
func TestHoldUntilStop(t *testing.T) {
	result := make(chan error, 1)
	t.Run("server", func(t *testing.T) {
		notify := make(chan string, 1)
		s := Start(t, Fault{Stage: AtRcpt, Hold: make(chan struct{}), Notify: notify})
		c := dial(t, s)
		c.CommandTimeout = time.Minute
		go func() {
			_, err := send(c, message("a@example.net"), "a@example.net")
			result <- err
		}()
		<-notify
	})
	select {
	case err := <-result:
		wantHangUp(t, err)
	case <-time.After(2 * time.Second):
		t.Fatal("the client still waits after the server stopped")
	}
}

func TestInvalidOptions(t *testing.T) {
	_, cert := testPKI(t)
	for _, tc := range []struct {
		opts []Option
		want string
	}{
		{[]Option{Without("SMTPUTF8")}, "SMTPUTF8"},
		{[]Option{Without(Chunking), StartTLS(cert)}, "TLS"},
		{[]Option{Without(Pipelining), ImplicitTLS(cert)}, "TLS"},
		{[]Option{Without(Chunking), RefuseBDAT()}, "RefuseBDAT"},
		{[]Option{WithAuth(Auth{Password: "pw"})}, "Username"},
	} {
		tb := &fatalTB{TB: t}
		if s := Start(tb, tc.opts...); s != nil {
			t.Errorf("Start returned a server")
		}
		if !strings.Contains(tb.fatal, tc.want) {
			t.Errorf("fatal error %q doesn't name %s", tb.fatal, tc.want)
		}
	}
}

// TestClose: Close stops the server at once, from any goroutine, and
// again at Cleanup.
func TestClose(t *testing.T) {
	s := Start(t)
	c := dial(t, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Close()
	}()
	<-done
	wantHangUp(t, c.Noop())
	if nc, err := net.Dial("tcp", net.JoinHostPort(s.Host(), strconv.Itoa(s.Port()))); err == nil {
		nc.Close()
		t.Error("the server still listens")
	}
	s.Close()
}
