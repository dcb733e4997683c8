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
)

// errDeclined ends a send the user said no to.
var errDeclined = errors.New("nothing sent")

// errInterrupted ends a send stopped by Ctrl-C (or SIGTERM) whose summary
// and resume line are printed already.
var errInterrupted = errors.New("interrupted")

// errQuotaSaid ends a send stopped by its quota, whose summary and
// reopening time are printed already.
var errQuotaSaid = errors.New("quota reached")

// send is batch send: its flags, then a dry run or a send over SMTP.
func (c *cli) send(ctx context.Context, args []string) error {
	f, path, err := c.parseSend(args)
	if err != nil {
		return err
	}
	shard, err := parseShard("send", f.shard)
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
	opts.Limit = f.limit
	opts.Shard = shard
	// The unsubscribe links' tokens, in a dry run's files as in a send.
	if err := camp.ReadSecret(ctx, campaign.Secrets{Getenv: c.getenv}); err != nil {
		return err
	}
	switch {
	case f.dryRun != "":
		return c.dryRun(ctx, camp, f.dryRun, opts, camp.DryRun)
	case f.mbox != "":
		return c.dryRun(ctx, camp, f.mbox, opts, camp.DryRunMbox)
	}
	return c.deliver(ctx, camp, f, opts)
}

// sendFlags are the flags of send.
type sendFlags struct {
	dryRun, mbox, to, shard    string
	yes, debug                 bool
	retryFailed, resendUnknown bool
	wait                       bool
	limit                      int
}

// parseSend parses the flags of send, checks that they go together, and
// returns them and the campaign file.
func (c *cli) parseSend(args []string) (*sendFlags, string, error) {
	fs := c.flags("send")
	f := &sendFlags{}
	fs.StringVar(&f.dryRun, "dry-run", "", "")
	fs.StringVar(&f.mbox, "mbox", "", "")
	fs.BoolVar(&f.yes, "yes", false, "")
	fs.IntVar(&f.limit, "limit", 0, "")
	fs.StringVar(&f.to, "to", "", "")
	fs.BoolVar(&f.debug, "debug", false, "")
	fs.BoolVar(&f.retryFailed, "retry-failed", false, "")
	fs.BoolVar(&f.resendUnknown, "resend-unknown", false, "")
	fs.StringVar(&f.shard, "shard", "", "")
	fs.BoolVar(&f.wait, "wait", false, "")
	path, err := c.parse(fs, args)
	if err != nil {
		return nil, "", err
	}
	return f, path, f.check()
}

// check says which flags don't go together, and whether --to is an address.
func (f *sendFlags) check() error {
	if f.dryRun != "" && f.mbox != "" {
		return usageError{"send: --dry-run and --mbox can't be used together: choose a directory of .eml files or one mbox file"}
	}
	if f.limit < 0 {
		return usageError{"send: --limit must be a positive number"}
	}
	if err := f.checkDry(); err != nil {
		return err
	}
	if f.to != "" && (f.retryFailed || f.resendUnknown) {
		return usageError{"send: --retry-failed and --resend-unknown can't be used with --to: a test send doesn't count as sending"}
	}
	if f.to != "" {
		if err := campaign.CheckAddress(f.to); err != nil {
			return usageError{fmt.Sprintf("send: --to %q: %v", f.to, err)}
		}
	}
	return nil
}

// checkDry says which flags a dry run (--dry-run or --mbox) can't take.
func (f *sendFlags) checkDry() error {
	dry := "--dry-run"
	switch {
	case f.mbox != "":
		dry = "--mbox"
	case f.dryRun == "":
		return nil
	}
	switch {
	case f.to != "":
		return usageError{"send: --to can't be used with " + dry + ": a dry run sends nothing"}
	case f.debug:
		return usageError{"send: --debug can't be used with " + dry + ": there is no SMTP dialogue"}
	case f.yes:
		return usageError{"send: --yes can't be used with " + dry + ": a dry run asks nothing"}
	case f.retryFailed || f.resendUnknown:
		return usageError{"send: --retry-failed and --resend-unknown can't be used with " + dry + ": a dry run writes every message"}
	case f.wait:
		return usageError{"send: --wait can't be used with " + dry + ": a dry run has no quota"}
	}
	return nil
}

// deliver sends camp over SMTP, or test-sends it to f.to: it asks for the
// password and, unless --yes, whether to send, and draws the progress.
func (c *cli) deliver(ctx context.Context, camp *campaign.Campaign, f *sendFlags, opts campaign.Options) error {
	if camp.SMTP == nil {
		return fmt.Errorf("%s has no [smtp] table: add one to send (see README.md), or write the messages with --dry-run DIR", camp.Path)
	}
	interactive := term.IsTerminal(int(c.stdin.Fd()))
	if !f.yes && !interactive {
		return fmt.Errorf("standard input is not a terminal, so batch can't ask before sending: add --yes to send %s", camp.Path)
	}
	secrets := campaign.Secrets{Getenv: c.getenv}
	if interactive {
		secrets.Prompt = c.promptPassword
	}
	password, err := camp.SMTP.Password(ctx, secrets)
	if err != nil {
		return err
	}
	opts.To = f.to
	opts.RetryFailed, opts.ResendUnknown = f.retryFailed, f.resendUnknown
	opts.QuotaWait = f.wait
	var prog *progress
	opts.Waiting = func(until time.Time) { prog.waiting(camp.SMTP.Quota, until) }
	req := campaign.SendRequest{Options: opts, Password: password, Token: camp.SMTP.Token(secrets)}
	if f.debug {
		req.Debug = c.stderr
	}
	req.Outcome = func(r campaign.Result) { prog.outcome(r) }
	req.Confirm = func(planned *campaign.Summary) error {
		fmt.Fprintf(c.stderr, "batch: %s\n", plan(camp, planned, f.to))
		if !f.yes {
			ok, err := c.confirm("Send? [y/N] ")
			if err == nil && !ok {
				err = errDeclined
			}
			if err != nil {
				return err
			}
		}
		tty := !f.debug && term.IsTerminal(int(os.Stderr.Fd()))
		prog = newProgress(c.stderr, tty, planned.Messages)
		prog.begin()
		return nil
	}
	rep, err := camp.Deliver(ctx, req)
	if prog != nil {
		prog.end()
	}
	return c.sent(camp, rep, err, f.to)
}

// sent prints how a send ended: the summary, how to resume, what to do
// about the recipients that failed or are unknown. It returns the send's
// error, or errSomeFailed when some recipients failed or are unknown: of
// the whole list, or of a test send's own messages.
func (c *cli) sent(camp *campaign.Campaign, rep *campaign.Report, err error, to string) error {
	switch {
	case errors.Is(err, errDeclined):
		fmt.Fprintln(c.stderr, "batch: nothing sent")
		return nil
	case errors.Is(err, campaign.ErrNothingToSend):
		return c.nothingToSend(camp.Path, rep)
	}
	var qe *campaign.QuotaError
	if errors.As(err, &qe) {
		return c.quotaReached(camp.Path, rep, qe)
	}
	if rep.Summary != nil {
		c.report(rep.Summary, rep.Elapsed, to, rep.Stopped, rep.List)
	}
	if rep.Stopped {
		// One closing line, which main's "interrupted" doesn't repeat.
		how := "stopped"
		if errors.Is(err, context.Canceled) {
			how, err = "interrupted", errInterrupted
		}
		fmt.Fprintf(c.stderr, "batch: %s; run batch send %s again to resume where it stopped\n", how, camp.Path)
	}
	if rep.List != nil {
		c.hints(camp.Path, rep.List[campaign.Failed], rep.List[campaign.Unknown])
	}
	switch {
	case err != nil:
		return err
	case rep.Unsettled() > 0:
		return errSomeFailed
	}
	return nil
}

// quotaReached prints the summary of a send its quota stopped, how many
// recipients remain and when the window reopens.
func (c *cli) quotaReached(path string, rep *campaign.Report, qe *campaign.QuotaError) error {
	if rep.Summary != nil {
		c.report(rep.Summary, rep.Elapsed, "", false, nil)
	}
	fmt.Fprintf(c.stderr, "batch: %v\n", qe)
	if rep.List != nil {
		fmt.Fprintf(c.stderr, "batch: %s remain, nothing failed: run batch send %s again after %s, or add --wait\n",
			plural(rep.List[campaign.Pending], "recipient"), path, qe.Reopens.Local().Format("2006-01-02 15:04:05 MST"))
		c.hints(path, rep.List[campaign.Failed], rep.List[campaign.Unknown])
	}
	return errQuotaSaid
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

// nothingToSend says why a send had nothing to do.
func (c *cli) nothingToSend(path string, rep *campaign.Report) error {
	n := rep.List
	fmt.Fprintf(c.stdout, "nothing to send: %d sent before, %d failed, %d unknown",
		n[campaign.Sent], n[campaign.Failed], n[campaign.Unknown])
	total := 0
	for _, k := range rep.Suppressed {
		total += k
	}
	if total > 0 {
		fmt.Fprintf(c.stdout, ", %d suppressed (%s)", total, byReason(rep.Suppressed))
	}
	fmt.Fprintln(c.stdout)
	c.hints(path, n[campaign.Failed], n[campaign.Unknown])
	if rep.Unsettled() > 0 {
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

// dryRun writes the messages into dest (a directory, or an mbox file) with
// write, the campaign's DryRun or DryRunMbox.
func (c *cli) dryRun(ctx context.Context, camp *campaign.Campaign, dest string, opts campaign.Options,
	write func(context.Context, string, campaign.Options) (*campaign.Summary, error)) error {
	start := time.Now()
	sum, err := write(ctx, dest, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s to %s%s%s%s in %s\n", plural(sum.Messages, "message"), dest, warned(sum), skipped(sum), suppressed(sum), time.Since(start).Round(time.Millisecond))
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
	fmt.Fprintf(&b, "about to %s%s%s", what, skipped(planned), suppressed(planned))
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
	if s.Quota != nil {
		rate += ", a quota of " + s.Quota.Text
	}
	fmt.Fprintf(&b, "), %s, %s", rate, plural(s.Connections, "connection"))
	return b.String()
}

// report prints the summary of a send; one that stopped part way also
// says how many of the list are still to be sent (list: the whole list
// by status, nil when unknown).
func (c *cli) report(sum *campaign.Summary, elapsed time.Duration, to string, stopped bool, list campaign.Counts) {
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
	if sum.Suppressed > 0 {
		fmt.Fprintf(c.stdout, ", suppressed %d (%s)", sum.Suppressed, byReason(sum.SuppressedBy))
	}
	if sum.AlreadySent+sum.Held > 0 {
		fmt.Fprintf(c.stdout, ", sent before %d, held %d", sum.AlreadySent, sum.Held)
	}
	if sum.Bounced > 0 {
		fmt.Fprintf(c.stdout, ", %s added to the suppression list", plural(sum.Bounced, "hard bounce"))
	}
	if o.Deferred > 0 {
		fmt.Fprintf(c.stdout, ", retried %d", o.Deferred)
	}
	if sum.Warned > 0 {
		fmt.Fprintf(c.stdout, ", warned %d", sum.Warned)
	}
	if stopped && list != nil && to == "" {
		fmt.Fprintf(c.stdout, ", still pending %d", list[campaign.Pending])
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
