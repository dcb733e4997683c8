package main

import (
	"fmt"
	"strings"

	"github.com/batch-mailer/batch/internal/campaign"
)

// bounces is batch bounces: read a bounce mailbox and suppress the
// addresses it says to.
func (c *cli) bounces(args []string) error {
	fs := c.flags("bounces")
	maildir := fs.String("maildir", "", "")
	mbox := fs.String("mbox", "", "")
	dryRun := fs.Bool("dry-run", false, "")
	path, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if (*maildir == "") == (*mbox == "") {
		return usageError{"bounces: give exactly one of --maildir DIR and --mbox FILE"}
	}
	camp, err := campaign.Load(path)
	if err != nil {
		return err
	}
	rep, err := camp.Bounces(campaign.BounceOptions{Maildir: *maildir, Mbox: *mbox, DryRun: *dryRun})
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
	fmt.Fprintf(c.stdout, "%s: %s: %s\n", strings.TrimSuffix(*maildir+*mbox, "/"), plural(rep.Messages, "message"), strings.Join(kinds, ", "))
	verb := "added"
	if *dryRun {
		verb = "would add"
		for _, a := range rep.Suppress {
			fmt.Fprintf(c.stdout, "would suppress %s as %s: %s\n", a.Email, a.Reason, a.Message)
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s: %s %d, %d on it already\n", rep.List, verb, rep.Added, len(rep.Suppress)-rep.Added)
	for _, l := range rep.Left {
		fmt.Fprintf(c.stdout, "left alone: %s: %s\n", l.Message, l.Reason)
	}
	return nil
}
