package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// startSink serves the discarding server on loopback, as -serve does, and
// returns its address, the client's TLS configuration and its count of
// messages taken.
func startSink(t *testing.T, hide bool) (string, *tls.Config, *atomic.Int64) {
	t.Helper()
	ca, cert, key, err := makeCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("makeCert wrote no certificate")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := new(atomic.Int64)
	srv := sink(got)
	go srv.Serve(sinkListener{Listener: l, tls: &tls.Config{Certificates: []tls.Certificate{pair}}, hide: hide})
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String(), &tls.Config{ServerName: "127.0.0.1", RootCAs: roots, MinVersion: tls.VersionTLS12}, got
}

// TestSinkBeforeTLS: in plain text the server offers STARTTLS, and not
// AUTH, whether or not it hides PIPELINING and CHUNKING.
func TestSinkBeforeTLS(t *testing.T) {
	for _, hide := range []bool{true, false} {
		addr, _, _ := startSink(t, hide)
		c, err := textproto.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadResponse(220); err != nil {
			t.Fatal(err)
		}
		if err := c.PrintfLine("EHLO example.org"); err != nil {
			t.Fatal(err)
		}
		_, msg, err := c.ReadResponse(250)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		lines := strings.Split(msg, "\n")
		for _, want := range []struct {
			ext  string
			seen bool
		}{{"STARTTLS", true}, {"AUTH PLAIN", false}, {"PIPELINING", !hide}, {"CHUNKING", !hide}} {
			if slices.Contains(lines, want.ext) != want.seen {
				t.Errorf("hide %v: EHLO reply before TLS %q: %s offered %v, want %v", hide, msg, want.ext, !want.seen, want.seen)
			}
		}
	}
}

// TestSinkAfterTLS: once encrypted (the certificate verified), the server
// offers AUTH PLAIN, and PIPELINING and CHUNKING unless it hides them.
func TestSinkAfterTLS(t *testing.T) {
	for _, hide := range []bool{true, false} {
		addr, cfg, _ := startSink(t, hide)
		c, err := smtp.DialStartTLS(addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.TLSConnectionState(); !ok {
			t.Fatalf("hide %v: no TLS after STARTTLS", hide)
		}
		if ok, mechs := c.Extension("AUTH"); !ok || mechs != "PLAIN" {
			t.Errorf("hide %v: AUTH offered %v, %q; want PLAIN", hide, ok, mechs)
		}
		for _, ext := range []string{"PIPELINING", "CHUNKING"} {
			if ok, _ := c.Extension(ext); ok == hide {
				t.Errorf("hide %v: %s offered %v", hide, ext, ok)
			}
		}
		c.Close()
	}
}

// TestSinkLogin: the server takes no message before a login, and no login
// but the bench's.
func TestSinkLogin(t *testing.T) {
	addr, cfg, got := startSink(t, true)
	c, err := smtp.DialStartTLS(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var serr *smtp.SMTPError
	if err := c.Mail(benchUser, nil); !errors.As(err, &serr) || serr.Code != smtp.ErrAuthRequired.Code {
		t.Errorf("MAIL before AUTH: %v, want %v", err, smtp.ErrAuthRequired)
	}
	if err := c.Auth(sasl.NewPlainClient("", benchUser, "wrong")); !errors.As(err, &serr) || serr.Code != smtp.ErrAuthFailed.Code {
		t.Errorf("AUTH with a wrong password: %v, want %v", err, smtp.ErrAuthFailed)
	}
	if err := c.Auth(sasl.NewPlainClient("", benchUser, benchPass)); err != nil {
		t.Errorf("AUTH with the bench's password: %v", err)
	}
	if err := c.Mail(benchUser, nil); err != nil {
		t.Errorf("MAIL after AUTH: %v", err)
	}
	if n := got.Load(); n != 0 {
		t.Errorf("%d messages taken, want none", n)
	}
}

// TestBare: the bare client sends every message once, over as many
// connections, reconnecting every perConn messages.
func TestBare(t *testing.T) {
	addr, cfg, got := startSink(t, true)
	msgs := make([]eml, 7)
	for i := range msgs {
		msgs[i] = eml{to: fmt.Sprintf("user%d@example.com", i), data: []byte("Subject: hi\r\n\r\nhello\r\n")}
	}
	if _, err := bare(addr, cfg, 2, 3, msgs); err != nil {
		t.Fatal(err)
	}
	if n := got.Load(); n != int64(len(msgs)) {
		t.Errorf("the server took %d messages, want %d", n, len(msgs))
	}
}

// TestBareWrite: the bare writer writes each message's bytes under its
// name into a directory of its own, and fails on one that exists.
func TestBareWrite(t *testing.T) {
	msgs := make([]eml, 20)
	for i := range msgs {
		msgs[i] = eml{name: fmt.Sprintf("%07d-user%d@example.com.eml", i+1, i), data: bytes.Repeat([]byte{byte('a' + i)}, 1000+i)}
	}
	dir := filepath.Join(t.TempDir(), "out")
	if _, err := bareWrite(dir, msgs); err != nil {
		t.Fatal(err)
	}
	back, err := loadEML(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(msgs) {
		t.Fatalf("%d files, want %d", len(back), len(msgs))
	}
	for i, m := range back {
		if m.name != msgs[i].name || !bytes.Equal(m.data, msgs[i].data) || m.to != fmt.Sprintf("user%d@example.com", i) {
			t.Errorf("file %d: %s (to %s), %d bytes; want %s, %d bytes", i, m.name, m.to, len(m.data), msgs[i].name, len(msgs[i].data))
		}
	}
	if _, err := bareWrite(dir, msgs); !errors.Is(err, os.ErrExist) {
		t.Errorf("writing into an existing directory: %v, want %v", err, os.ErrExist)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{5}, 5}} {
		if got := median(c.xs); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.xs, got, c.want)
		}
	}
}

// TestInTurn: of two runs compared, each comes first in every other pair.
func TestInTurn(t *testing.T) {
	var order []string
	a := func() error { order = append(order, "a"); return nil }
	b := func() error { order = append(order, "b"); return nil }
	for k := range 4 {
		if err := inTurn(k, a, b); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(order, ""); got != "abbaabba" {
		t.Errorf("runs in the order %s, want abbaabba", got)
	}
	stop := errors.New("stop")
	order = nil
	if err := inTurn(1, a, func() error { order = append(order, "b"); return stop }); err != stop || len(order) != 1 {
		t.Errorf("inTurn gave %v after %v, want the first run's error and no second run", err, order)
	}
}
