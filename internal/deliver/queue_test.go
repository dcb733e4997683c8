package deliver

import (
	"context"
	"errors"
	"testing"

	"github.com/batch-mailer/batch/internal/render"
)

// TestSendQueue: Send queues a message in a connection's slot or, if it is
// of at most QueuedMax bytes, in one of the queue's; with none free it
// waits. A larger message waits for a connection's slot even while the
// queue has room, and each slot goes back where it came from.
func TestSendQueue(t *testing.T) {
	s := &SMTP{jobs: make(chan job, 3), broken: make(chan struct{})}
	s.slots, s.queue = filled(1), filled(2)
	small := &render.Message{To: "small@example.org", Data: make([]byte, 100)}
	big := &render.Message{To: "big@example.org", Data: make([]byte, QueuedMax+1)}
	done, cancel := context.WithCancel(t.Context())
	cancel()
	// blocked reports whether Send of m waits: with a context that is
	// done, Send returns at once either way, picking at random between a
	// free slot and the context; 20 times in a row the context, and it
	// had no slot.
	blocked := func(m *render.Message) bool {
		for range 20 {
			if err := s.Send(done, m, DoneFunc(nil)); err == nil {
				return false
			} else if !errors.Is(err, context.Canceled) {
				t.Fatalf("Send: %v", err)
			}
		}
		return true
	}

	for range 3 {
		if err := s.Send(t.Context(), small, DoneFunc(nil)); err != nil {
			t.Fatal(err)
		}
	}
	if !blocked(small) {
		t.Fatal("a fourth message was queued, with one connection and a queue of 2")
	}
	var conn, queued []job
	for range 3 {
		j := <-s.jobs
		if j.queued {
			queued = append(queued, j)
		} else {
			conn = append(conn, j)
		}
	}
	if len(conn) != 1 || len(queued) != 2 {
		t.Fatalf("%d messages in a connection's slot, %d in the queue's; want 1 and 2", len(conn), len(queued))
	}

	s.free(&queued[0])
	s.free(&queued[0]) // once only
	if !blocked(big) {
		t.Fatalf("a message of %d bytes took a slot of the queue", len(big.Data))
	}
	if err := s.Send(t.Context(), small, DoneFunc(nil)); err != nil {
		t.Fatal(err)
	}
	if j := <-s.jobs; !j.queued {
		t.Error("the small message took a connection's slot, which was not free")
	}
	if !blocked(small) {
		t.Fatal("a slot given back once was taken twice")
	}

	s.free(&conn[0])
	if err := s.Send(t.Context(), big, DoneFunc(nil)); err != nil {
		t.Fatal(err)
	}
	if j := <-s.jobs; j.queued || j.m != big {
		t.Errorf("the big message: queued %v (%s), want in the connection's slot", j.queued, j.m.To)
	}
}
