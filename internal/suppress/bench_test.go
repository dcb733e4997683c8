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
	path := bigList(b, n)
	benchHeap(b, n, "heap-B/address", func() (int, any, error) {
		l, err := Open(path)
		if err != nil {
			return 0, nil, err
		}
		return l.Len(), l, nil
	})
}

// BenchmarkAppend appends one address at a time to a list of a million
// that the List has read: each reads only what was added since, so it
// costs the lock and the fsync, not the list:
//
//	go test -run=^$ -bench=Append -benchtime=200x ./internal/suppress/
func BenchmarkAppend(b *testing.B) {
	l, err := Open(bigList(b, 1_000_000))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if n, err := l.Append(Entry{Email: fmt.Sprintf("new.%d@example.org", i), Reason: Bounced}); n != 1 || err != nil {
			b.Fatal(n, err)
		}
	}
}

func bigList(b *testing.B, n int) string {
	return bigFile(b, "s.csv", "email,reason,at,campaign,detail", "someone.%d@example.org,bounced,2026-12-01T16:19:14Z,2026-12-newsletter,550 5.1.1 user unknown\n", n)
}

// bigFile writes a file of header and n lines, line formatted with each
// line's number.
func bigFile(b *testing.B, name, header, line string, n int) string {
	path := filepath.Join(b.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	w.WriteString(header + "\n")
	for i := range n {
		fmt.Fprintf(w, line, i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	return path
}

// benchHeap runs open b.N times and reports the heap what it returns
// holds, per one of the n it must hold (its length), as unit.
func benchHeap(b *testing.B, n int, unit string, open func() (length int, held any, err error)) {
	b.ResetTimer()
	var heap uint64
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		length, held, err := open()
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if length != n {
			b.Fatalf("Len = %d", length)
		}
		heap = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(held)
	}
	b.ReportMetric(float64(heap)/float64(n), unit)
}

// BenchmarkOpenSoft reads a soft-bounce record of a million lines (a
// million addresses, each of one campaign) and reports the heap the
// SoftList holds after it, per line:
//
//	go test -run=^$ -bench=OpenSoft -benchtime=3x ./internal/suppress/
func BenchmarkOpenSoft(b *testing.B) {
	const n = 1_000_000
	path := bigFile(b, "s.soft.csv", "email,at,campaign,status,detail", "someone.%d@example.org,2026-12-01T16:19:14Z,2026-12-newsletter,4.2.2,452 4.2.2 mailbox full\n", n)
	benchHeap(b, n, "heap-B/line", func() (int, any, error) {
		l, err := OpenSoft(path)
		if err != nil {
			return 0, nil, err
		}
		return l.Len(), l, nil
	})
}
