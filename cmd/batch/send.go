package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/batch-mailer/batch/internal/campaign"
	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/merge"
	"github.com/batch-mailer/batch/internal/render"
)

// errDeclined ends a send the user said no to.
var errDeclined = errors.New("nothing sent")

func (c *cli) send(ctx context.Context, args []string) error {
	fs := c.flags("send")
	dryRun := fs.String("dry-run", "", "")
	yes := fs.Bool("yes", false, "")
	limit := fs.Int("limit", 0, "")
	to := fs.String("to", "", "")
	debug := fs.Bool("debug", false, "")
	path, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case *limit < 0:
		return usageError{"send: --limit must be a positive number"}
	case *dryRun != "" && *to != "":
		return usageError{"send: --to can't be used with --dry-run: a dry run sends nothing"}
	case *dryRun != "" && *debug:
		return usageError{"send: --debug can't be used with --dry-run: there is no SMTP dialogue"}
	case *dryRun != "" && *yes:
		return usageError{"send: --yes can't be used with --dry-run: a dry run asks nothing"}
	}
	if *to != "" {
		if err := merge.CheckAddress(*to); err != nil {
			return usageError{fmt.Sprintf("send: --to %q: %v", *to, err)}
		}
	}
	camp, err := campaign.Load(path)
	if err != nil {
		return err
	}
	opts, err := c.options()
	if err != nil {
		return err
	}
	opts.Limit = *limit
	if *dryRun != "" {
		return c.dryRun(ctx, camp, *dryRun, opts)
	}
	if camp.SMTP == nil {
		return fmt.Errorf("%s has no [smtp] table: add one to send (see README.md), or write the messages with --dry-run DIR", path)
	}
	interactive := term.IsTerminal(int(os.Stdin.Fd()))
	if !*yes && !interactive {
		return fmt.Errorf("standard input is not a terminal, so batch can't ask before sending: add --yes to send %s", path)
	}
	secrets := campaign.Secrets{Getenv: c.getenv, Run: runShell}
	if interactive {
		secrets.Prompt = promptPassword
	}
	password, err := camp.SMTP.Password(secrets)
	if err != nil {
		return err
	}
	cfg, err := camp.SMTP.Config(password, nil)
	if err != nil {
		return err
	}
	if *debug {
		cfg.Debug = c.stderr
	}
	opts.To = *to
	var prog *progress
	opts.Outcome = func(m *render.Message, err error) { prog.outcome(m, err) }
	start := time.Now()
	open := func(planned *campaign.Summary) (deliver.Sender, error) {
		s, err := deliver.DialSMTP(ctx, cfg)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(c.stderr, "batch: %s\n", plan(camp, planned, *to))
		if !*yes {
			ok, err := confirm(c.stderr, "Send? [y/N] ")
			if err != nil || !ok {
				s.Close()
				if err == nil {
					err = errDeclined
				}
				return nil, err
			}
		}
		tty := !*debug && term.IsTerminal(int(os.Stderr.Fd()))
		prog = newProgress(c.stderr, tty, planned.Messages)
		prog.begin()
		start = time.Now()
		return s, nil
	}
	sum, err := camp.Send(ctx, open, opts)
	if prog != nil {
		prog.end()
	}
	if errors.Is(err, errDeclined) {
		fmt.Fprintln(c.stderr, "batch: nothing sent")
		return nil
	}
	if sum != nil {
		c.report(sum, time.Since(start), *to)
	}
	if err != nil {
		return err
	}
	if _, failed := sum.Delivered(); failed > 0 {
		return errSomeFailed
	}
	return nil
}

// dryRun writes the messages into dir.
func (c *cli) dryRun(ctx context.Context, camp *campaign.Campaign, dir string, opts campaign.Options) error {
	start := time.Now()
	sum, err := camp.Send(ctx, func(*campaign.Summary) (deliver.Sender, error) { return deliver.NewDir(dir), nil }, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s to %s%s in %s\n", plural(sum.Messages, "message"), dir, skipped(sum), time.Since(start).Round(time.Millisecond))
	return nil
}

// plan says what a send is about to do.
func plan(camp *campaign.Campaign, planned *campaign.Summary, to string) string {
	s := camp.SMTP
	var b strings.Builder
	who := fmt.Sprintf("%s of campaign %q", plural(planned.Messages, "message"), camp.Name)
	if to != "" {
		who = fmt.Sprintf("a test send of %s to %s (the headers as each recipient would see them)", who, to)
	}
	fmt.Fprintf(&b, "about to send %s%s through %s (%s", who, skipped(planned), s.Addr(), s.Security)
	if s.Username != "" {
		fmt.Fprintf(&b, ", as %s", s.Username)
	}
	rate := "no rate limit"
	if s.RateText != "" {
		rate = "at most " + s.RateText
	}
	fmt.Fprintf(&b, "), %s, %s", rate, plural(s.Connections, "connection"))
	return b.String()
}

// report prints the summary of a send.
func (c *cli) report(sum *campaign.Summary, elapsed time.Duration, to string) {
	sent, failed := sum.Delivered()
	perSecond := 0.0
	if elapsed > 0 {
		perSecond = float64(sent+failed) / elapsed.Seconds()
	}
	what := "sent"
	if to != "" {
		what = "test-sent to " + to + ":"
	}
	fmt.Fprintf(c.stdout, "%s %d, failed %d, skipped %d in %s (%.1f messages/s)\n",
		what, sent, failed, sum.Skipped(), elapsed.Round(time.Millisecond), perSecond)
}

// confirm asks a yes/no question on the terminal.
func confirm(w io.Writer, question string) (bool, error) {
	fmt.Fprint(w, question)
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return false, err
	}
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes", nil
}

// promptPassword asks for the password on the terminal, without echo.
func promptPassword(question string) (string, error) {
	fmt.Fprint(os.Stderr, question)
	pw, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return string(pw), nil
}

// runShell runs password_cmd with sh and returns what it printed.
func runShell(command string) (string, error) {
	cmd := exec.Command("sh", "-c", command)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%q: %w", command, err)
	}
	return string(out), nil
}
