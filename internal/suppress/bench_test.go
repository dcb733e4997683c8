package suppress

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// BenchmarkOpen reads a list of a million addresses and reports the heap
// the List holds after it, per address:
//
//	go test -run=^$ -bench=Open -benchtime=3x ./internal/suppress/
func BenchmarkOpen(b *testing.B) {
	const n = 1_000_000
	path := filepath.Join(b.TempDir(), "s.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.WriteString("email,reason,at,campaign,detail\n")
	for i := range n {
		fmt.Fprintf(w, "someone.%d@example.org,bounced,2026-12-01T16:19:14Z,2026-12-newsletter,550 5.1.1 user unknown\n", i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	b.ResetTimer()
	var heap uint64
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		l, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if l.Len() != n {
			b.Fatalf("Len = %d", l.Len())
		}
		heap = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(l)
	}
	b.ReportMetric(float64(heap)/n, "heap-B/address")
}
