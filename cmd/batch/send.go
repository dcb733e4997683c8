package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
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
	mbox := fs.String("mbox", "", "")
	yes := fs.Bool("yes", false, "")
	limit := fs.Int("limit", 0, "")
	to := fs.String("to", "", "")
	debug := fs.Bool("debug", false, "")
	retryFailed := fs.Bool("retry-failed", false, "")
	resendUnknown := fs.Bool("resend-unknown", false, "")
	shardFlag := fs.String("shard", "", "")
	path, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	dry := "" // the flag of a dry run, if it is one
	switch {
	case *dryRun != "" && *mbox != "":
		return usageError{"send: --dry-run and --mbox can't be used together: choose a directory of .eml files or one mbox file"}
	case *dryRun != "":
		dry = "--dry-run"
	case *mbox != "":
		dry = "--mbox"
	}
	switch {
	case *limit < 0:
		return usageError{"send: --limit must be a positive number"}
	case dry != "" && *to != "":
		return usageError{"send: --to can't be used with " + dry + ": a dry run sends nothing"}
	case dry != "" && *debug:
		return usageError{"send: --debug can't be used with " + dry + ": there is no SMTP dialogue"}
	case dry != "" && *yes:
		return usageError{"send: --yes can't be used with " + dry + ": a dry run asks nothing"}
	case dry != "" && (*retryFailed || *resendUnknown):
		return usageError{"send: --retry-failed and --resend-unknown can't be used with " + dry + ": a dry run writes every message"}
	case *to != "" && (*retryFailed || *resendUnknown):
		return usageError{"send: --retry-failed and --resend-unknown can't be used with --to: a test send doesn't count as sending"}
	}
	if *to != "" {
		if err := merge.CheckAddress(*to); err != nil {
			return usageError{fmt.Sprintf("send: --to %q: %v", *to, err)}
		}
	}
	shard, err := parseShard("send", *shardFlag)
	if err != nil {
		return err
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
	opts.Shard = shard
	switch {
	case *dryRun != "":
		return c.dryRun(ctx, camp, *dryRun, deliver.NewDir(*dryRun), opts)
	case *mbox != "":
		s, err := deliver.NewMbox(*mbox)
		if err != nil {
			return err
		}
		return c.dryRun(ctx, camp, *mbox, s, opts)
	}
	if camp.SMTP == nil {
		return fmt.Errorf("%s has no [smtp] table: add one to send (see README.md), or write the messages with --dry-run DIR", path)
	}
	interactive := term.IsTerminal(int(c.stdin.Fd()))
	if !*yes && !interactive {
		return fmt.Errorf("standard input is not a terminal, so batch can't ask before sending: add --yes to send %s", path)
	}
	secrets := campaign.Secrets{Getenv: c.getenv}
	if interactive {
		secrets.Prompt = c.promptPassword
	}
	password, err := camp.SMTP.Password(ctx, secrets)
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
	opts.RetryFailed, opts.ResendUnknown = *retryFailed, *resendUnknown
	opts.Retries, opts.RetryWait, opts.MaxErrors = camp.SMTP.Retries, camp.SMTP.RetryWait, camp.SMTP.MaxErrors
	if *to == "" {
		// A test send goes to the tester, not the list: no journal.
		j, state, err := deliver.OpenJournal(camp.JournalPath(shard), camp.Name)
		if err != nil {
			return err
		}
		defer j.Close()
		opts.Journal, opts.State = j, state
	}
	var prog *progress
	opts.Outcome = func(m *render.Message, st deliver.Status, err error) { prog.outcome(m, st, err) }
	start := time.Now()
	open := func(planned *campaign.Summary) (deliver.Sender, error) {
		if planned.Messages == 0 {
			return nil, errNothingToSend
		}
		s, err := deliver.DialSMTP(ctx, cfg)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(c.stderr, "batch: %s\n", plan(camp, planned, *to))
		if !*yes {
			ok, err := c.confirm("Send? [y/N] ")
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
	switch {
	case errors.Is(err, errDeclined):
		fmt.Fprintln(c.stderr, "batch: nothing sent")
		return nil
	case errors.Is(err, errNothingToSend):
		return c.nothingToSend(camp, opts)
	}
	if sum != nil {
		c.report(sum, time.Since(start), *to)
	}
	if opts.Journal == nil { // a test send
		if err == nil && sum.Outcomes().Failed+sum.Outcomes().Unknown > 0 {
			return errSomeFailed
		}
		return err
	}
	// What the journal now says of the whole list, this run and earlier
	// ones: the exit status and the advice are about every recipient.
	if cerr := opts.Journal.Close(); err == nil {
		err = cerr
	}
	var n map[deliver.Status]int
	state, serr := camp.ReadState(shard)
	if serr == nil {
		n, serr = counts(camp, state, shard)
	}
	failed, unknown := n[deliver.Failed], n[deliver.Unknown]
	if sum != nil && (errors.Is(err, context.Canceled) || err != nil && sum.Outcomes() != (campaign.Outcomes{})) {
		fmt.Fprintf(c.stderr, "batch: stopped; run batch send %s again to resume where it stopped\n", camp.Path)
	}
	if serr == nil {
		c.hints(camp.Path, failed, unknown)
	}
	switch {
	case err != nil:
		return err
	case serr != nil:
		return serr
	case failed+unknown > 0:
		return errSomeFailed
	}
	return nil
}

// counts counts the list's recipients (the shard's) by the journal's word
// on them.
func counts(camp *campaign.Campaign, state *deliver.State, shard campaign.Shard) (map[deliver.Status]int, error) {
	n := map[deliver.Status]int{}
	_, err := camp.Status(state, shard, func(_ *merge.Recipient, e deliver.Entry) { n[e.Status]++ })
	return n, err
}

// parseShard reads the --shard flag of cmd; "" is the whole list.
func parseShard(cmd, s string) (campaign.Shard, error) {
	if s == "" {
		return campaign.Shard{}, nil
	}
	shard, err := campaign.ParseShard(s)
	if err != nil {
		return shard, usageError{cmd + ": --" + err.Error()}
	}
	return shard, nil
}

// errNothingToSend ends a send whose every recipient was dealt with before.
var errNothingToSend = errors.New("nothing to send")

// nothingToSend says why a send had nothing to do.
func (c *cli) nothingToSend(camp *campaign.Campaign, opts campaign.Options) error {
	n, err := counts(camp, opts.State, opts.Shard)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "nothing to send: %d sent before, %d failed, %d unknown\n",
		n[deliver.Sent], n[deliver.Failed], n[deliver.Unknown])
	c.hints(camp.Path, n[deliver.Failed], n[deliver.Unknown])
	if n[deliver.Failed]+n[deliver.Unknown] > 0 {
		return errSomeFailed
	}
	return nil
}

func (c *cli) hints(path string, failed, unknown int) {
	if failed > 0 {
		fmt.Fprintf(c.stderr, "batch: %s failed: batch status --failed %s lists them with the server's reply; fix the list, then batch send --retry-failed %s\n",
			plural(failed, "recipient"), path, path)
	}
	switch {
	case unknown == 1:
		fmt.Fprintf(c.stderr, "batch: 1 outcome unknown: the message was handed over and the server's reply never came or was not recorded, so the server may have it; batch send --resend-unknown %s sends it again (the same Message-ID lets receivers spot a copy)\n", path)
	case unknown > 1:
		fmt.Fprintf(c.stderr, "batch: %d outcomes unknown: the messages were handed over and the server's replies never came or were not recorded, so the server may have them; batch send --resend-unknown %s sends them again (the same Message-IDs let receivers spot a copy)\n", unknown, path)
	}
}

// dryRun writes the messages with s, into dest (a directory or an mbox
// file).
func (c *cli) dryRun(ctx context.Context, camp *campaign.Campaign, dest string, s deliver.Sender, opts campaign.Options) error {
	start := time.Now()
	opts.SinglePass = true // the files go if a problem turns up
	sum, err := camp.Send(ctx, func(*campaign.Summary) (deliver.Sender, error) { return s, nil }, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s to %s%s in %s\n", plural(sum.Messages, "message"), dest, skipped(sum), time.Since(start).Round(time.Millisecond))
	return nil
}

// plan says what a send is about to do.
func plan(camp *campaign.Campaign, planned *campaign.Summary, to string) string {
	s := camp.SMTP
	var b strings.Builder
	what := fmt.Sprintf("send %s of campaign %q", plural(planned.Messages, "message"), camp.Name)
	if to != "" {
		what = fmt.Sprintf("test-%s to %s, each as its recipient would see it but for a Message-ID of its own", what, to)
	}
	fmt.Fprintf(&b, "about to %s%s", what, skipped(planned))
	if planned.OtherShards > 0 {
		fmt.Fprintf(&b, " (this shard's; %d recipients are the other shards')", planned.OtherShards)
	}
	if planned.AlreadySent+planned.Held > 0 {
		fmt.Fprintf(&b, " (resuming: %d sent before, %d failed or unknown held back)", planned.AlreadySent, planned.Held)
	}
	fmt.Fprintf(&b, " through %s (%s", s.Addr(), s.Security)
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
	o := sum.Outcomes()
	perSecond := 0.0
	if elapsed > 0 {
		perSecond = float64(o.Sent+o.Failed+o.Unknown) / elapsed.Seconds()
	}
	sent := fmt.Sprintf("sent %d", o.Sent)
	if to != "" {
		sent = fmt.Sprintf("test-sent %d to %s", o.Sent, to)
	}
	fmt.Fprintf(c.stdout, "%s, failed %d, unknown %d, skipped %d", sent, o.Failed, o.Unknown, sum.Skipped())
	if sum.Skipped() > 0 {
		fmt.Fprintf(c.stdout, " (%s)", skipKinds(sum)) // as the plan says it
	}
	if sum.AlreadySent+sum.Held > 0 {
		fmt.Fprintf(c.stdout, ", sent before %d, held %d", sum.AlreadySent, sum.Held)
	}
	if o.Deferred > 0 {
		fmt.Fprintf(c.stdout, ", retried %d", o.Deferred)
	}
	fmt.Fprintf(c.stdout, " in %s (%.1f messages/s)", elapsed.Round(time.Millisecond), perSecond)
	if to != "" {
		fmt.Fprint(c.stdout, ", each with a Message-ID of its own, not its recipient's")
	}
	fmt.Fprintln(c.stdout)
}

// confirm asks a yes/no question on the terminal.
func (c *cli) confirm(question string) (bool, error) {
	fmt.Fprint(c.stderr, question)
	line, err := bufio.NewReader(c.stdin).ReadString('\n')
	if err != nil && line == "" {
		return false, err
	}
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes", nil
}

// promptPassword asks for the password on the terminal, without echo.
func (c *cli) promptPassword(question string) (string, error) {
	fmt.Fprint(c.stderr, question)
	pw, err := term.ReadPassword(int(c.stdin.Fd()))
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return string(pw), nil
}
