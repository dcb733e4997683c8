package campaign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/batch-mailer/batch/internal/merge"
)

// rows is a pipeline over n rows (n < 0: without end), each to render
// unless skip says otherwise, whose renderer takes render's time; reads
// counts the rows read.
func rows(n int, skip func(row int) bool, render func(row int) time.Duration, reads *atomic.Int64) pipeline {
	return pipeline{
		read: func(context.Context) (*item, bool) {
			row := int(reads.Add(1))
			if n >= 0 && row > n {
				return nil, false
			}
			it := &item{kind: itemMessage, rec: &merge.Recipient{Row: row}}
			if skip(row) {
				it.kind, it.skip = itemSkipped, skipShard
			}
			return it, true
		},
		render: func(it *item, body *bytes.Buffer) {
			time.Sleep(render(it.rec.Row))
			if it.rec.Row%7 == 0 {
				it.kind, it.err = itemFailed, fmt.Errorf("row %d", it.rec.Row)
			}
		},
	}
}

// TestPipelineOrder: rendered on every core, each in its own time, the
// items come back in list order, each rendered by then.
func TestPipelineOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var reads atomic.Int64
		p := rows(500, func(row int) bool { return row%5 == 0 }, func(int) time.Duration {
			return time.Duration(rand.IntN(1000)) * time.Microsecond
		}, &reads)
		want := 1
		for it := range p.items(t.Context()) {
			if it.rec.Row != want {
				t.Fatalf("row %d, want %d: out of order", it.rec.Row, want)
			}
			want++
			var kind itemKind
			switch {
			case it.rec.Row%5 == 0:
				kind = itemSkipped
			case it.rec.Row%7 == 0:
				kind = itemFailed
			default:
				kind = itemMessage
			}
			if it.kind != kind || (kind == itemFailed) != (it.err != nil) {
				t.Errorf("row %d: kind %d, error %v; want kind %d", it.rec.Row, it.kind, it.err, kind)
			}
		}
		if want != 501 {
			t.Errorf("%d items, want 500", want-1)
		}
	})
}

// TestPipelineBounded: however long the list, a pass that doesn't take the
// next item has read no more than a few for each core: the one it holds,
// 4 per core waiting, and the one the reader holds.
func TestPipelineBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var reads atomic.Int64
		p := rows(-1, func(int) bool { return false }, func(int) time.Duration { return 0 }, &reads)
		taken := 0
		for range p.items(t.Context()) {
			if taken++; taken == 1 {
				synctest.Wait() // the reader and every renderer blocked
				if n, most := reads.Load(), int64(4*runtime.GOMAXPROCS(0)+2); n > most {
					t.Errorf("%d rows read, want %d at most", n, most)
				}
			}
			if taken == 100 {
				break // the pipeline stops, and the bubble ends with no goroutine left
			}
		}
		if n, most := reads.Load(), int64(100+4*runtime.GOMAXPROCS(0)+2); n > most {
			t.Errorf("%d rows read after taking 100, want %d at most", n, most)
		}
	})
}

// TestPipelineStops: an unreadable list ends the items, whatever follows
// it, and a context done stops the reading.
func TestPipelineStops(t *testing.T) {
	t.Run("unreadable", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			errBroken := errors.New("broken")
			row := 0
			p := pipeline{
				read: func(context.Context) (*item, bool) {
					row++
					if row == 3 {
						return &item{kind: itemUnreadable, err: errBroken}, true
					}
					return &item{kind: itemSkipped, rec: &merge.Recipient{Row: row}}, true
				},
				render: func(*item, *bytes.Buffer) { t.Error("rendered a skipped row") },
			}
			var got []itemKind
			for it := range p.items(t.Context()) {
				got = append(got, it.kind)
			}
			if len(got) != 3 || got[2] != itemUnreadable || row != 3 {
				t.Errorf("items %v after reading %d rows, want two, then the unreadable one, the last", got, row)
			}
		})
	})
	t.Run("context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var reads atomic.Int64
			p := rows(-1, func(int) bool { return false }, func(int) time.Duration { return time.Millisecond }, &reads)
			n := 0
			for range p.items(ctx) {
				if n++; n == 10 {
					cancel()
				}
			}
			if most := int64(10 + 4*runtime.GOMAXPROCS(0) + 2); reads.Load() > most {
				t.Errorf("%d rows read after the context was done at row 10, want %d at most", reads.Load(), most)
			}
		})
	})
}
