package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/batch-mailer/batch/internal/smtptest"
)

// The send benchmark: batch sends the standard campaign to a loopback SMTP
// server that takes every message and throws it away, beside a bare go-smtp
// client that pushes the same bytes, rendered beforehand (the dry run's
// .eml files, in memory), over as many connections: the ceiling. Both
// speak as to a submission server: STARTTLS (a certificate made for the
// run, its CA given to batch with [smtp] ca_file), AUTH PLAIN (batch's password
// through password_env), and a new connection every -per-conn messages
// (batch's max_per_connection).
//
// The server, the bare client and batch are each a process of their own
// (the first two being this binary, with -serve and -bare), so that none
// is charged for another; where taskset exists and there are two CPUs or
// more, the server runs on CPU 1 and the clients on CPU 0. The figure that
// counts is batch's whole process, start to exit, with the check of every
// message that comes before any sending; the rate batch reports for its
// sending phase, journal included (fsync and all), is given too.
//
// go-smtp's server offers PIPELINING and CHUNKING, which batch uses and
// go-smtp's client doesn't; the first table is against a server with the
// two hidden from its EHLO reply, where batch speaks as the bare client
// does, a command at a time with DATA; the second against the same server
// offering both. The bare client runs against the first: it would send the
// same commands to the second.

// The login batch and the bare client give, and the server wants.
const (
	benchUser    = "news@example.org"
	benchPassEnv = "BATCH_BENCH_PASSWORD"
	benchPass    = "bench-password"
)

// serve runs the discarding server until standard input closes; it prints
// its port first. classic hides PIPELINING and CHUNKING; cert and key are
// the PEM files of its certificate.
func serve(classic bool, cert, key string) error {
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := sink(new(atomic.Int64))
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		srv.Close()
	}()
	sl := sinkListener{Listener: l, tls: &tls.Config{Certificates: []tls.Certificate{pair}}, hide: classic}
	if err := srv.Serve(sl); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return err
	}
	return nil
}

// sink is the discarding server, to serve a sinkListener; got counts the
// messages it took.
func sink(got *atomic.Int64) *smtp.Server {
	srv := smtp.NewServer(discard{got: got})
	srv.Domain = "localhost"
	srv.MaxRecipients = 1
	// AUTH is offered only once sinkConn has done STARTTLS, which go-smtp
	// doesn't see.
	srv.AllowInsecureAuth = true
	return srv
}

// sinkListener's connections are sinkConns.
type sinkListener struct {
	net.Listener
	tls  *tls.Config
	hide bool
}

func (l sinkListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sinkConn{Conn: c, tls: l.tls, hide: l.hide}, nil
}

// sinkConn does STARTTLS itself, below go-smtp, so that it can still edit
// go-smtp's EHLO reply (written a line at a time) once the connection is
// encrypted: it offers STARTTLS before, AUTH only after, and with hide
// leaves PIPELINING and CHUNKING out. go-smtp reads and writes a
// connection from one goroutine, so the swap needs no lock.
type sinkConn struct {
	net.Conn // the TCP connection, then the TLS one over it
	tls      *tls.Config
	hide     bool
	secure   bool
}

func (c *sinkConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.secure || !strings.EqualFold(string(b[:n]), "STARTTLS\r\n") {
		return n, err
	}
	// The client waits for the reply, so its command came alone.
	if _, err := io.WriteString(c.Conn, "220 2.0.0 Ready to start TLS\r\n"); err != nil {
		return 0, err
	}
	t := tls.Server(c.Conn, c.tls)
	if err := t.Handshake(); err != nil {
		return 0, err
	}
	c.Conn, c.secure = t, true
	return c.Conn.Read(b)
}

func (c *sinkConn) Write(b []byte) (int, error) {
	line := string(b)
	switch {
	case c.hide && (line == "250-PIPELINING\r\n" || line == "250-CHUNKING\r\n"),
		!c.secure && strings.HasPrefix(line, "250-AUTH "):
		return len(b), nil
	case !c.secure && line == "250-8BITMIME\r\n":
		if _, err := io.WriteString(c.Conn, "250-STARTTLS\r\n"); err != nil {
			return 0, err
		}
	}
	return c.Conn.Write(b)
}

// discard is the server's backend: it takes a message once the client has
// logged in, counts it, and throws it away.
type discard struct{ got *atomic.Int64 }

func (d discard) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &sinkSession{got: d.got}, nil
}

type sinkSession struct {
	got    *atomic.Int64
	authed bool
}

func (s *sinkSession) Reset()        {}
func (s *sinkSession) Logout() error { return nil }

func (s *sinkSession) Mail(string, *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	return nil
}

func (s *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }

func (s *sinkSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.got.Add(1)
	return nil
}

func (s *sinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != benchUser || pass != benchPass {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

// makeCert makes a CA (smtptest's) and a certificate it issued for
// 127.0.0.1, writes the CA's certificate, the server's and its key into
// dir, and returns their files' paths.
func makeCert(dir string) (ca, cert, key string, err error) {
	auth, err := smtptest.NewCA("batch bench")
	if err != nil {
		return "", "", "", err
	}
	pair, err := auth.Issue("127.0.0.1")
	if err != nil {
		return "", "", "", err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(pair.PrivateKey)
	if err != nil {
		return "", "", "", err
	}
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, f := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{ca, "CERTIFICATE", auth.Certificate().Raw, 0o644},
		{cert, "CERTIFICATE", pair.Certificate[0], 0o644},
		{key, "PRIVATE KEY", kder, 0o600},
	} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.mode); err != nil {
			return "", "", "", err
		}
	}
	return ca, cert, key, nil
}

// pinning is how the server and the clients are run: under taskset, the
// server on CPU 1 and the clients on CPU 0, where it exists and there are
// two CPUs or more.
type pinning struct {
	server, client []string // the command's first words
	note           string
}

func pin() pinning {
	taskset, err := exec.LookPath("taskset")
	switch {
	case err != nil:
		return pinning{note: "unpinned: no taskset"}
	case runtime.NumCPU() < 2:
		return pinning{note: "unpinned: one CPU"}
	}
	return pinning{
		server: []string{taskset, "-c", "1"},
		client: []string{taskset, "-c", "0"},
		note:   "pinned with taskset: the server to CPU 1, the bare client and batch to CPU 0",
	}
}

// command is name and args, after the pinning's words.
func command(pinned []string, name string, args ...string) *exec.Cmd {
	all := append(append(append([]string{}, pinned...), name), args...)
	return exec.Command(all[0], all[1:]...)
}

// startServer starts the server as a child process and returns its port
// and how to stop it.
func startServer(p pinning, classic bool, cert, key string) (int, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return 0, nil, err
	}
	cmd := command(p.server, self, "-serve", "-classic="+strconv.FormatBool(classic), "-cert", cert, "-key", key)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	port, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, nil, fmt.Errorf("starting the SMTP server: %q, %v", line, err)
	}
	return port, func() { stdin.Close(); cmd.Wait() }, nil
}

// eml is a rendered message, its file's name and its envelope.
type eml struct {
	name, to string
	data     []byte
}

// loadEML reads a dry run's files, in list order.
func loadEML(dir string) ([]eml, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	msgs := make([]eml, 0, len(names))
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		base := filepath.Base(n)
		_, to, _ := strings.Cut(strings.TrimSuffix(base, ".eml"), "-")
		msgs = append(msgs, eml{name: base, to: to, data: data})
	}
	return msgs, nil
}

// bareClient is the bench run with -bare: it reads the .eml files, pushes
// them to the server over o.bare connections, perConn messages on each,
// and prints how long the pushing took, in seconds.
func bareClient(o childOptions, perConn int) error {
	msgs, err := loadEML(o.eml)
	if err != nil {
		return err
	}
	pem, err := os.ReadFile(o.ca)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s: no certificate", o.ca)
	}
	// As batch's: verified, no session cache.
	cfg := &tls.Config{ServerName: "127.0.0.1", RootCAs: roots, MinVersion: tls.VersionTLS12}
	elapsed, err := bare(net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port)), cfg, o.bare, perConn, msgs)
	if err != nil {
		return err
	}
	fmt.Println(elapsed.Seconds())
	return nil
}

// bare pushes msgs to addr over conns connections, as fast as it can, and
// returns the time it took.
func bare(addr string, cfg *tls.Config, conns, perConn int, msgs []eml) (time.Duration, error) {
	var next atomic.Int64
	return together(conns, func() error {
		for next.Load() < int64(len(msgs)) {
			if err := session(addr, cfg, perConn, msgs, &next); err != nil {
				return err
			}
		}
		return nil
	})
}

// session sends up to perConn of msgs on one connection, STARTTLS and
// AUTH PLAIN first.
func session(addr string, cfg *tls.Config, perConn int, msgs []eml, next *atomic.Int64) error {
	c, err := smtp.DialStartTLS(addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", benchUser, benchPass)); err != nil {
		return err
	}
	for range perConn {
		i := int(next.Add(1) - 1)
		if i >= len(msgs) {
			break
		}
		if err := c.Mail(benchUser, nil); err != nil {
			return err
		}
		if err := c.Rcpt(msgs[i].to, nil); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		if _, err := w.Write(msgs[i].data); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	return c.Quit()
}

// sendBench is what the send benchmark runs on.
type sendBench struct {
	bin, work      string
	camp           firstCase
	msgs           []eml
	pairs, perConn int
	pin            pinning
	ca             string // the file of the CA's certificate, which issued the server's
	ports          [2]int // the classic server's, the other's
}

// sendRun is one pair's figures, messages a second: the bare client's, and
// batch's whole process and sending phase against each server.
type sendRun struct {
	bare         float64
	whole, phase [2]float64
}

// benchSend runs the send benchmark over each of conns connections.
func benchSend(b sendBench, conns []int) error {
	if _, err := os.Stat(b.camp.out); err != nil {
		// Deleted to make room: the bare client reads the files.
		if _, err := bareWrite(b.camp.out, b.msgs); err != nil {
			return err
		}
	}
	ca, cert, key, err := makeCert(b.work)
	if err != nil {
		return err
	}
	b.ca, b.pin = ca, pin()
	for i, classic := range []bool{true, false} {
		port, stop, err := startServer(b.pin, classic, cert, key)
		if err != nil {
			return err
		}
		defer stop()
		b.ports[i] = port
	}
	runs := make([][]sendRun, len(conns))
	for i, n := range conns {
		for k := range b.pairs {
			r, err := b.pair(n, k)
			if err != nil {
				return err
			}
			runs[i] = append(runs[i], r)
		}
	}
	fmt.Printf("\nsending %d messages of %d KB to a loopback SMTP server that discards them: STARTTLS, AUTH PLAIN, %d messages a connection; %s; %d pairs\n",
		len(b.msgs), len(b.msgs[0].data)>>10, b.perConn, b.pin.note, b.pairs)
	for i, title := range []string{"neither PIPELINING nor CHUNKING (target: whole process 0.95x or more at 1 and 2 connections)", "PIPELINING and CHUNKING (the same bare client's runs)"} {
		fmt.Printf("\n%s, medians in messages/s\n", title)
		fmt.Printf("%-6s %10s   %9s %7s %14s   %9s %7s\n", "conns", "bare", "batch", "ratio", "pairs' ratios", "sending", "ratio")
		for j, n := range conns {
			printSendRow(n, runs[j], i)
		}
	}
	return nil
}

// printSendRow prints the medians of runs against server i (0 classic).
func printSendRow(conns int, runs []sendRun, i int) {
	var bare, whole, phase, ratios []float64
	for _, r := range runs {
		bare, whole, phase = append(bare, r.bare), append(whole, r.whole[i]), append(phase, r.phase[i])
		ratios = append(ratios, r.whole[i]/r.bare)
	}
	mb := median(bare)
	fmt.Printf("%-6d %10.0f   %9.0f %6.2fx %14s   %9.0f %6.2fx\n", conns, mb, median(whole), median(whole)/mb, span(ratios), median(phase), median(phase)/mb)
}

// pair runs the bare client and batch against each server, over n
// connections: the bare client first in pair k even, batch first in pair
// k odd (inTurn).
func (b sendBench) pair(n, k int) (sendRun, error) {
	var r sendRun
	bare := func() (err error) {
		if r.bare, err = b.bareRun(n); err != nil {
			return fmt.Errorf("bare client, %d connections: %w", n, err)
		}
		return nil
	}
	batch := func() (err error) {
		for i, port := range b.ports {
			if r.phase[i], r.whole[i], err = b.batchSend(port, n); err != nil {
				return err
			}
		}
		return nil
	}
	return r, inTurn(k, bare, batch)
}

// bareRun runs the bare client over n connections to the classic server,
// and returns its rate.
func (b sendBench) bareRun(n int) (float64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := command(b.pin.client, self, "-bare", strconv.Itoa(n), "-port", strconv.Itoa(b.ports[0]),
		"-eml", b.camp.out, "-ca", b.ca, "-per-conn", strconv.Itoa(b.perConn))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("%v\n%s", err, stderr.String())
	}
	secs, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return 0, fmt.Errorf("its output %q: %v", out, err)
	}
	return float64(len(b.msgs)) / secs, nil
}

// sendCampaign writes a copy of the campaign file that sends to port over
// conns connections, with a journal of its own.
func (b sendBench) sendCampaign(port, conns int) (string, error) {
	base, err := os.ReadFile(filepath.Join(b.camp.dir, "c.toml"))
	if err != nil {
		return "", err
	}
	text := strings.Replace(string(base), `name = "bench"`, fmt.Sprintf(`name = "bench-send-%d-%d"`, conns, time.Now().UnixNano()), 1)
	text += fmt.Sprintf(`
[smtp]
host = "127.0.0.1"
port = %d
security = "starttls"
ca_file = %q
username = %q
password_env = %q
connections = %d
max_per_connection = %d
`, port, b.ca, benchUser, benchPassEnv, conns, b.perConn)
	path := filepath.Join(b.camp.dir, fmt.Sprintf("send-%d.toml", conns))
	return path, os.WriteFile(path, []byte(text), 0o644)
}

var reportRate = regexp.MustCompile(`sent (\d+), failed 0, unknown 0.* \(([0-9.]+) messages/s\)`)

// batchSend runs batch send to port over n connections and returns the
// rate it reports for sending and that of its whole process.
func (b sendBench) batchSend(port, n int) (float64, float64, error) {
	toml, err := b.sendCampaign(port, n)
	if err != nil {
		return 0, 0, err
	}
	var stdout, stderr bytes.Buffer
	cmd := command(b.pin.client, b.bin, "send", "--yes", toml)
	cmd.Env = append(os.Environ(), benchPassEnv+"="+benchPass)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("batch send, %d connections: %v\n%s%s", n, err, stdout.String(), stderr.String())
	}
	whole := time.Since(start)
	m := reportRate.FindStringSubmatch(stdout.String())
	if m == nil || m[1] != strconv.Itoa(len(b.msgs)) {
		return 0, 0, fmt.Errorf("batch send, %d connections: want all %d sent, got:\n%s%s", n, len(b.msgs), stdout.String(), stderr.String())
	}
	rate, _ := strconv.ParseFloat(m[2], 64)
	return rate, float64(len(b.msgs)) / whole.Seconds(), nil
}
