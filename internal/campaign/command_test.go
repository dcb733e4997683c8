//go:build unix

package campaign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// passwordCmd is how the tests name a command: as password_cmd at line 9.
func passwordCmd(line string) Command {
	return Command{Key: "smtp.password_cmd", At: "c.toml:9", Line: line, What: "the password"}
}

// commandError returns err as a *CommandError, or fails.
func commandError(t *testing.T, err error) *CommandError {
	t.Helper()
	var ce *CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v (%T), want a *CommandError", err, err)
	}
	if !strings.HasPrefix(ce.Error(), "c.toml:9: smtp.password_cmd: ") {
		t.Errorf("%q does not name the file, line and key", ce.Error())
	}
	return ce
}

// readPid reads the number a command wrote into file.
func readPid(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// wantDead waits until process pid is gone (or a zombie: killed, its
// parent gone, and not reaped where the first process doesn't reap), and
// fails if it is still running after a minute.
func wantDead(t *testing.T, pid int) {
	t.Helper()
	for range 600 {
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			return
		}
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			// pid (comm) state …
			if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("process %d that the command started is still running", pid)
}

func TestCommandOutputTrimmed(t *testing.T) {
	tests := []struct{ line, want string }{
		{"echo s3cret", "s3cret"},
		{`printf 's3cret\r\n'`, "s3cret"},
		{`printf 's3cret\n\n'`, "s3cret"},
		{`printf ' s3 cret '`, " s3 cret "}, // only line ends go
		{`printf 'pa\nss\n'`, "pa\nss"},
	}
	for _, tt := range tests {
		got, err := Commands{}.Output(context.Background(), passwordCmd(tt.line))
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.line, got, err, tt.want)
		}
	}
}

// TestCommandTimeout: a command that doesn't finish is killed at the
// timeout, and the process it started in the background with it.
func TestCommandTimeout(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	line := "sleep 1000 & echo $! > " + pidFile + "; echo 'Passphrase:' >&2; wait"
	_, err := Commands{Timeout: 300 * time.Millisecond}.Output(context.Background(), passwordCmd(line))
	if !errors.Is(err, ErrCommandTimeout) {
		t.Fatalf("got %v, want ErrCommandTimeout", err)
	}
	ce := commandError(t, err)
	for _, want := range []string{"did not finish in 300ms", "killed it", "without asking", "standard error:\n  Passphrase:"} {
		if !strings.Contains(ce.Error(), want) {
			t.Errorf("%q: no %q", ce.Error(), want)
		}
	}
	wantDead(t, readPid(t, pidFile))
}

// TestCommandFlood: yes is stopped at the output limit, and batch reads no
// more than the limit (and the byte that passes it).
func TestCommandFlood(t *testing.T) {
	c := Commands{}
	out, _, err := c.run(context.Background(), `yes hun""ter2`)
	if !errors.Is(err, ErrCommandOutput) {
		t.Fatalf("got %v, want ErrCommandOutput", err)
	}
	if out.read > DefaultCommandOutput+1 || len(out.buf) != DefaultCommandOutput || cap(out.buf) > DefaultCommandOutput+1 {
		t.Errorf("read %d bytes, kept %d (capacity %d): want at most %d", out.read, len(out.buf), cap(out.buf), DefaultCommandOutput+1)
	}

	_, err = c.Output(context.Background(), passwordCmd(`yes hun""ter2`))
	ce := commandError(t, err)
	if !errors.Is(err, ErrCommandOutput) || !strings.Contains(ce.Error(), `"yes hun\"\"ter2" printed more than 64 KiB, so batch stopped it`) {
		t.Errorf("got %q", ce.Error())
	}
	if strings.Contains(ce.Error(), "hunter2") {
		t.Errorf("the output is in the error: %q", ce.Error())
	}

	// A smaller limit is the value's, and the command's group goes.
	pidFile := filepath.Join(t.TempDir(), "pid")
	_, err = Commands{MaxOutput: 10}.Output(context.Background(), passwordCmd("sleep 1000 & echo $! > "+pidFile+"; echo 0123456789a; wait"))
	if ce := commandError(t, err); !errors.Is(err, ErrCommandOutput) || !strings.Contains(ce.Error(), "printed more than 10 bytes") {
		t.Errorf("got %v", err)
	}
	wantDead(t, readPid(t, pidFile))
}

// TestCommandLeavesOutputOpen: a command that exits, its password printed,
// while a process it started holds its output open: batch takes the
// password, closes the output after a short wait (not the timeout), and
// kills what was left.
func TestCommandLeavesOutputOpen(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	type result struct {
		pw  string
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		pw, err := Commands{Timeout: 20 * time.Second}.Output(context.Background(), passwordCmd("sleep 1000 & echo $! > "+pidFile+"; echo s3cret"))
		done <- result{pw, err}
	}()
	// Not a measure of speed: without WaitDelay, Output waits for the
	// sleep, past the timeout (exec stops watching the context once the
	// command has exited).
	var r result
	select {
	case r = <-done:
	case <-time.After(time.Minute):
		pid := readPid(t, pidFile)
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("Output still waits for the output held open by process %d", pid)
	}
	if r.err != nil || r.pw != "s3cret" {
		t.Fatalf("got %q, %v; want s3cret", r.pw, r.err)
	}
	t.Logf("returned after %s", time.Since(start))
	wantDead(t, readPid(t, pidFile))
}

// TestCommandFails: a failed command's standard error is shown, the end of
// it when there is much, and its standard output never.
func TestCommandFails(t *testing.T) {
	_, err := Commands{}.Output(context.Background(), passwordCmd(`echo hun""ter2; echo 'smtp/news is not in the password store' >&2; exit 3`))
	ce := commandError(t, err)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("got %v, want exit status 3", err)
	}
	if want := "failed (exit status 3): run it in a shell to see why; its standard error:\n  smtp/news is not in the password store"; !strings.HasSuffix(ce.Error(), want) {
		t.Errorf("got %q, want it to end %q", ce.Error(), want)
	}
	if strings.Contains(ce.Error(), "hunter2") {
		t.Errorf("the output is in the error: %q", ce.Error())
	}

	// Much on standard error: its last lines, cleaned.
	_, err = Commands{}.Output(context.Background(), passwordCmd(`seq 1 100000 >&2; printf 'last\033[0m\n' >&2; exit 1`))
	ce = commandError(t, err)
	lines := strings.Split(ce.Stderr, "\n")
	if len(lines) != commandStderrLines+1 || lines[0] != "  (earlier lines left out)" || lines[len(lines)-2] != "  100000" || lines[len(lines)-1] != "  last [0m" {
		t.Errorf("standard error shown as %q", ce.Stderr)
	}

	// Nothing on standard error: nothing more.
	_, err = Commands{}.Output(context.Background(), passwordCmd("exit 3"))
	if got := commandError(t, err).Error(); got != `c.toml:9: smtp.password_cmd: "exit 3" failed (exit status 3): run it in a shell to see why` {
		t.Errorf("got %q", got)
	}
}

func TestCommandEmpty(t *testing.T) {
	for _, line := range []string{"true", "echo", `printf '\r\n\n'`} {
		_, err := Commands{}.Output(context.Background(), passwordCmd(line))
		if !errors.Is(err, ErrCommandEmpty) {
			t.Errorf("%s: got %v, want ErrCommandEmpty", line, err)
			continue
		}
		if got, want := err.Error(), fmt.Sprintf("c.toml:9: smtp.password_cmd: %q printed nothing: it should print the password", line); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// TestCommandInterrupted: Ctrl-C (the context canceled) is an interruption,
// not a timeout.
func TestCommandInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pidFile := filepath.Join(t.TempDir(), "pid")
	done := make(chan error)
	go func() {
		_, err := Commands{}.Output(ctx, passwordCmd("sleep 1000 & echo $! > "+pidFile+"; wait"))
		done <- err
	}()
	for {
		if b, err := os.ReadFile(pidFile); err == nil && len(b) > 0 && b[len(b)-1] == '\n' {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrCommandTimeout) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if got := commandError(t, err).Error(); !strings.HasSuffix(got, "was interrupted") {
		t.Errorf("got %q", got)
	}
	wantDead(t, readPid(t, pidFile))
}

// TestPasswordCmd: the password comes from password_cmd, run with the
// Commands of the Secrets given, and its error names the campaign file
// and the key's line.
func TestPasswordCmd(t *testing.T) {
	smtp := "[smtp]\nhost = \"smtp.example.org\"\nusername = \"news\"\npassword_cmd = %q\n"
	c, _, err := load(t, minimal+fmt.Sprintf(smtp, `printf 's3cret\n'`), nil)
	if err != nil {
		t.Fatal(err)
	}
	sec := Secrets{Getenv: func(string) string { return "from the environment" }}
	if pw, err := c.SMTP.Password(context.Background(), sec); pw != "s3cret" || err != nil {
		t.Errorf("got %q, %v; want s3cret", pw, err)
	}

	c, path, err := load(t, minimal+fmt.Sprintf(smtp, "sleep 1000"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sec.Commands.Timeout = 100 * time.Millisecond
	_, err = c.SMTP.Password(context.Background(), sec)
	var ce *CommandError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCommandTimeout) {
		t.Fatalf("got %v, want a timeout", err)
	}
	if ce.At != path+":9" || ce.Key != "smtp.password_cmd" || !strings.HasPrefix(err.Error(), path+`:9: smtp.password_cmd: "sleep 1000" did not finish in 100ms`) {
		t.Errorf("got %+v: %v", ce, err)
	}
}
