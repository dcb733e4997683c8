package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The dry run beside a bare writer: the same files, their bytes in memory
// beforehand, each created, written and closed, by a goroutine per core,
// in a fresh directory of the work directory's filesystem. That is what
// any dry run must do at least; batch's dry run, timed as a whole process
// (reading the list, rendering, writing), should be as fast. Every run
// starts after a sync, so that none pays for writing back the one before.

// compareWrite alternates batch's dry run of the first case and the bare
// writer of its output, pairs times, each first in every other pair
// (inTurn), and prints the medians and their ratio.
func compareWrite(bin string, first firstCase, msgs []eml, outs *outputs, pairs int) error {
	toml := filepath.Join(first.dir, "c.toml")
	var batch, bare, ratios []float64
	for i := range pairs {
		// Each pair writes two sets of files; the bytes in memory are
		// enough for the send benchmark, so every earlier output may go.
		if err := outs.room(2 * first.n); err != nil {
			return err
		}
		var r result
		var elapsed time.Duration
		dryRun := func() (err error) {
			dry := filepath.Join(outs.work, fmt.Sprintf("cmp-batch-%d", i))
			outs.dirs = append(outs.dirs, dry)
			syncDisks()
			if r, err = timeRun(first.n, bin, "send", "--dry-run", dry, toml); err != nil {
				return fmt.Errorf("batch dry run, pair %d: %w", i+1, err)
			}
			return nil
		}
		bareRun := func() (err error) {
			dir := filepath.Join(outs.work, fmt.Sprintf("cmp-bare-%d", i))
			outs.dirs = append(outs.dirs, dir)
			syncDisks()
			if elapsed, err = bareWrite(dir, msgs); err != nil {
				return fmt.Errorf("bare writer, pair %d: %w", i+1, err)
			}
			return nil
		}
		if err := inTurn(i, dryRun, bareRun); err != nil {
			return err
		}
		b := float64(len(msgs)) / elapsed.Seconds()
		batch, bare, ratios = append(batch, r.rate()), append(bare, b), append(ratios, r.rate()/b)
	}
	fmt.Printf("\nthe dry run beside a bare writer of the same %d files (%d goroutines, the bytes in memory), each run after a sync, %d pairs\n", len(msgs), runtime.NumCPU(), pairs)
	fmt.Printf("%-36s %12s %8s %14s\n", "case (median)", "messages/s", "ratio", "pairs' ratios")
	fmt.Printf("%-36s %12.0f\n", "bare writer", median(bare))
	fmt.Printf("%-36s %12.0f %7.2fx %14s   (target: 1.00x or more)\n", "batch send --dry-run, whole process", median(batch), median(batch)/median(bare), span(ratios))
	return nil
}

// inTurn runs a then b for pair k even, b then a for k odd, and returns
// the first error: neither of two runs compared always comes first, onto
// a machine the other left (its page cache, its disk's writeback, the
// host's load).
func inTurn(k int, a, b func() error) error {
	if k%2 == 1 {
		a, b = b, a
	}
	if err := a(); err != nil {
		return err
	}
	return b()
}

// bareWrite writes each message's bytes as the file the dry run named it,
// into dir, which it makes, a goroutine per core; it returns how long that
// took, from the directory's making to the last file's close.
func bareWrite(dir string, msgs []eml) (time.Duration, error) {
	start := time.Now()
	if err := os.Mkdir(dir, 0o755); err != nil {
		return 0, err
	}
	var next atomic.Int64
	_, err := together(runtime.NumCPU(), func() error {
		for {
			i := int(next.Add(1) - 1)
			if i >= len(msgs) {
				return nil
			}
			if err := writeFile(filepath.Join(dir, msgs[i].name), msgs[i].data); err != nil {
				return err
			}
		}
	})
	return time.Since(start), err
}

// together runs f on n goroutines, and returns how long they took and the
// first error one of them returned.
func together(n int, f func() error) (time.Duration, error) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for range n {
		wg.Go(func() {
			if err := f(); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	return elapsed, <-errs
}

// writeFile creates, writes and closes a file, as os.WriteFile does, but
// failing if it exists, as a dry run's file is new.
func writeFile(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// median is the middle of xs, or the mean of the two middle ones.
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// span is the smallest and largest of ratios, as "0.91–1.07x".
func span(ratios []float64) string {
	return fmt.Sprintf("%.2f–%.2fx", slices.Min(ratios), slices.Max(ratios))
}
