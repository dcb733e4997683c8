// Command batch sends a newsletter campaign: a TOML file that names a CSV
// recipient list and a Markdown template. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/batch-mailer/batch/internal/campaign"
)

const usage = `Usage:
    batch send [--yes] [--limit N] [--to ADDR] [--debug] [--shard K/N]
               [--retry-failed] [--resend-unknown] CAMPAIGN.toml
    batch send --dry-run DIR [--limit N] [--shard K/N] CAMPAIGN.toml
    batch send --mbox FILE [--limit N] [--shard K/N] CAMPAIGN.toml
    batch check CAMPAIGN.toml
    batch status [--json | --failed [--raw]] [--shard K/N] CAMPAIGN.toml
    batch preview [--listen ADDR] [--open] CAMPAIGN.toml
    batch help [COMMAND]

Commands:
    send     Check the whole campaign, then render every recipient's message
             and deliver it over SMTP as the campaign's [smtp] table says.
             On a terminal batch first says what it is about to do and asks.
             Every outcome goes to a journal in .batch/ beside the campaign
             file: run send again after a crash or Ctrl-C and it resumes,
             skipping everyone already sent.
    check    Render every message in memory and list every problem:
             campaign file, templates, missing files, invalid rows.
    status   Count the recipients in each state: sent, failed, unknown,
             pending. With --failed, print the failed rows as CSV (the list's
             columns and the server's reply in "error"), ready to fix; a
             cell a spreadsheet would run (=, +, -, @ first) gets a ' in
             front, unless --raw.
    preview  Serve the campaign as its readers will see it, on this
             machine only: every row's message (headers, HTML at desktop
             and phone width, text, attachments), the body's shapes, one
             for each combination of {{if}} branches, and check's
             problems. Pages reload when a file of the campaign changes.
             Nothing is sent.

Flags of send:
    --dry-run DIR     write one .eml file per recipient into DIR (created if
                      missing) instead of sending; nothing touches the network
    --mbox FILE       the same, into one mbox file (mboxrd, LF line ends)
                      that mutt, neomutt and aerc open as a folder
    --yes             send without asking (needed when not on a terminal)
    --limit N         send to the first N recipients not yet sent
    --to ADDR         test send: every message goes to ADDR instead of its
                      recipient, its headers unchanged but for a Message-ID
                      of its own; not recorded
    --debug           print the SMTP dialogue on stderr, passwords hidden
    --retry-failed    also send to recipients that failed for good before
    --resend-unknown  also send to recipients whose outcome is unknown (the
                      run died between handing the message over and the
                      server's reply): they may get it twice
    --shard K/N       send to part K of N of the list, split by a stable
                      hash of the address, with a journal of its own: N
                      machines or accounts, one shard each, cover the list
                      exactly once

Flags of preview:
    --listen ADDR     listen on ADDR (default 127.0.0.1:0, a free port on
                      this machine's loopback); another address warns that
                      whoever can reach it can read the list
    --open            open the preview in the default browser

Flags come before the campaign file. With SOURCE_DATE_EPOCH set (seconds
since 1970), every message carries that Date, and two dry runs of the same
campaign write identical files.

Ctrl-C (or SIGTERM) stops taking new messages, lets the ones in flight
finish, and records everything; a second Ctrl-C quits at once. It is also
how a preview ends, with exit status 0.

Exit status: 0 on success (every recipient sent); 1 when the campaign has
problems or a run fails; 2 for a usage error; 3 when some recipients failed
or their outcome is unknown (the others were sent); 130 when interrupted.
`

const (
	exitOK          = 0
	exitProblem     = 1
	exitUsage       = 2
	exitFailed      = 3
	exitInterrupted = 130
)

// errSomeFailed ends a send in which the server refused some recipients.
var errSomeFailed = errors.New("some recipients failed")

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() { os.Exit(command(os.Args[1:])) }

// command runs batch as a process: with the process's streams and
// environment, and Ctrl-C (or SIGTERM) cancelling the run, a second one
// quitting at once. It returns the exit status.
func command(args []string) int {
	tuneGC(args, os.Getenv)
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	stopping := "stopping: the messages in flight finish and are recorded (Ctrl-C again to quit at once)"
	if len(args) > 0 && args[0] == "preview" {
		stopping = "preview stopped"
	}
	go func() {
		<-sigs
		fmt.Fprintf(os.Stderr, "\nbatch: %s\n", stopping)
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "\nbatch: quit; messages that were in flight show as unknown in batch status")
		os.Exit(exitInterrupted)
	}()
	return run(ctx, args, os.Stdin, os.Stdout, os.Stderr, os.Getenv)
}

// tuneGC sets the garbage collector for batch's work, unless GOGC or
// GOMEMLIMIT say otherwise. Rendering makes short-lived garbage and keeps
// little: the default GOGC=100 spent about half of a check's CPU time in
// the collector (go run ./bench: 10,600 messages/s with it, 21,000 with
// 400). The memory limit keeps a check or dry run of a very long list
// within 64 MiB (the live heap is then mostly the set of addresses seen);
// a send is left without one, since its journal's state grows with the
// list and a limit below it would make the collector run without end.
func tuneGC(args []string, getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if getenv("GOMEMLIMIT") != "" || len(args) == 0 {
		return
	}
	if args[0] == "check" || args[0] == "status" || args[0] == "send" && slices.ContainsFunc(args, func(a string) bool {
		for _, f := range []string{"dry-run", "mbox"} {
			if a == "--"+f || a == "-"+f || strings.HasPrefix(a, "--"+f+"=") || strings.HasPrefix(a, "-"+f+"=") {
				return true
			}
		}
		return false
	}) {
		debug.SetMemoryLimit(48 << 20)
	}
}

// cli is one invocation: its output streams and environment.
type cli struct {
	stdin          *os.File // a file: batch asks whether it is a terminal
	stdout, stderr io.Writer
	getenv         func(string) string
}

// run runs batch with args and returns the exit status.
func run(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	err := c.dispatch(ctx, args)
	var ue usageError
	var probs campaign.Problems
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errSomeFailed):
		return exitFailed
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "batch: %s\n", ue.msg)
		fmt.Fprintf(stderr, "batch: run 'batch help' for usage\n")
		return exitUsage
	case errors.As(err, &probs):
		for _, p := range probs {
			fmt.Fprintf(stderr, "batch: %v\n", p)
		}
		return exitProblem
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "batch: interrupted\n")
		return exitInterrupted
	default:
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "batch: %s\n", line)
		}
		return exitProblem
	}
}

func (c *cli) dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return usageError{"no command given"}
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(c.stdout, usage)
		return nil
	case "send":
		return c.send(ctx, rest)
	case "check":
		return c.check(ctx, rest)
	case "status":
		return c.status(rest)
	case "preview":
		return c.preview(ctx, rest)
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}

// flags returns a flag set for cmd whose -h prints usage.
func (c *cli) flags(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses the flags of cmd and returns its one campaign file.
func (c *cli) parse(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(c.stdout, usage)
			return "", err
		}
		return "", usageError{err.Error()}
	}
	switch fs.NArg() {
	case 0:
		return "", usageError{fmt.Sprintf("%s: no campaign file given", fs.Name())}
	case 1:
	default:
		rest := fs.Args()[1:]
		if strings.HasPrefix(rest[0], "-") {
			return "", usageError{fmt.Sprintf("%s: flag %s after the campaign file: flags come first, as in batch %s %s %s",
				fs.Name(), rest[0], fs.Name(), strings.Join(rest, " "), fs.Arg(0))}
		}
		return "", usageError{fmt.Sprintf("%s: one campaign file expected, got %d", fs.Name(), fs.NArg())}
	}
	return fs.Arg(0), nil
}

func (c *cli) check(ctx context.Context, args []string) error {
	fs := c.flags("check")
	path, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	opts, err := c.options()
	if err != nil {
		return err
	}
	// A campaign file with problems is still checked as far as it goes,
	// so that every problem is listed at once.
	camp, loadErr := campaign.Load(path)
	if camp == nil {
		return loadErr
	}
	sum, err := camp.Check(ctx, opts)
	var all campaign.Problems
	for _, e := range []error{loadErr, err} {
		var probs campaign.Problems
		switch {
		case e == nil:
		case errors.As(e, &probs):
			all = append(all, probs...)
		default:
			return e
		}
	}
	if len(all) > 0 {
		return all
	}
	fmt.Fprintf(c.stdout, "%s: ready: %s%s\n", path, plural(sum.Messages, "message"), skipped(sum))
	if camp.DKIM != nil {
		rec, err := camp.DKIM.ZoneRecord()
		if err != nil {
			return fmt.Errorf("dkim: %w", err)
		}
		fmt.Fprintf(c.stdout, "publish this DNS TXT record for DKIM:\n  %s\n", rec)
	}
	return nil
}

// options gives the run's options from the environment.
func (c *cli) options() (campaign.Options, error) {
	opts := campaign.Options{
		Now:  time.Now(),
		Warn: func(err error) { fmt.Fprintf(c.stderr, "batch: warning: %v\n", err) },
	}
	if s := c.getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec < 0 {
			return opts, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want whole seconds since 1970-01-01 UTC", s)
		}
		opts.Now = time.Unix(sec, 0).UTC()
	}
	return opts, nil
}

func skipped(s *campaign.Summary) string {
	if s.Skipped() == 0 {
		return ""
	}
	return fmt.Sprintf(" (%s skipped: %s)", plural(s.Skipped(), "row"), skipKinds(s))
}

// skipKinds says why rows were skipped: "1 invalid, 2 repeated addresses".
func skipKinds(s *campaign.Summary) string {
	return fmt.Sprintf("%d invalid, %s", s.Invalid, plural(s.Duplicates, "repeated address"))
}

// plural gives "1 message", "2 messages".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if strings.HasSuffix(what, "s") {
		return fmt.Sprintf("%d %ses", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}
