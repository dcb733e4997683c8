package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/batch-mailer/batch/internal/campaign"
)

// suppress is batch suppress add|remove|list: the common edits of the
// campaign's suppression list.
func (c *cli) suppress(args []string) error {
	fs := c.flags("suppress")
	reason := fs.String("reason", "", "")
	rest, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return usageError{"suppress: say add, remove or list"}
	}
	action, rest := rest[0], rest[1:]
	if len(rest) == 0 {
		return usageError{fmt.Sprintf("suppress %s: no campaign file given", action)}
	}
	path, addrs := rest[0], rest[1:]
	switch action {
	case "add", "remove":
		if len(addrs) == 0 {
			return usageError{fmt.Sprintf("suppress %s: no address given: batch suppress %s %s ADDRESS...", action, action, path)}
		}
	case "list":
		if len(addrs) > 0 {
			return usageError{fmt.Sprintf("suppress list: takes the campaign file alone, not %s", strings.Join(addrs, " "))}
		}
	default:
		return usageError{fmt.Sprintf("suppress: %q: say add, remove or list", action)}
	}
	if *reason != "" && action != "add" {
		return usageError{"suppress: --reason goes with add"}
	}
	if *reason != "" && !slices.Contains(campaign.SuppressReasons(), *reason) {
		return usageError{fmt.Sprintf("suppress add: --reason %q: want one of %s", *reason, strings.Join(campaign.SuppressReasons(), ", "))}
	}
	// A campaign whose other keys have problems still names its list.
	camp, err := campaign.Load(path)
	if camp == nil || err != nil && camp.Suppress == "" {
		return err
	}
	switch action {
	case "add":
		n, err := camp.AddSuppressed(*reason, "", addrs...)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s: added %d, %d on it already\n", camp.Suppress, n, len(addrs)-n)
	case "remove":
		n, err := camp.RemoveSuppressed(addrs...)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s: removed %s\n", camp.Suppress, plural(n, "line"))
	case "list":
		return camp.ListSuppressed(c.stdout)
	}
	return nil
}
