package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/batch-mailer/batch/internal/campaign"
)

func (c *cli) status(args []string) error {
	fs := c.flags("status")
	asJSON := fs.Bool("json", false, "")
	failed := fs.Bool("failed", false, "")
	raw := fs.Bool("raw", false, "")
	shardFlag := fs.String("shard", "", "")
	path, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	shard, err := parseShard("status", *shardFlag)
	if err != nil {
		return err
	}
	if *asJSON && *failed {
		return usageError{"status: --json can't be used with --failed: --failed prints CSV"}
	}
	if *raw && !*failed {
		return usageError{"status: --raw goes with --failed: it writes the failed rows' cells as they are"}
	}
	camp, err := campaign.Load(path)
	if err != nil {
		return err
	}
	state, err := camp.ReadState(shard)
	if err != nil {
		return err
	}
	if *failed {
		return c.failedRows(camp, state, shard, *raw)
	}
	n, err := camp.Count(state, shard)
	if err != nil {
		return err
	}
	// The pending on the suppression list are counted apart: no send
	// takes them.
	supp, err := camp.CountSuppressed(state, shard)
	if err != nil {
		return err
	}
	total := 0
	for _, k := range supp {
		total += k
	}
	n[campaign.Pending] -= total
	var quota *campaign.QuotaUse
	if camp.SMTP != nil && camp.SMTP.Quota != nil {
		use, err := camp.QuotaUsed(*camp.SMTP.Quota, time.Now())
		if err != nil {
			return err
		}
		quota = &use
	}
	order := []campaign.Status{campaign.Sent, campaign.Failed, campaign.Unknown, campaign.Pending}
	if *asJSON {
		out := map[string]int{}
		for _, s := range order {
			out[s.String()] = n[s]
		}
		if supp != nil {
			out["suppressed"] = total
		}
		if quota != nil {
			out["quota_used"] = quota.Used
		}
		b, _ := json.Marshal(out)
		fmt.Fprintf(c.stdout, "%s\n", b)
		return nil
	}
	for _, s := range order {
		fmt.Fprintf(c.stdout, "%s %d\n", s, n[s])
	}
	if supp != nil {
		fmt.Fprintf(c.stdout, "suppressed %d", total)
		if total > 0 {
			fmt.Fprintf(c.stdout, " (%s)", byReason(supp))
		}
		fmt.Fprintln(c.stdout)
	}
	if quota != nil {
		c.quotaLine(camp.SMTP.Quota, quota)
	}
	return nil
}

// quotaLine prints how much of the quota is used, every shard's on this
// machine, and when it frees up.
func (c *cli) quotaLine(q *campaign.Quota, use *campaign.QuotaUse) {
	fmt.Fprintf(c.stdout, "quota %d/%d used (%s)", use.Used, q.N, q.Text)
	if use.Used > 0 {
		fmt.Fprintf(c.stdout, ", the next frees up at %s (%s UTC)",
			use.Frees.Local().Format("2006-01-02 15:04:05 MST"), use.Frees.UTC().Format("2006-01-02 15:04:05"))
	}
	fmt.Fprintln(c.stdout)
}

// failedRows prints the failed rows as CSV: the list's columns, then error;
// a cell a spreadsheet would run is made text, unless raw.
func (c *cli) failedRows(camp *campaign.Campaign, state *campaign.State, shard campaign.Shard, raw bool) error {
	type row struct {
		fields map[string]string
		err    string
	}
	var rows []row
	columns, err := camp.Status(state, shard, func(rec *campaign.Recipient, e campaign.Entry) {
		if e.Status == campaign.Failed {
			rows = append(rows, row{rec.Fields, e.Error})
		}
	})
	if err != nil {
		return err
	}
	w := campaign.NewCSVWriter(c.stdout)
	w.Raw = raw
	w.Write(append(append([]string(nil), columns...), "error"))
	for _, r := range rows {
		values := make([]string, 0, len(columns)+1)
		for _, col := range columns {
			values = append(values, r.fields[col])
		}
		w.Write(append(values, r.err))
	}
	return w.Flush()
}
