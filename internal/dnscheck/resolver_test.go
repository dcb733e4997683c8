package dnscheck

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/dnstest"
)

func TestNewResolver(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:5353": "127.0.0.1:5353",
		"[::1]:53":       "[::1]:53",
		"192.0.2.1":      "192.0.2.1:53",
		"::1":            "[::1]:53",
		"dns.test:53":    "dns.test:53",
	} {
		r, err := NewResolver(addr)
		if err != nil {
			t.Errorf("%s: %v", addr, err)
			continue
		}
		if got := r.Servers(); !slices.Equal(got, []string{want}) {
			t.Errorf("%s: servers %v, want %s", addr, got, want)
		}
	}
	for _, addr := range []string{"dns.test", ":53", "127.0.0.1:"} {
		_, err := NewResolver(addr)
		if err == nil || !strings.Contains(err.Error(), "want host:port") {
			t.Errorf("%q: error %v", addr, err)
		}
	}
}

func TestSystemResolver(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	os.WriteFile(conf, []byte("# comment\nsearch example.org\nnameserver 192.0.2.1\nnameserver 2001:db8::1\nnameserver 192.0.2.2\nnameserver 192.0.2.3\noptions ndots:1\n"), 0o644)
	r, err := systemResolver(conf)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"192.0.2.1:53", "[2001:db8::1]:53", "192.0.2.2:53"}; !slices.Equal(r.Servers(), want) {
		t.Errorf("servers %v, want %v", r.Servers(), want)
	}
	empty := filepath.Join(dir, "empty.conf")
	os.WriteFile(empty, []byte("search example.org\n"), 0o644)
	if _, err := systemResolver(empty); err == nil || !strings.Contains(err.Error(), "names no nameserver") {
		t.Errorf("no nameserver: error %v", err)
	}
	if _, err := systemResolver(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "none") {
		t.Errorf("no file: error %v", err)
	}
}

// TestNextServer: a server that doesn't answer in time is left for the
// next one.
func TestNextServer(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	z := dnstest.MustParseZone(t, `example.org. TXT "caf\195\169 \"quoted\" back\\slash"`)
	r := &Resolver{servers: []string{pc.LocalAddr().String(), dnstest.Serve(t, z)}, Timeout: 300 * time.Millisecond}
	txts, err := r.TXT(context.Background(), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{`café "quoted" back\slash`}; !slices.Equal(txts, want) {
		t.Errorf("TXT %q, want %q", txts, want)
	}
}

func TestNotADomain(t *testing.T) {
	r := &Resolver{servers: []string{"127.0.0.1:1"}}
	_, err := r.TXT(context.Background(), "a..b")
	if err == nil || !strings.Contains(err.Error(), "not a domain name") {
		t.Errorf("error %v", err)
	}
}
