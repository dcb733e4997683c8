// Package deliver hands rendered messages to their destination: a directory
// of .eml files (a dry run) or, later, an SMTP server.
package deliver

import (
	"context"

	"github.com/batch-mailer/batch/internal/render"
)

// Sender delivers messages. Send is called from one goroutine at a time.
type Sender interface {
	Send(ctx context.Context, m *render.Message) error
	// Close finishes delivery and makes what was sent durable.
	Close() error
}
