package campaign

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

func TestParseShard(t *testing.T) {
	for _, good := range []string{"1/1", "1/3", "3/3", "7/10"} {
		if _, err := ParseShard(good); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
	for _, bad := range []string{"", "1", "0/3", "4/3", "-1/3", "a/b", "1/0", "2/"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestShardsPartition: the shards of a list cover it exactly once, every
// address in one shard, whatever its case, and the split is even enough.
func TestShardsPartition(t *testing.T) {
	var list strings.Builder
	list.WriteString("email,name\n")
	const n = 300
	for i := range n {
		fmt.Fprintf(&list, "user%d@Example.org,U%d\n", i, i)
	}
	c := newCampaign(t, list.String(), "Hi {{.name}}\n", "", nil)
	const shards = 3
	seen := map[string]int{}
	for k := 1; k <= shards; k++ {
		rec := &recorder{}
		sum, err := c.Send(context.Background(), rec.open, Options{Now: now, Shard: Shard{K: k, N: shards}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.msgs) < n/shards/2 || sum.OtherShards != n-len(rec.msgs) {
			t.Errorf("shard %d: %d messages, %d for the others", k, len(rec.msgs), sum.OtherShards)
		}
		for _, m := range rec.msgs {
			seen[m.To]++
			if !(Shard{K: k, N: shards}).Has(strings.ToUpper(m.To)) {
				t.Errorf("%s: its shard depends on case", m.To)
			}
		}
	}
	if len(seen) != n {
		t.Errorf("the shards cover %d of %d recipients", len(seen), n)
	}
	for addr, times := range seen {
		if times != 1 {
			t.Errorf("%s is in %d shards", addr, times)
		}
	}
	if (Shard{}).suffix() != "" || c.JournalPath(Shard{K: 2, N: 3}) == c.JournalPath(Shard{}) {
		t.Error("a shard shares the whole list's journal")
	}
}
