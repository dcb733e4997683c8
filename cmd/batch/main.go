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
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/batch-mailer/batch/internal/campaign"
)

const (
	exitOK          = 0
	exitProblem     = 1
	exitUsage       = 2
	exitFailed      = 3
	exitQuota       = 4
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
	tuneProcs(args, os.Getenv)
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	stopping := "stopping: the messages in flight finish and are recorded (Ctrl-C again to quit at once)"
	if len(args) > 0 && args[0] == "preview" {
		stopping = "preview stopped"
	}
	if len(args) > 0 && args[0] == "unsubscribe-server" {
		stopping = "unsubscribe server stopped"
	}
	go func() {
		<-sigs
		fmt.Fprintf(os.Stderr, "\nbatch: %s\n", stopping)
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "\nbatch: quit; a message in flight whose end had gone, or was about to, shows as unknown in batch status, the rest as pending")
		os.Exit(exitInterrupted)
	}()
	return run(ctx, args, os.Stdin, os.Stdout, os.Stderr, os.Getenv)
}

// tuneGC sets the garbage collector for batch's work, unless GOGC or
// GOMEMLIMIT say otherwise. Rendering makes short-lived garbage and keeps
// little, so the default GOGC=100 spends much of a check's CPU time in the
// collector (ARCHITECTURE.md has the figures; go run ./bench measures
// them). The memory limit, 48 MiB, keeps a check, a status or a send to
// files (a dry run, an mbox) of a very long list within 64 MiB (the live
// heap is then mostly the set of addresses seen);
// a send is left without one, since its journal's state grows with the
// list and a limit below it would make the collector run without end.
func tuneGC(args []string, getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if getenv("GOMEMLIMIT") != "" || len(args) == 0 {
		return
	}
	if args[0] == "check" || args[0] == "status" || localSend(args) {
		debug.SetMemoryLimit(48 << 20)
	}
}

// localSend reports whether args are a send that writes files (a dry run,
// an mbox) rather than reaching a server.
func localSend(args []string) bool {
	return len(args) > 0 && args[0] == "send" && slices.ContainsFunc(args, func(a string) bool {
		for _, f := range []string{"dry-run", "mbox"} {
			if a == "--"+f || a == "-"+f || strings.HasPrefix(a, "--"+f+"=") || strings.HasPrefix(a, "-"+f+"=") {
				return true
			}
		}
		return false
	})
}

// tuneProcs gives a send to a server two Ps (runtime.GOMAXPROCS) when it
// would have one (a single core, or a process pinned to one), unless
// GOMAXPROCS says otherwise. The journal's goroutine syncs the "sending"
// record while the connection talks to the server, and an fdatasync holds
// its P for as long as the disk takes: on one P, a reply that comes
// meanwhile waits unseen until the runtime takes the P back (sysmon, some
// 20 µs to 10 ms later), and every message pays for it. With a second P
// the connection goes on while the journal waits for the disk, and the
// kernel shares the core between them.
func tuneProcs(args []string, getenv func(string) string) {
	if getenv("GOMAXPROCS") != "" || len(args) == 0 || args[0] != "send" || localSend(args) {
		return
	}
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
}

// cli is one invocation: its output streams and environment.
type cli struct {
	stdin          *os.File // a file: batch asks whether it is a terminal
	stdout, stderr io.Writer
	// data is where a file format goes (status --failed's CSV, status
	// --json, the suppression list): stdout as it is, the bytes the format holds,
	// unless stdout is a terminal, where it is made inert as the rest.
	data   io.Writer
	getenv func(string) string
	// parsing, if set, is given each flag set before it parses: a test
	// compares the flags commands define with those the usage lists.
	parsing func(*flag.FlagSet)
}

// run runs batch with args and returns the exit status.
func run(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer, getenv func(string) string) int {
	// What batch prints leaves it here, made inert: see inertWriter.
	out, errOut := newInertWriter(stdout), newInertWriter(stderr)
	defer out.flush()
	defer errOut.flush()
	data := stdout
	if f, ok := stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		data = out
	}
	stdout, stderr = out, errOut // and so do the errors below
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, data: data, getenv: getenv}
	err := c.dispatch(ctx, args)
	var ue usageError
	var fe *flagError
	var probs campaign.Problems
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errSomeFailed):
		return exitFailed
	case errors.Is(err, errQuotaSaid):
		return exitQuota
	case errors.As(err, &ue), errors.As(err, &fe):
		msg := ue.msg
		if fe != nil {
			msg = fe.msg
		}
		for _, line := range strings.Split(msg, "\n") {
			fmt.Fprintf(stderr, "batch: %s\n", line)
		}
		fmt.Fprintf(stderr, "batch: run '%s' for usage\n", helpFor(args))
		return exitUsage
	case errors.As(err, &probs):
		for _, p := range probs {
			fmt.Fprintf(stderr, "batch: %v\n", p)
		}
		return exitProblem
	case errors.Is(err, errInterrupted): // said so already
		return exitInterrupted
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
		writeUsage(c.stderr)
		return usageError{"no command given"}
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "-h", "-help", "--help":
		writeUsage(c.stdout)
		return nil
	case "-version", "--version":
		return c.version(rest)
	case "help":
		return c.help(rest)
	case "send":
		return c.send(ctx, rest)
	case "check":
		return c.check(ctx, rest)
	case "status":
		return c.status(rest)
	case "suppress":
		return c.suppress(rest)
	case "bounces":
		return c.bounces(rest)
	case "preview":
		return c.preview(ctx, rest)
	case "unsubscribe-server":
		return c.unsubscribeServer(ctx, rest)
	case "login":
		return c.login(ctx, rest)
	case "init":
		return c.init(rest)
	case "version":
		return c.version(rest)
	case "completion":
		return c.completion(rest)
	default:
		return unknownCommand(cmd)
	}
}

// helpFor is the help command that suits a usage error in args: the
// command's own usage, or the whole.
func helpFor(args []string) string {
	if len(args) > 0 && args[0] != "help" && lookup(args[0]) != nil {
		return "batch help " + args[0]
	}
	return "batch help"
}

// flags returns a flag set for cmd; its errors are reworded by parseArgs.
func (c *cli) flags(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses the flags of cmd and returns its one campaign file.
func (c *cli) parse(fs *flag.FlagSet, args []string) (string, error) {
	files, err := c.parseArgs(fs, args)
	if err != nil {
		return "", err
	}
	switch len(files) {
	case 0:
		return "", usageError{fmt.Sprintf("%s: no campaign file given", fs.Name())}
	case 1:
		return files[0], nil
	default:
		return "", usageError{fmt.Sprintf("%s: one campaign file expected, got %d", fs.Name(), len(files))}
	}
}

// parseArgs parses the flags of cmd wherever they are among its arguments,
// before or after them, as git and gh do, and returns the arguments that
// are not flags. After "--" every argument is one. With -h or --help it
// prints the command's usage and returns flag.ErrHelp.
func (c *cli) parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	if c.parsing != nil {
		c.parsing(fs)
	}
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				writeCommandUsage(c.stdout, lookup(fs.Name()))
				return nil, err
			}
			return nil, newFlagError(fs, err)
		}
		left := fs.Args()
		if len(left) == 0 {
			return rest, nil
		}
		if n := len(args) - len(left); n > 0 && args[n-1] == "--" {
			return append(rest, left...), nil
		}
		rest, args = append(rest, left[0]), left[1:]
	}
}

func (c *cli) check(ctx context.Context, args []string) error {
	fs := c.flags("check")
	dns := fs.Bool("dns", false, "")
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
		if *dns {
			all = append(all, errDNSNotChecked)
		}
		return all
	}
	fmt.Fprintf(c.stdout, "%s: ready: %s%s%s%s\n", path, plural(sum.Messages, "message"), warned(sum), skipped(sum), suppressed(sum))
	if camp.DKIM != nil {
		rec, err := camp.DKIM.ZoneRecord()
		if err != nil {
			return fmt.Errorf("dkim: %w", err)
		}
		fmt.Fprintf(c.stdout, "publish this DNS TXT record for DKIM:\n  %s\n", rec)
	}
	if *dns {
		return c.checkDNS(ctx, path, camp, sum)
	}
	return nil
}

// errDNSNotChecked ends the problems of a campaign checked with --dns.
var errDNSNotChecked = errors.New("DNS records not looked up: fix the problems above, then run batch check --dns again")

// checkDNS is check --dns once the campaign is ready: it prints the
// verdict on each DNS record the mail is judged by, and fails when one
// is missing or wrong (notes, and unmet bulk-sender requirements that
// aren't records, are told and let pass). The campaign's own problems
// come first: with any of them, DNS is not looked up.
func (c *cli) checkDNS(ctx context.Context, path string, camp *campaign.Campaign, sum *campaign.Summary) error {
	rep, err := camp.CheckDNS(ctx, c.getenv(campaign.ResolverEnv), sum.Messages)
	if err != nil {
		return err
	}
	if err := rep.Write(c.stdout); err != nil {
		return err
	}
	if n := rep.Failing(); n > 0 {
		return fmt.Errorf("%s: can be sent, but %s: publish or fix what is said above, then run batch check --dns again", path, failing(n))
	}
	return nil
}

// failing says how many DNS checks failed: "1 DNS record is missing or
// wrong".
func failing(n int) string {
	if n == 1 {
		return "1 DNS record is missing or wrong"
	}
	return fmt.Sprintf("%d DNS records are missing or wrong", n)
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

// suppressed says, after a count of messages, how many recipients the
// suppression list kept out, and why: " (3 suppressed: 2 unsubscribed,
// 1 bounced)".
func suppressed(s *campaign.Summary) string {
	if s.Suppressed == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d suppressed: %s)", s.Suppressed, byReason(s.SuppressedBy))
}

// byReason says how many were suppressed for each reason:
// "2 unsubscribed, 1 bounced".
func byReason(n map[string]int) string {
	var parts []string
	for _, r := range campaign.SuppressReasons() {
		if n[r] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[r], r))
		}
	}
	return strings.Join(parts, ", ")
}

// warned says, after a count of messages, how many of them were told of
// with a warning.
func warned(s *campaign.Summary) string {
	switch s.Warned {
	case 0:
		return ""
	case 1:
		return ", 1 with a warning"
	}
	return fmt.Sprintf(", %d with warnings", s.Warned)
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
