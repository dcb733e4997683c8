package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/batch-mailer/batch/internal/campaign"
)

// unsubscribeServer is batch unsubscribe-server: it serves the campaign's
// unsubscribe links (campaign.UnsubscribeHandler) until Ctrl-C, behind
// the user's HTTPS reverse proxy.
func (c *cli) unsubscribeServer(ctx context.Context, args []string) error {
	flags := c.flags("unsubscribe-server")
	listen := flags.String("listen", "127.0.0.1:8089", "")
	path, err := c.parse(flags, args)
	if err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(*listen); err != nil {
		return usageError{fmt.Sprintf("unsubscribe-server: --listen %q: want HOST:PORT, such as 127.0.0.1:8089 (port 0 for a free one)", *listen)}
	}
	camp, err := campaign.Load(path)
	if err != nil {
		return err
	}
	stderr := &lockedWriter{w: c.stderr}
	warn := func(err error) { fmt.Fprintf(stderr, "batch: warning: %v\n", err) }
	if err := camp.ReadSecret(ctx, campaign.Secrets{Getenv: c.getenv}); err != nil {
		return err
	}
	h, err := camp.UnsubscribeHandler(warn)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("unsubscribe-server: --listen %s: %w", *listen, err)
	}
	defer ln.Close()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       20 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          log.New(stderr, "batch: unsubscribe-server: ", 0),
	}
	fmt.Fprintf(stderr, "batch: unsubscribe server at http://%s/ adding to %s — serve it through an HTTPS reverse proxy; Ctrl-C to stop\n", ln.Addr(), camp.Suppress)
	return serve(ctx, srv, ln, "unsubscribe-server")
}
