// Package deliver hands rendered messages to their destination: a directory
// of .eml files (a dry run), or an SMTP submission server (RFC 5321, RFC
// 6409) over TLS (RFC 8314 implicit TLS, or RFC 3207 STARTTLS, never
// dropped), with AUTH PLAIN or LOGIN (RFC 4954), a set of reused
// connections and a shared rate limit.
package deliver

import (
	"context"

	"github.com/batch-mailer/batch/internal/render"
)

// Sender delivers messages. Send is called from one goroutine at a time.
type Sender interface {
	// Send delivers m, or queues it and returns; done is called once with
	// its outcome, maybe later and from another goroutine. An error from
	// Send itself means the sender can't go on: m was not taken and done
	// is not called.
	Send(ctx context.Context, m *render.Message, done func(error)) error
	// Close waits for every outcome, and makes what was written durable.
	Close() error
}
