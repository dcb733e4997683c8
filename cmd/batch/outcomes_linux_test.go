package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/smtptest"
)

// TestJournalFull: the disk fills up while a message is being handed over,
// so that the journal can't record the server's 250. The summary counts
// that recipient as status does, unknown, not sent, and the send stops: a
// message whose outcome can't be recorded must not go.
//
// The disk is made full for the journal by the file size limit of the
// batch process (RLIMIT_FSIZE, set with prlimit once the message is in):
// a write past it is cut short there, as on a full disk. batch runs as a
// process of its own (the test binary, as testscript puts it in PATH), so
// that the limit is its alone.
func TestJournalFull(t *testing.T) {
	bin, err := exec.LookPath("batch")
	if err != nil {
		t.Skipf("no batch command in PATH: %v", err)
	}
	target := crashAddr(2)
	in := make(chan string, 1)
	// The server holds its reply to the target's final dot, so that the
	// disk fills up meanwhile.
	r := newRig(t, bin, smtptest.Without(smtptest.Chunking), 1, smtptest.Fault{Rcpt: target, Stage: smtptest.AtData, Delay: 500 * time.Millisecond, Notify: in, Times: 1})
	p := r.start("send", "--yes", "c.toml")
	r.await(p, in, "the whole message to "+target)

	// The journal's records end where its zeros (the blocks made ahead)
	// begin: room for a few bytes more.
	data, err := os.ReadFile(filepath.Join(r.dir, ".batch", "crash.journal"))
	if err != nil {
		t.Fatal(err)
	}
	end := len(bytes.TrimRight(data, "\x00"))
	limit := unix.Rlimit{Cur: uint64(end) + 10, Max: unix.RLIM_INFINITY}
	if err := unix.Prlimit(p.cmd.Process.Pid, unix.RLIMIT_FSIZE, &limit, nil); err != nil {
		t.Skipf("can't limit the file size of batch: %v", err)
	}
	code := r.wait(p, time.Minute)
	stdout, stderr := p.stdout.String(), p.stderr.String()
	if code != exitProblem {
		t.Errorf("send: exit %d, want %d (the run failed)\n%s%s", code, exitProblem, stdout, stderr)
	}
	if !strings.HasPrefix(stdout, fmt.Sprintf("sent 2, failed 0, unknown 1, skipped 0, still pending %d in ", crashRecipients-3)) {
		t.Errorf("summary: %s", stdout)
	}
	unknown := regexp.MustCompile(`(?m)^batch: unknown: ` + regexp.QuoteMeta(target) + ` \(row 3\): the server took the message, but the journal could not record it: .*file too large$`)
	if !unknown.MatchString(stderr) || !strings.Contains(stderr, "batch: stopped: journal ") {
		t.Errorf("stderr does not say the target is unknown, or why the send stopped:\n%s", stderr)
	}
	if got, want := r.status(), map[string]int{"sent": 2, "failed": 0, "unknown": 1, "pending": crashRecipients - 3}; !maps.Equal(got, want) {
		t.Errorf("status %v, want %v", got, want)
	}
	if e := r.journal().Get(target); e.Status != journal.Unknown {
		t.Errorf("the journal says %s is %v, want unknown", target, e.Status)
	}
	if d := r.srv.Delivered(); total(d) != 3 || d[target] != 1 {
		t.Errorf("delivered %v, want the first three once each", d)
	}
}
