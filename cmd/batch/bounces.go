package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/batch-mailer/batch/internal/campaign"
)

// bounces is batch bounces: read a bounce mailbox and suppress the
// addresses it says to.
func (c *cli) bounces(args []string) error {
	fs := c.flags("bounces")
	maildir := fs.String("maildir", "", "")
	mbox := fs.String("mbox", "", "")
	useIMAP := fs.Bool("imap", false, "")
	dryRun := fs.Bool("dry-run", false, "")
	path, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if n := len(slices.DeleteFunc([]bool{*maildir != "", *mbox != "", *useIMAP}, func(b bool) bool { return !b })); n != 1 {
		return usageError{"bounces: give exactly one of --maildir DIR, --mbox FILE and --imap"}
	}
	camp, err := campaign.Load(path)
	if err != nil {
		return err
	}
	rep, err := camp.Bounces(campaign.BounceOptions{Maildir: *maildir, Mbox: *mbox, IMAP: *useIMAP, DryRun: *dryRun, Secrets: campaign.Secrets{Getenv: c.getenv}})
	if rep == nil {
		return err
	}
	var kinds []string
	for _, k := range campaign.BounceKinds() {
		if k == campaign.LeftAloneKind {
			kinds = append(kinds, fmt.Sprintf("%d %s", rep.Counts[k], k))
		} else {
			kinds = append(kinds, plural(rep.Counts[k], k))
		}
	}
	source := strings.TrimSuffix(*maildir+*mbox, "/")
	if *useIMAP {
		source = camp.Bounce.URL
	}
	fmt.Fprintf(c.stdout, "%s: %s: %s\n", source, plural(rep.Messages, "message"), strings.Join(kinds, ", "))
	verb, count, suppressed := "added", "counted", "suppressed"
	if *dryRun {
		verb, count, suppressed = "would add", "would count", "would be suppressed"
		for _, sb := range rep.Soft {
			if sb.New {
				fmt.Fprintf(c.stdout, "would count a soft bounce of %s (%d of %d campaigns): %s\n", sb.Email, sb.Campaigns, rep.SoftLimit, sb.Message)
			}
		}
		for _, a := range rep.Suppress {
			fmt.Fprintf(c.stdout, "would suppress %s as %s: %s\n", a.Email, a.Reason, a.Message)
		}
	}
	if err != nil {
		return err
	}
	if len(rep.Soft) > 0 {
		fmt.Fprintf(c.stdout, "%s: %s %s, %d counted already (suppressed at %d campaigns)\n", rep.SoftList, count, plural(rep.Counted, "soft bounce"), len(rep.Soft)-rep.Counted, rep.SoftLimit)
		for _, email := range rep.Limited {
			fmt.Fprintf(c.stdout, "%s: soft bounces of %d campaigns: %s as bounced\n", email, rep.SoftLimit, suppressed)
		}
	}
	fmt.Fprintf(c.stdout, "%s: %s %d, %d on it already\n", rep.List, verb, rep.Added, len(rep.Suppress)-rep.Added)
	if *useIMAP && !*dryRun {
		if to := camp.Bounce.MoveTo; to != "" {
			fmt.Fprintf(c.stdout, "%s: moved %s to %s\n", camp.Bounce.URL, plural(rep.Filed, "message"), to)
		} else {
			fmt.Fprintf(c.stdout, "%s: flagged %s seen\n", camp.Bounce.URL, plural(rep.Filed, "message"))
		}
	}
	for _, l := range rep.Left {
		fmt.Fprintf(c.stdout, "left alone: %s: %s\n", l.Message, l.Reason)
	}
	return nil
}
