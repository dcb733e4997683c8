package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// The send benchmark: batch sends the standard campaign to a loopback SMTP
// server that takes every message and throws it away (another process, so
// that neither side is charged for the other), beside a bare go-smtp
// client that pushes the same bytes, rendered beforehand (the dry run's
// .eml files, in memory), over as many connections: the ceiling. batch's
// figure is the one it reports for its sending phase, journal included
// (fsync and all); the whole process, with the check of every message
// that comes before any sending, is given too.
//
// go-smtp's server offers PIPELINING and CHUNKING, which batch uses and
// go-smtp's client doesn't; so batch is also timed against the same
// server with the two hidden from its EHLO reply, where it speaks as the
// bare client does, a command at a time with DATA.

// serve runs the discarding server until standard input closes; it prints
// its port first. classic hides PIPELINING and CHUNKING.
func serve(classic bool) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := smtp.NewServer(discard{})
	srv.Domain = "localhost"
	srv.MaxRecipients = 1
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		srv.Close()
	}()
	var sl net.Listener = l
	if classic {
		sl = classicListener{l}
	}
	if err := srv.Serve(sl); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return err
	}
	return nil
}

// classicListener's connections leave PIPELINING and CHUNKING out of the
// EHLO reply (go-smtp writes it a line at a time).
type classicListener struct{ net.Listener }

func (l classicListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return classicConn{c}, nil
}

type classicConn struct{ net.Conn }

func (c classicConn) Write(b []byte) (int, error) {
	if s := string(b); s == "250-PIPELINING\r\n" || s == "250-CHUNKING\r\n" {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

type discard struct{}

func (discard) NewSession(*smtp.Conn) (smtp.Session, error) { return discard{}, nil }
func (discard) Reset()                                      {}
func (discard) Logout() error                               { return nil }
func (discard) Mail(string, *smtp.MailOptions) error        { return nil }
func (discard) Rcpt(string, *smtp.RcptOptions) error        { return nil }
func (discard) Data(r io.Reader) error                      { _, err := io.Copy(io.Discard, r); return err }

// startServer starts the server as a child process and returns its port
// and how to stop it.
func startServer(classic bool) (int, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return 0, nil, err
	}
	cmd := exec.Command(self, "-serve", "-classic="+strconv.FormatBool(classic))
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
		return 0, nil, fmt.Errorf("starting the SMTP server: %q, %v", line, err)
	}
	return port, func() { stdin.Close(); cmd.Wait() }, nil
}

// eml is a rendered message and its envelope.
type eml struct {
	to   string
	data []byte
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
		_, to, _ := strings.Cut(strings.TrimSuffix(filepath.Base(n), ".eml"), "-")
		msgs = append(msgs, eml{to: to, data: data})
	}
	return msgs, nil
}

// bare pushes msgs to the server over conns connections, as fast as it
// can, and returns the time it took.
func bare(port, conns int, from string, msgs []eml) (time.Duration, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := time.Now()
	for range conns {
		wg.Go(func() {
			if err := push(addr, from, msgs, &next); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	return elapsed, <-errs
}

func push(addr, from string, msgs []eml, next *atomic.Int64) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return err
	}
	for {
		i := int(next.Add(1) - 1)
		if i >= len(msgs) {
			return c.Quit()
		}
		if err := c.Mail(from, nil); err != nil {
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
}

// sendCampaign writes a copy of the campaign file in dir that sends to
// port over conns connections, with a journal of its own.
func sendCampaign(dir string, port, conns int) (string, error) {
	base, err := os.ReadFile(filepath.Join(dir, "c.toml"))
	if err != nil {
		return "", err
	}
	text := strings.Replace(string(base), `name = "bench"`, fmt.Sprintf(`name = "bench-send-%d-%d"`, conns, time.Now().UnixNano()), 1)
	text += fmt.Sprintf("\n[smtp]\nhost = \"127.0.0.1\"\nport = %d\nsecurity = \"none\"\nconnections = %d\n", port, conns)
	path := filepath.Join(dir, fmt.Sprintf("send-%d.toml", conns))
	return path, os.WriteFile(path, []byte(text), 0o644)
}

var reportRate = regexp.MustCompile(`sent (\d+), failed 0, unknown 0.* \(([0-9.]+) messages/s\)`)

// benchSend runs the send benchmark on the campaign in dir, whose dry run
// wrote out.
func benchSend(bin, dir, out string, conns []int) error {
	msgs, err := loadEML(out)
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		return fmt.Errorf("no .eml files in %s", out)
	}
	port, stop, err := startServer(false)
	if err != nil {
		return err
	}
	defer stop()
	classic, stopClassic, err := startServer(true)
	if err != nil {
		return err
	}
	defer stopClassic()
	fmt.Printf("\nsending %d messages of %d KB to a loopback SMTP server that discards them\n", len(msgs), len(msgs[0].data)>>10)
	fmt.Printf("%-6s %10s   %-28s   %-28s\n", "", "bare", "batch, PIPELINING+CHUNKING", "batch, a command at a time")
	fmt.Printf("%-6s %10s   %9s %7s %10s   %9s %7s %10s\n", "conns", "client/s", "sending/s", "ratio", "whole/s", "sending/s", "ratio", "whole/s")
	for _, n := range conns {
		elapsed, err := bare(classic, n, "news@example.org", msgs)
		if err != nil {
			return fmt.Errorf("bare client, %d connections: %w", n, err)
		}
		ceiling := float64(len(msgs)) / elapsed.Seconds()
		fmt.Printf("%-6d %10.0f", n, ceiling)
		for _, p := range []int{port, classic} {
			rate, whole, err := batchSend(bin, dir, p, n, len(msgs))
			if err != nil {
				return err
			}
			fmt.Printf("   %9.0f %6.0f%% %10.0f", rate, 100*rate/ceiling, whole)
		}
		fmt.Println()
	}
	return nil
}

// batchSend runs batch send to port over n connections and returns the
// rate it reports for sending and that of the whole run.
func batchSend(bin, dir string, port, n, messages int) (float64, float64, error) {
	toml, err := sendCampaign(dir, port, n)
	if err != nil {
		return 0, 0, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "send", "--yes", toml)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("batch send, %d connections: %v\n%s%s", n, err, stdout.String(), stderr.String())
	}
	whole := time.Since(start)
	m := reportRate.FindStringSubmatch(stdout.String())
	if m == nil || m[1] != strconv.Itoa(messages) {
		return 0, 0, fmt.Errorf("batch send, %d connections: want all %d sent, got:\n%s%s", n, messages, stdout.String(), stderr.String())
	}
	rate, _ := strconv.ParseFloat(m[2], 64)
	return rate, float64(messages) / whole.Seconds(), nil
}
