package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"

	"github.com/batch-mailer/batch/internal/campaign"
	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/internal/merge"
)

func (c *cli) status(args []string) error {
	fs := c.flags("status")
	asJSON := fs.Bool("json", false, "")
	failed := fs.Bool("failed", false, "")
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
	camp, err := campaign.Load(path)
	if err != nil {
		return err
	}
	state, err := camp.ReadState(shard)
	if err != nil {
		return err
	}
	if *failed {
		return c.failedRows(camp, state, shard)
	}
	n, err := counts(camp, state, shard)
	if err != nil {
		return err
	}
	order := []deliver.Status{deliver.Sent, deliver.Failed, deliver.Unknown, deliver.Pending}
	if *asJSON {
		out := map[string]int{}
		for _, s := range order {
			out[s.String()] = n[s]
		}
		b, _ := json.Marshal(out)
		fmt.Fprintf(c.stdout, "%s\n", b)
		return nil
	}
	for _, s := range order {
		fmt.Fprintf(c.stdout, "%s %d\n", s, n[s])
	}
	return nil
}

// failedRows prints the failed rows as CSV: the list's columns, then error.
func (c *cli) failedRows(camp *campaign.Campaign, state *deliver.State, shard campaign.Shard) error {
	type row struct {
		fields map[string]string
		err    string
	}
	var rows []row
	columns, err := camp.Status(state, shard, func(rec *merge.Recipient, e deliver.Entry) {
		if e.Status == deliver.Failed {
			rows = append(rows, row{rec.Fields, e.Error})
		}
	})
	if err != nil {
		return err
	}
	w := csv.NewWriter(c.stdout)
	w.Write(append(append([]string(nil), columns...), "error"))
	for _, r := range rows {
		values := make([]string, 0, len(columns)+1)
		for _, col := range columns {
			values = append(values, r.fields[col])
		}
		w.Write(append(values, r.err))
	}
	w.Flush()
	return w.Error()
}
