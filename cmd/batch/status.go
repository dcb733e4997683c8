package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
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
	n[campaign.Pending] -= total(supp)
	soft, err := camp.CountSoftBounced(shard)
	if err != nil {
		return err
	}
	quota, err := quotaUse(camp, shard, state)
	if err != nil {
		return err
	}
	r := &statusReport{n: n, supp: supp, soft: soft, softLimit: camp.SoftLimit, use: quota}
	if quota != nil {
		r.quota = camp.SMTP.Quota
	}
	if *asJSON {
		return c.statusJSON(r)
	}
	c.statusText(r)
	return nil
}

// statusReport is what status says.
type statusReport struct {
	n         campaign.Counts // the pending on the suppression list left out
	supp      map[string]int  // the suppressed by reason; nil without a suppression list
	soft      map[int]int     // the not suppressed with soft bounces, by campaigns; nil when not counted
	softLimit int
	quota     *campaign.Quota // nil for none
	use       *campaign.QuotaUse
}

var statusOrder = []campaign.Status{campaign.Sent, campaign.Failed, campaign.Unknown, campaign.Pending}

func (c *cli) statusJSON(r *statusReport) error {
	out := map[string]int{}
	for _, s := range statusOrder {
		out[s.String()] = r.n[s]
	}
	if r.supp != nil {
		out["suppressed"] = total(r.supp)
	}
	if r.soft != nil {
		out["soft_bounced"] = total(r.soft)
	}
	if r.use != nil {
		out["quota_used"] = r.use.Used
	}
	b, _ := json.Marshal(out)
	fmt.Fprintf(c.data, "%s\n", b)
	return nil
}

func (c *cli) statusText(r *statusReport) {
	for _, s := range statusOrder {
		fmt.Fprintf(c.stdout, "%s %d\n", s, r.n[s])
	}
	if r.supp != nil {
		n := total(r.supp)
		fmt.Fprintf(c.stdout, "suppressed %d", n)
		if n > 0 {
			fmt.Fprintf(c.stdout, " (%s)", byReason(r.supp))
		}
		fmt.Fprintln(c.stdout)
	}
	if n := total(r.soft); n > 0 {
		ks := slices.Sorted(maps.Keys(r.soft))
		slices.Reverse(ks)
		parts := make([]string, len(ks))
		for i, k := range ks {
			parts[i] = fmt.Sprintf("%d of %s", r.soft[k], plural(k, "campaign"))
		}
		fmt.Fprintf(c.stdout, "soft-bounced %d (%s; suppressed at %d)\n", n, strings.Join(parts, ", "), r.softLimit)
	}
	if r.use != nil {
		c.quotaLine(r.quota, r.use)
	}
}

// total is the sum of counts: how many recipients are suppressed, or have
// soft bounces.
func total[K comparable](counts map[K]int) int {
	n := 0
	for _, k := range counts {
		n += k
	}
	return n
}

// quotaUse is how much of the campaign's quota is used now, the shard's
// journal counted from state (ReadState's) without a second read; nil for
// a campaign without one.
func quotaUse(camp *campaign.Campaign, shard campaign.Shard, state *campaign.State) (*campaign.QuotaUse, error) {
	if camp.SMTP == nil || camp.SMTP.Quota == nil {
		return nil, nil
	}
	use, err := camp.QuotaUsed(*camp.SMTP.Quota, time.Now(), shard, state)
	if err != nil {
		return nil, err
	}
	return &use, nil
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
	w := campaign.NewCSVWriter(c.data)
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
