package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// openPTY opens a pseudo-terminal in raw mode (no \n made \r\n) and returns
// its terminal end, for batch's stdout, and what was written to it once
// done is called, which closes both.
func openPTY(t *testing.T) (tty *os.File, done func() string) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	fd := int(ptmx.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := term.MakeRaw(int(tty.Fd())); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		io.Copy(&out, ptmx) // ends with EIO once the terminal's end is closed
	}()
	return tty, func() string {
		tty.Close()
		<-read
		ptmx.Close()
		return out.String()
	}
}

// TestCSVOnTerminal: status --failed and suppress list write their CSV's
// bytes into a pipe (TestHostileServerText), and on a terminal show a
// server's controls as escapes, as every other line.
func TestCSVOnTerminal(t *testing.T) {
	_, dir := hostileCampaign(t)
	path := filepath.Join(dir, "c.toml")
	if code, stdout, stderr := batch(t, nil, "send", "--yes", path); code != exitFailed {
		t.Fatalf("send: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, args := range [][]string{{"status", "--failed", path}, {"status", "--failed", "--raw", path}, {"suppress", "list", path}} {
		tty, done := openPTY(t)
		var stderr bytes.Buffer
		code := run(context.Background(), args, os.Stdin, tty, &stderr, func(string) string { return "" })
		out := done()
		if code != exitOK {
			t.Errorf("%s: exit %d\n%s%s", strings.Join(args, " "), code, out, stderr.String())
		}
		noControls(t, strings.Join(args, " "), out)
		if !strings.Contains(out, `no such user\u202e`) || !strings.Contains(out, "r2@example.org,") {
			t.Errorf("%s on a terminal doesn't show the server's reply as escapes:\n%s", strings.Join(args, " "), out)
		}
	}
}
