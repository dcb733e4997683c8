package campaign

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Shard is one of N parts of a list, for a campaign too big for one sender
// or one account's quota: shard K of N takes the recipients whose address
// hashes to K. The partition is stable (FNV-1a of the lower-case address,
// the same on every machine and run) and exact: the N shards cover the
// list once. The zero Shard is the whole list.
type Shard struct{ K, N int }

// ParseShard parses "K/N", 1 ≤ K ≤ N.
func ParseShard(s string) (Shard, error) {
	k, n, ok := strings.Cut(s, "/")
	ki, err1 := strconv.Atoi(k)
	ni, err2 := strconv.Atoi(n)
	if !ok || err1 != nil || err2 != nil || ni < 1 || ki < 1 || ki > ni {
		return Shard{}, fmt.Errorf("shard %q: want K/N with 1 ≤ K ≤ N, e.g. 2/3", s)
	}
	return Shard{K: ki, N: ni}, nil
}

// Has reports whether address belongs to the shard.
func (s Shard) Has(address string) bool {
	if s.N <= 1 {
		return true
	}
	h := fnv.New64a()
	h.Write([]byte(strings.ToLower(address)))
	return int(h.Sum64()%uint64(s.N)) == s.K-1
}

// suffix names the shard in its journal's file name.
func (s Shard) suffix() string {
	if s.N <= 1 {
		return ""
	}
	return fmt.Sprintf(".shard-%d-of-%d", s.K, s.N)
}

func (s Shard) String() string {
	if s.N <= 1 {
		return "the whole list"
	}
	return fmt.Sprintf("shard %d/%d", s.K, s.N)
}
