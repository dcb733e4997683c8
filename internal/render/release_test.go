package render

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/mail"
	"runtime"
	"sync"
	"testing"
)

// releaseInputs are messages of different sizes and shapes: a body with
// an image, one with a table and a long value, one with no value at all.
func releaseInputs(t *testing.T) []*Input {
	t.Helper()
	var in []*Input
	for i := range 6 {
		name := fmt.Sprintf("Zoë %d %s", i, bytes.Repeat([]byte("长"), i*40))
		md := fmt.Sprintf("![logo](logo.png)\n\n# Hello %s\n\n| a | b |\n|---|---|\n| %d | %s |\n", name, i, name)
		if i%3 == 2 {
			md = "Nothing of the recipient's here.\n"
		}
		in = append(in, &Input{Seq: i + 1, To: mail.Address{Name: name, Address: fmt.Sprintf("r%d@example.com", i)},
			Subject: "来自SMTP的问候 " + name, Markdown: []byte(md)})
	}
	return in
}

// TestReleaseReuses renders messages whose bytes are given back
// (Message.Release) and reused, on two goroutines at once, and finds
// each the same bytes as when nothing is reused; and that, released,
// a message costs much less than its size in allocations, which is what
// Release is for.
func TestReleaseReuses(t *testing.T) {
	for _, signed := range []bool{false, true} {
		t.Run(fmt.Sprintf("dkim=%v", signed), func(t *testing.T) {
			f := newFixture(t)
			f.file("logo.png", bytes.Repeat(testPNG, 200))
			r := f.renderer()
			if signed {
				_, key, err := ed25519.GenerateKey(rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				r = f.dkimRenderer(key)
			}
			inputs := releaseInputs(t)
			want := make([][]byte, len(inputs))
			for i, in := range inputs {
				m, err := r.Render(in)
				if err != nil {
					t.Fatal(err)
				}
				want[i] = m.Data // never released: its own bytes
				parse(t, m.Data)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			for g := range 2 {
				wg.Go(func() {
					for k := range 300 {
						i := (k + g) % len(inputs)
						m, err := r.Render(inputs[i])
						if err != nil {
							errs <- err
							return
						}
						if !bytes.Equal(m.Data, want[i]) {
							errs <- fmt.Errorf("message %d, rendered again into reused bytes, differs from its first rendering", i+1)
							return
						}
						m.Release()
						if m.Data != nil {
							errs <- fmt.Errorf("message %d: Data is still set after Release", i+1)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for i := range want {
				parse(t, want[i]) // untouched by the reuse
			}

			if raceEnabled {
				return // the race detector's sync.Pool drops buffers on purpose
			}
			const n = 200
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for k := range n {
				m, err := r.Render(inputs[k%2])
				if err != nil {
					t.Fatal(err)
				}
				m.Release()
			}
			runtime.ReadMemStats(&after)
			size := (len(want[0]) + len(want[1])) / 2
			if per := int(after.TotalAlloc-before.TotalAlloc) / n; per > size/2 {
				t.Errorf("%d bytes allocated per released message of %d: its bytes are not reused", per, size)
			}
		})
	}
}
