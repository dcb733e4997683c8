package deliver

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/batch-mailer/batch/internal/smtptest"
)

// countedConn counts the writes made to it, and their largest.
type countedConn struct {
	net.Conn
	writes, largest int
}

func (c *countedConn) Write(b []byte) (int, error) {
	c.writes++
	c.largest = max(c.largest, len(b))
	return c.Conn.Write(b)
}

// tlsPair is a TLS client over a gatherConn over a counted pipe, its
// handshake done, and what its server reads.
func tlsPair(t *testing.T) (*tls.Conn, *gatherConn, *countedConn, <-chan []byte) {
	t.Helper()
	ca, err := smtptest.NewCA("gather test CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("localhost")
	if err != nil {
		t.Fatal(err)
	}
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	counted := &countedConn{Conn: client}
	g := &gatherConn{Conn: counted}
	tc := tls.Client(g, &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	ts := tls.Server(server, &tls.Config{Certificates: []tls.Certificate{cert}})
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(ts)
		got <- b
	}()
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return tc, g, counted, got
}

// TestGatherOneWrite: the records TLS makes of one write go out in one
// system call, up to gatherMax; beyond, in writes of at most gatherMax;
// and what the server reads is what was written.
func TestGatherOneWrite(t *testing.T) {
	tc, g, counted, got := tlsPair(t)
	msg := bytes.Repeat([]byte("a line of a message, 35 KB in all\r\n"), 1000)
	big := bytes.Repeat([]byte("x"), 300<<10)

	counted.writes = 0
	if _, err := tc.Write(msg); err != nil {
		t.Fatal(err)
	}
	if counted.writes < 3 {
		t.Fatalf("without gathering, %d bytes went in %d writes: the test can't tell", len(msg), counted.writes)
	}

	counted.writes = 0
	g.gather()
	if _, err := tc.Write(msg); err != nil {
		t.Fatal(err)
	}
	if counted.writes != 0 {
		t.Fatalf("%d writes before send", counted.writes)
	}
	if err := g.send(); err != nil {
		t.Fatal(err)
	}
	if counted.writes != 1 {
		t.Errorf("gathered, %d bytes went in %d writes, want 1", len(msg), counted.writes)
	}

	counted.writes, counted.largest = 0, 0
	g.gather()
	if _, err := tc.Write(big); err != nil {
		t.Fatal(err)
	}
	if err := g.send(); err != nil {
		t.Fatal(err)
	}
	if counted.largest > gatherMax {
		t.Errorf("a write of %d bytes, more than gatherMax (%d)", counted.largest, gatherMax)
	}
	if want := len(big)/gatherMax + 2; counted.writes > want {
		t.Errorf("%d bytes went in %d writes, want at most %d", len(big), counted.writes, want)
	}

	tc.Close()
	all := <-got
	want := append(append(append([]byte{}, msg...), msg...), big...)
	if !bytes.Equal(all, want) {
		t.Errorf("the server read %d bytes, want the %d written", len(all), len(want))
	}
}

// TestGatherSendFails: a connection that fails under TLS fails send, and
// the gathering ends.
func TestGatherSendFails(t *testing.T) {
	tc, g, counted, _ := tlsPair(t)
	counted.Conn.Close()
	g.gather()
	if _, err := tc.Write([]byte("MAIL FROM:<a@example.org>\r\n")); err != nil {
		t.Fatalf("a kept write failed: %v", err)
	}
	if err := g.send(); err == nil {
		t.Fatal("send on a closed connection: no error")
	}
	if g.on || len(g.buf) != 0 {
		t.Errorf("after send: gathering %v, %d bytes kept", g.on, len(g.buf))
	}
}
