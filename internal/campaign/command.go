package campaign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/batch-mailer/batch/internal/merge"
)

// Commands runs the commands a campaign file gives batch for a secret
// (smtp.password_cmd, smtp.token_cmd, unsubscribe.secret_cmd), each the same way: with sh
// -c, in batch's working directory and environment, its standard input
// empty, in a process group of its own. A command must print its value and exit within Timeout, printing
// at most MaxOutput bytes; past either, it is killed with its whole process
// group, and so is whatever it leaves behind when it fails or when, after it
// exited, something it started still holds its output open. What a command
// prints is a secret: returned, never logged, in no error. What it writes on
// standard error is shown, its end, when it fails. The zero value uses the
// defaults.
type Commands struct {
	Timeout   time.Duration // 0 for DefaultCommandTimeout
	MaxOutput int           // bytes of standard output; 0 for DefaultCommandOutput
}

// The defaults of Commands: a command asking a password manager answers in
// far less than 30 seconds, and a secret is far smaller than 64 KiB.
const (
	DefaultCommandTimeout = 30 * time.Second
	DefaultCommandOutput  = 64 << 10
)

const (
	// commandWaitDelay is how long batch waits, once a command has exited
	// or been killed, for what it started in the background to let go of
	// its output; then batch closes it (exec.Cmd.WaitDelay).
	commandWaitDelay = 500 * time.Millisecond
	// commandStderr bounds what is kept of a command's standard error:
	// its last bytes, and of those its last lines.
	commandStderr      = 4 << 10
	commandStderrLines = 20
)

// What became of a command, besides an exit status (an *exec.ExitError) or
// an interruption (context.Canceled): test with errors.Is.
var (
	ErrCommandTimeout = errors.New("command did not finish in time")
	ErrCommandOutput  = errors.New("command printed too much")
	ErrCommandEmpty   = errors.New("command printed nothing")
)

// A Command is a command the campaign file gives.
type Command struct {
	Key  string // "smtp.password_cmd"
	At   string // where the file gives it: "file:line", or the file; "" for unknown
	Line string // the command, as written
	What string // what it prints, for the error: "the password"
}

// CommandError is a command that failed, ran too long, or printed too much
// or nothing. It never holds what the command printed on standard output.
type CommandError struct {
	Command
	Err     error         // ErrCommandTimeout, ErrCommandOutput, ErrCommandEmpty, context.Canceled, an *exec.ExitError…
	Stderr  string        // the end of its standard error, cleaned, one line per line; "" for none
	Timeout time.Duration // the time it had
	Limit   int           // the bytes it could print
}

func (e *CommandError) Error() string {
	var b strings.Builder
	if e.At != "" {
		b.WriteString(e.At + ": ")
	}
	fmt.Fprintf(&b, "%s: %q ", e.Key, e.Line)
	switch {
	case errors.Is(e.Err, ErrCommandTimeout):
		fmt.Fprintf(&b, "did not finish in %s, so batch killed it and what it started: it must print %s and exit without asking for anything (it runs without a terminal, its standard input empty); try it in a shell with </dev/null", e.Timeout, e.What)
	case errors.Is(e.Err, ErrCommandOutput):
		fmt.Fprintf(&b, "printed more than %s, so batch stopped it: it must print %s and nothing else", FormatSize(int64(e.Limit)), e.What)
	case errors.Is(e.Err, ErrCommandEmpty):
		fmt.Fprintf(&b, "printed nothing: it should print %s", e.What)
	case errors.Is(e.Err, context.Canceled):
		b.WriteString("was interrupted")
	default:
		fmt.Fprintf(&b, "failed (%v): run it in a shell to see why", e.Err)
	}
	if e.Stderr != "" {
		b.WriteString("; its standard error:\n" + e.Stderr)
	}
	return b.String()
}

func (e *CommandError) Unwrap() error { return e.Err }

// Output runs cmd and returns what it printed, its last line end trimmed.
func (c Commands) Output(ctx context.Context, cmd Command) (string, error) {
	out, stderr, err := c.run(ctx, cmd.Line)
	if err == nil && strings.TrimRight(string(out.buf), "\r\n") == "" {
		err = ErrCommandEmpty
	}
	if err != nil {
		return "", &CommandError{Command: cmd, Err: err, Stderr: stderr.String(), Timeout: c.timeout(), Limit: c.maxOutput()}
	}
	return strings.TrimRight(string(out.buf), "\r\n"), nil
}

func (c Commands) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultCommandTimeout
}

func (c Commands) maxOutput() int {
	if c.MaxOutput > 0 {
		return c.MaxOutput
	}
	return DefaultCommandOutput
}

// run runs line with sh -c and returns what it printed on standard output
// and on standard error. The error is ErrCommandTimeout, ErrCommandOutput,
// ctx's, or the command's.
func (c Commands) run(ctx context.Context, line string) (*capture, *tail, error) {
	tctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	out := &capture{max: c.maxOutput(), stop: cancel}
	stderr := &tail{}
	cmd := exec.CommandContext(tctx, "sh", "-c", line)
	cmd.Stdout, cmd.Stderr = out, stderr
	cmd.WaitDelay = commandWaitDelay
	inGroup(cmd)
	err := cmd.Run()
	if cmd.Process != nil && (err != nil || out.over) {
		// Whatever went wrong, nothing it started stays: a process it
		// left holding its output (exec.ErrWaitDelay, after a clean exit)
		// included.
		killGroup(cmd)
	}
	switch {
	case out.over:
		return out, stderr, ErrCommandOutput
	case ctx.Err() != nil:
		return out, stderr, ctx.Err()
	case err != nil && errors.Is(tctx.Err(), context.DeadlineExceeded):
		return out, stderr, ErrCommandTimeout
	case errors.Is(err, exec.ErrWaitDelay):
		return out, stderr, nil // it exited 0: what it printed is there
	}
	return out, stderr, err
}

// errTooMuch stops the copy of a command's output at the limit.
var errTooMuch = errors.New("output past the limit")

// capture holds a command's standard output, up to max bytes. exec copies
// the output into it with io.Copy, which calls ReadFrom, so that batch reads
// at most max+1 bytes of it, whatever the command prints.
type capture struct {
	buf  []byte
	max  int
	read int64  // bytes read from the command
	over bool   // it printed more than max
	stop func() // called when it does
}

func (c *capture) ReadFrom(r io.Reader) (int64, error) {
	start := c.read
	for {
		if len(c.buf) == cap(c.buf) {
			grown := make([]byte, len(c.buf), min(max(512, 2*cap(c.buf)), c.max+1))
			copy(grown, c.buf)
			c.buf = grown
		}
		n, err := r.Read(c.buf[len(c.buf):cap(c.buf)])
		c.buf = c.buf[:len(c.buf)+n]
		c.read += int64(n)
		if len(c.buf) > c.max {
			c.overflow()
			return c.read - start, errTooMuch
		}
		if err == io.EOF {
			return c.read - start, nil
		}
		if err != nil {
			return c.read - start, err
		}
	}
}

// Write is for a copy that doesn't use ReadFrom.
func (c *capture) Write(p []byte) (int, error) {
	c.read += int64(len(p))
	if room := c.max - len(c.buf); len(p) > room {
		c.buf = append(c.buf, p[:room]...)
		c.overflow()
		return room, errTooMuch
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

func (c *capture) overflow() {
	c.buf = c.buf[:min(len(c.buf), c.max)]
	if !c.over {
		c.over = true
		c.stop()
	}
}

// tail keeps the last bytes a command writes on standard error, never
// making it fail.
type tail struct {
	buf     []byte
	dropped bool // bytes were left out before buf
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*commandStderr {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-commandStderr:]...)
		t.dropped = true
	}
	return len(p), nil
}

// String returns the last lines, indented, each made one clean line for the
// terminal (control characters, the ESC of escape sequences included, made
// spaces), after a line saying that earlier ones were left out if they were.
func (t *tail) String() string {
	text, dropped := string(t.buf), t.dropped
	if len(text) > commandStderr {
		text, dropped = text[len(text)-commandStderr:], true
	}
	var lines []string
	for i, l := range strings.Split(text, "\n") {
		if i == 0 && dropped {
			continue // the end of a line left out
		}
		if l = merge.OneLine(l); l != "" {
			lines = append(lines, "  "+l)
		}
	}
	if n := len(lines) - commandStderrLines; n > 0 {
		lines, dropped = lines[n:], true
	}
	if len(lines) == 0 {
		return ""
	}
	if dropped {
		lines = append([]string{"  (earlier lines left out)"}, lines...)
	}
	return strings.Join(lines, "\n")
}
