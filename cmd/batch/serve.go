package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// serve serves srv on ln until ctx is done (Ctrl-C), then shuts it down,
// giving the requests under way a moment. name is the command's, for the
// error when serving fails.
func serve(ctx context.Context, srv *http.Server, ln net.Listener, name string) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
	}
	stop, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(stop); err != nil {
		srv.Close()
	}
	<-served
	return nil
}
