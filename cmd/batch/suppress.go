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
	a, err := c.suppressArgs(args)
	if err != nil {
		return err
	}
	// A campaign whose other keys have problems still names its list.
	camp, err := campaign.Load(a.path)
	if camp == nil || err != nil && camp.Suppress == "" {
		return err
	}
	switch a.action {
	case "add":
		n, err := camp.AddSuppressed(a.reason, "", a.addrs...)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s: added %d, %d on it already\n", camp.Suppress, n, len(a.addrs)-n)
	case "remove":
		n, err := camp.RemoveSuppressed(a.addrs...)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "%s: removed %s\n", camp.Suppress, plural(n, "line"))
	case "list":
		return camp.ListSuppressed(c.data)
	}
	return nil
}

// suppressCall is a batch suppress command line, checked.
type suppressCall struct {
	action, path, reason string
	addrs                []string
}

// suppressArgs reads batch suppress's command line: the action, the
// campaign file, the addresses add and remove take and list does not, and
// --reason, which only add takes.
func (c *cli) suppressArgs(args []string) (suppressCall, error) {
	fs := c.flags("suppress")
	reason := fs.String("reason", "", "")
	rest, err := c.parseArgs(fs, args)
	if err != nil {
		return suppressCall{}, err
	}
	if len(rest) == 0 {
		return suppressCall{}, usageError{"suppress: say add, remove or list"}
	}
	action, rest := rest[0], rest[1:]
	if len(rest) == 0 {
		return suppressCall{}, usageError{fmt.Sprintf("suppress %s: no campaign file given", action)}
	}
	path, addrs := rest[0], rest[1:]
	switch action {
	case "add", "remove":
		if len(addrs) == 0 {
			return suppressCall{}, usageError{fmt.Sprintf("suppress %s: no address given: batch suppress %s %s ADDRESS...", action, action, path)}
		}
	case "list":
		if len(addrs) > 0 {
			return suppressCall{}, usageError{fmt.Sprintf("suppress list: takes the campaign file alone, not %s", strings.Join(addrs, " "))}
		}
	default:
		return suppressCall{}, usageError{fmt.Sprintf("suppress: %q: say add, remove or list", action)}
	}
	if *reason != "" && action != "add" {
		return suppressCall{}, usageError{"suppress: --reason goes with add"}
	}
	if *reason != "" && !slices.Contains(campaign.SuppressReasons(), *reason) {
		return suppressCall{}, usageError{fmt.Sprintf("suppress add: --reason %q: want one of %s", *reason, strings.Join(campaign.SuppressReasons(), ", "))}
	}
	return suppressCall{action: action, path: path, reason: *reason, addrs: addrs}, nil
}
