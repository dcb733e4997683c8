package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/batch-mailer/batch/internal/campaign"
	"github.com/batch-mailer/batch/internal/journal"
	"github.com/batch-mailer/batch/internal/smtptest"
)

// The crash tests run the real batch binary, built once, as a subprocess
// against a slow smtptest server, and stop it the ways a campaign gets
// stopped: SIGKILL at many points (between the message's end and the
// server's reply among them), Ctrl-C (SIGINT) or SIGTERM, and Ctrl-C
// twice, with the message sent in a BDAT chunk, after DATA pipelined, and
// a command at a time. After each stop the journal must tell the truth,
// and a resume must send nobody a second copy.

// crashRecipients is the size of the crash tests' list.
const crashRecipients = 30

// crashAddr is the address of the crash tests' recipient i.
func crashAddr(i int) string { return fmt.Sprintf("r%02d@example.org", i) }

// slowData delays the server's reply to the end of every message (its
// final dot, or BDAT LAST).
func slowData(d time.Duration) smtptest.Fault {
	return smtptest.Fault{Stage: smtptest.AtData, Delay: d}
}

// TestCrash builds batch once, for all of its subtests, into its own
// temporary directory.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds batch and runs it against a slow SMTP server")
	}
	bin := buildBatch(t)
	for _, w := range []struct {
		name string
		way  smtptest.Option
	}{
		{"chunked", smtptest.Without()},                    // the message in a BDAT chunk
		{"pipelined", smtptest.Without(smtptest.Chunking)}, // the message after DATA
		// A command at a time, the "handover" record written while
		// the server reads DATA.
		{"classic", smtptest.Without(smtptest.Chunking, smtptest.Pipelining)},
	} {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			t.Run("SIGKILL", func(t *testing.T) { testKill(t, bin, w.way) })
			t.Run("SIGINT", func(t *testing.T) { testInterrupt(t, bin, w.way) })
			t.Run("double SIGINT", func(t *testing.T) { testDoubleInterrupt(t, bin, w.way) })
		})
	}
}

// buildBatch builds the command in this directory and returns its path.
func buildBatch(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build batch with")
	}
	bin := filepath.Join(t.TempDir(), "batch")
	start := time.Now()
	if out, err := exec.Command(goCmd, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built batch in %s", time.Since(start).Round(time.Millisecond))
	return bin
}

// testKill kills batch with SIGKILL mid-campaign, then resumes it.
func testKill(t *testing.T, bin string, way smtptest.Option) {
	for _, k := range []int{1, 10, 25, 29} {
		t.Run(fmt.Sprintf("after %d deliveries", k), func(t *testing.T) {
			r := newRig(t, bin, way, 1, slowData(30*time.Millisecond))
			p := r.start("send", "--yes", "c.toml")
			r.awaitDelivered(p, k)
			r.kill(p)
			r.srv.SetFaults()
			r.finish(r.resume(1))
		})
	}

	t.Run("after 10 deliveries on 3 connections", func(t *testing.T) {
		r := newRig(t, bin, way, 3, slowData(30*time.Millisecond))
		p := r.start("send", "--yes", "c.toml")
		r.awaitDelivered(p, 10)
		r.kill(p)
		r.srv.SetFaults()
		r.finish(r.resume(1))
	})

	t.Run("at RCPT TO", func(t *testing.T) {
		// Killed before DATA: the server has nothing, and the journal,
		// read on the boot that wrote it, knows: its "sending" record
		// has no "handover" after it, so the recipient is pending, and
		// the resume sends it. (Where the machine's boot is not known,
		// it is unknown, as after a crash of the machine.)
		target := crashAddr(7)
		at := make(chan string, 1)
		r := newRig(t, bin, way, 1,
			smtptest.Fault{Rcpt: target, Stage: smtptest.AtRcpt, Delay: time.Second, Notify: at},
			slowData(30*time.Millisecond))
		p := r.start("send", "--yes", "c.toml")
		r.await(p, at, "RCPT TO "+target)
		r.kill(p)
		if got := r.journal().Get(target).Status; got != journal.Pending && bootKnown() {
			t.Errorf("killed at RCPT TO, %s is %v in the journal, want pending", target, got)
		}
		r.srv.SetFaults()
		unknown := r.resume(1)
		r.finish(unknown)
		if got := r.srv.Delivered()[target]; got != 1 {
			t.Errorf("%s delivered %d times in the end, want 1", target, got)
		}
	})

	t.Run("between the message and the reply", func(t *testing.T) {
		target := crashAddr(12)
		in := make(chan string, 1)
		r := newRig(t, bin, way, 1,
			smtptest.Fault{Rcpt: target, Stage: smtptest.AtData, Silent: true, Notify: in},
			slowData(30*time.Millisecond))
		p := r.start("send", "--yes", "c.toml")
		r.await(p, in, "the whole message to "+target)
		r.kill(p, target)
		r.checkHandedOver(target)
		r.srv.SetFaults()
		unknown := r.resume(1)
		if !slices.Contains(unknown, target) {
			t.Errorf("unknown after the resume: %v, want %s among them", unknown, target)
		}
		r.finish(unknown)
		r.checkExactlyOnce()
	})

	t.Run("twice, then resumed", func(t *testing.T) {
		// The issue: "Killed twice with SIGKILL mid-campaign and resumed".
		target := crashAddr(5)
		in := make(chan string, 1)
		r := newRig(t, bin, way, 1,
			smtptest.Fault{Rcpt: target, Stage: smtptest.AtData, Silent: true, Notify: in},
			slowData(30*time.Millisecond))
		p := r.start("send", "--yes", "c.toml")
		r.await(p, in, "the whole message to "+target)
		r.kill(p, target)
		r.checkHandedOver(target)

		r.srv.SetFaults(slowData(30 * time.Millisecond))
		p = r.start("send", "--yes", "c.toml")
		r.awaitDelivered(p, 18)
		r.kill(p, target)

		r.srv.SetFaults()
		unknown := r.resume(2)
		if !slices.Contains(unknown, target) {
			t.Errorf("unknown after the resume: %v, want %s among them", unknown, target)
		}
		r.finish(unknown)
		if got := r.srv.Delivered()[target]; got != 1 {
			t.Errorf("%s delivered %d times in the end, want 1", target, got)
		}
	})
}

// testInterrupt stops batch with one SIGINT (or SIGTERM): it lets the
// message in flight finish, records it, and exits 130 by itself.
func testInterrupt(t *testing.T, bin string, way smtptest.Option) {
	tests := []struct {
		name     string
		sig      syscall.Signal
		after    int  // deliveries before the signal
		inFlight bool // signal while the server holds a message for 500ms
	}{
		{"after 1 delivery", syscall.SIGINT, 1, false},
		{"after 5 deliveries", syscall.SIGINT, 5, false},
		{"with a slow message in flight", syscall.SIGINT, 0, true},
		{"SIGTERM after 10 deliveries", syscall.SIGTERM, 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := crashAddr(8)
			in := make(chan string, 1)
			faults := []smtptest.Fault{slowData(50 * time.Millisecond)}
			if tt.inFlight {
				faults = append([]smtptest.Fault{{Rcpt: target, Stage: smtptest.AtData, Delay: 500 * time.Millisecond, Notify: in}}, faults...)
			}
			r := newRig(t, bin, way, 1, faults...)
			p := r.start("send", "--yes", "c.toml")
			if tt.inFlight {
				r.await(p, in, "the whole message to "+target)
			} else {
				r.awaitDelivered(p, tt.after)
			}
			signalled := time.Now()
			r.signal(p, tt.sig)
			code := r.wait(p, 10*time.Second)
			t.Logf("batch stopped %s after %v", time.Since(signalled).Round(time.Millisecond), tt.sig)
			if code != exitInterrupted {
				t.Errorf("exit %d after %v, want %d", code, tt.sig, exitInterrupted)
			}
			if !strings.Contains(p.stderr.String(), "again to resume") {
				t.Errorf("stderr doesn't say how to resume:\n%s", p.stderr.String())
			}

			counts := r.status()
			if counts["unknown"] != 0 || counts["failed"] != 0 || counts["sent"]+counts["pending"] != crashRecipients {
				t.Errorf("status after %v: %v, want no unknown or failed, sent + pending = %d", tt.sig, counts, crashRecipients)
			}
			if counts["pending"] == 0 {
				t.Errorf("status after %v: %v: the run was not stopped early", tt.sig, counts)
			}
			// One summary, which says what is still to send, and one line
			// that says how to resume.
			if want := fmt.Sprintf(", still pending %d in ", counts["pending"]); !strings.Contains(p.stdout.String(), want) {
				t.Errorf("the summary doesn't say %q:\n%s", want, p.stdout.String())
			}
			if n := strings.Count(p.stderr.String(), "resume"); n != 1 || strings.Contains(p.stderr.String(), "batch: interrupted\n") {
				t.Errorf("stderr says how to resume %d times (want once, in the one closing line):\n%s", n, p.stderr.String())
			}
			// After a clean stop the journal and the server agree exactly.
			st, delivered := r.journal(), r.srv.Delivered()
			total := 0
			for i := range crashRecipients {
				a := crashAddr(i)
				total += delivered[a]
				if sent := st.Get(a).Status == journal.Sent; delivered[a] > 1 || sent != (delivered[a] == 1) {
					t.Errorf("%s: delivered %d times, the journal says %v", a, delivered[a], st.Get(a).Status)
				}
			}
			if total != counts["sent"] {
				t.Errorf("the server took %d messages, the journal says %d sent", total, counts["sent"])
			}
			if tt.inFlight && st.Get(target).Status != journal.Sent {
				t.Errorf("the message in flight at the signal (%s) is %v, want sent", target, st.Get(target).Status)
			}

			r.srv.SetFaults()
			r.finish(r.resume(0))
			r.checkExactlyOnce()
		})
	}
}

// testDoubleInterrupt: a second SIGINT quits at once, with the message in
// flight unknown, and a resume (with --resend-unknown) still reaches
// everyone exactly once.
func testDoubleInterrupt(t *testing.T, bin string, way smtptest.Option) {
	target := crashAddr(6)
	in := make(chan string, 1)
	r := newRig(t, bin, way, 1,
		smtptest.Fault{Rcpt: target, Stage: smtptest.AtData, Silent: true, Notify: in},
		slowData(30*time.Millisecond))
	p := r.start("send", "--yes", "c.toml")
	r.await(p, in, "the whole message to "+target)
	first := time.Now()
	r.signal(p, syscall.SIGINT)
	// The server never answers, so batch waits for its 2s timeout: wait
	// until it says it is stopping, then press Ctrl-C again.
	for !strings.Contains(p.stderr.String(), "batch: stopping") {
		if p.exited() {
			t.Fatalf("batch exited after one SIGINT before the in-flight message timed out")
		}
		if time.Since(first) > 5*time.Second {
			t.Fatalf("batch said nothing 5s after SIGINT")
		}
		time.Sleep(time.Millisecond)
	}
	// Let it settle into waiting for the silent server, the other
	// messages released, then quit.
	time.Sleep(100 * time.Millisecond)
	if p.exited() {
		t.Fatalf("batch exited before the second SIGINT")
	}
	second := time.Now()
	r.signal(p, syscall.SIGINT)
	code := r.wait(p, 5*time.Second)
	t.Logf("batch quit %s after the second SIGINT (%s after the first)",
		time.Since(second).Round(time.Millisecond), time.Since(first).Round(time.Millisecond))
	if code != exitInterrupted {
		t.Errorf("exit %d after two SIGINTs, want %d", code, exitInterrupted)
	}
	if !strings.Contains(p.stderr.String(), "batch: quit;") {
		t.Errorf("batch did not quit on the second SIGINT:\n%s", p.stderr.String())
	}

	counts := r.status() // the journal is readable
	if counts["failed"] != 0 || counts["sent"]+counts["unknown"]+counts["pending"] != crashRecipients {
		t.Errorf("status after two SIGINTs: %v", counts)
	}
	r.checkHandedOver(target)
	r.checkAtMostOnce()

	r.srv.SetFaults()
	unknown := r.resume(1)
	if !slices.Contains(unknown, target) {
		t.Errorf("unknown after the resume: %v, want %s among them", unknown, target)
	}
	r.finish(unknown)
	r.checkExactlyOnce()
}

// rig is one campaign of crashRecipients recipients, an smtptest server,
// and the batch processes run on it.
type rig struct {
	t     *testing.T
	bin   string
	srv   *smtptest.Server
	dir   string
	conns int
	procs []*proc
}

// newRig starts a server that offers way (see TestCrash), with faults.
func newRig(t *testing.T, bin string, way smtptest.Option, conns int, faults ...smtptest.Fault) *rig {
	t.Helper()
	r := &rig{t: t, bin: bin, dir: t.TempDir(), conns: conns}
	opts := []smtptest.Option{way}
	for _, f := range faults {
		opts = append(opts, f)
	}
	r.srv = smtptest.Start(t, opts...)
	var list strings.Builder
	list.WriteString("email,name\n")
	for i := range crashRecipients {
		fmt.Fprintf(&list, "%s,Reader %d\n", crashAddr(i), i)
	}
	files := map[string]string{
		"t.md":  "Hello {{.name}}!\n\nThis is *your* newsletter.\n",
		"r.csv": list.String(),
		"c.toml": fmt.Sprintf(`name = "crash"
from = "News <news@example.org>"
subject = "Hi {{.name}}"
template = "t.md"
recipients = "r.csv"

[smtp]
host = "127.0.0.1"
port = %d
security = "none"
timeout = "2s"
retry_wait = "10ms"
connections = %d
`, r.srv.Port(), conns),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(r.dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Registered before any process's, so it runs after they are reaped.
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range r.procs {
				p.log(t)
			}
		}
	})
	return r
}

// proc is one batch process.
type proc struct {
	args           []string
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
	done           chan struct{} // closed once reaped
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) log(t *testing.T) {
	state := "running"
	if p.exited() {
		state = p.cmd.ProcessState.String()
	}
	t.Logf("batch %s: %s\nstdout:\n%sstderr:\n%s", strings.Join(p.args, " "), state, p.stdout.String(), p.stderr.String())
}

// start starts batch in the campaign's directory, its standard input not
// a terminal; it is killed at the end of the test if still running.
func (r *rig) start(args ...string) *proc {
	r.t.Helper()
	p := &proc{args: args, done: make(chan struct{})}
	p.cmd = exec.Command(r.bin, args...)
	p.cmd.Dir = r.dir
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	r.procs = append(r.procs, p)
	r.t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for p to exit, at most guard (a liveness guard, not a timing
// assertion), and returns its exit status: -1 when killed by a signal.
func (r *rig) wait(p *proc, guard time.Duration) int {
	r.t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(guard):
		p.cmd.Process.Kill()
		<-p.done
		p.log(r.t)
		r.t.Fatalf("batch %s did not exit within %s", strings.Join(p.args, " "), guard)
		return 0
	}
}

func (r *rig) signal(p *proc, sig os.Signal) {
	r.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("%v: %v", sig, err)
	}
}

// kill kills p with SIGKILL and reaps it, which releases the journal, then
// waits for the server to finish with the message the dead run left in
// flight: a slow server delivers it after the client died. silent are the
// recipients of Silent faults, which the server never delivers.
func (r *rig) kill(p *proc, silent ...string) {
	r.t.Helper()
	if p.exited() {
		p.log(r.t)
		r.t.Fatalf("batch exited before it could be killed")
	}
	r.signal(p, syscall.SIGKILL)
	r.wait(p, 5*time.Second)
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		r.t.Fatalf("batch was not killed: %v", p.cmd.ProcessState)
	}
	r.t.Logf("killed with %d delivered", total(r.srv.Delivered()))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		received, delivered := r.srv.Received(), r.srv.Delivered()
		settled := true
		for a, n := range received {
			if n != delivered[a] && !slices.Contains(silent, a) {
				settled = false
			}
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("the server still holds messages 5s after the kill: received %v, delivered %v", received, delivered)
		}
	}
}

// batch runs batch to its end and returns its exit status and output.
func (r *rig) batch(args ...string) (int, string, string) {
	r.t.Helper()
	p := r.start(args...)
	code := r.wait(p, 30*time.Second)
	return code, p.stdout.String(), p.stderr.String()
}

// await waits for a fault's notice.
func (r *rig) await(p *proc, ch <-chan string, what string) {
	r.t.Helper()
	select {
	case <-ch:
	case <-p.done:
		p.log(r.t)
		r.t.Fatalf("batch exited before %s", what)
	case <-time.After(10 * time.Second):
		r.t.Fatalf("no %s within 10s", what)
	}
}

// awaitDelivered waits until the server has accepted n messages in all.
func (r *rig) awaitDelivered(p *proc, n int) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for total(r.srv.Delivered()) < n {
		if p.exited() {
			p.log(r.t)
			r.t.Fatalf("batch exited before %d deliveries", n)
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("fewer than %d deliveries within 10s", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// status returns the counts of batch status --json.
func (r *rig) status() map[string]int {
	r.t.Helper()
	code, stdout, stderr := r.batch("status", "--json", "c.toml")
	if code != 0 {
		r.t.Fatalf("batch status: exit %d\n%s%s", code, stdout, stderr)
	}
	counts := map[string]int{}
	if err := json.Unmarshal([]byte(stdout), &counts); err != nil {
		r.t.Fatalf("batch status --json: %v\n%s", err, stdout)
	}
	return counts
}

// journal reads the campaign's journal.
func (r *rig) journal() *journal.State {
	r.t.Helper()
	camp, err := campaign.Load(filepath.Join(r.dir, "c.toml"))
	if err != nil {
		r.t.Fatal(err)
	}
	f, err := os.Open(camp.JournalPath(campaign.Shard{}))
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	st, err := journal.Read(camp.JournalPath(campaign.Shard{}), f)
	if err != nil {
		r.t.Fatalf("the journal can't be read: %v", err)
	}
	return st
}

// bootKnown reports whether this machine says which boot it is on, which
// the journal needs to tell a message whose end never went from one in
// flight.
func bootKnown() bool {
	_, err := os.Stat("/proc/sys/kernel/random/boot_id")
	return err == nil
}

// checkHandedOver checks a recipient whose whole message the server read
// and never answered: unknown in the journal, not delivered.
func (r *rig) checkHandedOver(rcpt string) {
	r.t.Helper()
	if got := r.journal().Get(rcpt).Status; got != journal.Unknown {
		r.t.Errorf("%s, killed between the message and the reply, is %v in the journal, want unknown", rcpt, got)
	}
	if rc, dl := r.srv.Received()[rcpt], r.srv.Delivered()[rcpt]; rc != 1 || dl != 0 {
		r.t.Errorf("%s: received %d, delivered %d; want 1 and 0", rcpt, rc, dl)
	}
}

// checkAtMostOnce checks that nobody got two copies and that whoever the
// journal says was sent was delivered; it returns the unknown recipients.
func (r *rig) checkAtMostOnce() []string {
	r.t.Helper()
	st, delivered := r.journal(), r.srv.Delivered()
	var unknown []string
	for i := range crashRecipients {
		a := crashAddr(i)
		e := st.Get(a)
		switch {
		case delivered[a] > 1:
			r.t.Errorf("%s delivered %d times", a, delivered[a])
		case e.Status == journal.Sent && delivered[a] != 1:
			r.t.Errorf("the journal says %s was sent, the server delivered it %d times", a, delivered[a])
		}
		if e.Status == journal.Unknown {
			unknown = append(unknown, a)
		}
	}
	return unknown
}

// resume runs batch send after kills stops and checks that the campaign is
// done but for the unknown recipients (at most one per connection and
// stop), which it returns; nobody got two copies.
func (r *rig) resume(kills int) []string {
	r.t.Helper()
	code, stdout, stderr := r.batch("send", "--yes", "c.toml")
	counts := r.status()
	if counts["sent"]+counts["unknown"] != crashRecipients || counts["failed"] != 0 || counts["pending"] != 0 {
		r.t.Errorf("status after the resume: %v, want sent + unknown = %d", counts, crashRecipients)
	}
	unknown := r.checkAtMostOnce()
	r.t.Logf("resumed: %d sent, unknown %v", counts["sent"], unknown)
	// At most one message per connection can be between its "sending"
	// record and its outcome when a run dies; a recipient whose message
	// no connection had taken is pending, not unknown.
	// (The "sending" record is written when a connection takes the
	// message, not when it is queued: this once failed, every recipient
	// waiting for a connection being left unknown.)
	if bootKnown() {
		// Read on the boot that wrote it, the journal says unknown only
		// of a message whose end was about to go or went: its RCPT TO
		// was answered.
		attempts := r.srv.Attempts()
		for _, a := range unknown {
			if attempts[a] == 0 {
				r.t.Errorf("%s is unknown, and the server never saw its RCPT TO", a)
			}
		}
	}
	if len(unknown) > kills*r.conns {
		attempts, received := r.srv.Attempts(), r.srv.Received()
		var never []string
		for _, a := range unknown {
			if attempts[a] == 0 {
				never = append(never, a)
			}
		}
		r.t.Errorf("%d unknown after %d stops on %d connections, at most %d expected; never seen by the server (no RCPT TO): %v",
			len(unknown), kills, r.conns, kills*r.conns, never)
		for _, a := range unknown {
			r.t.Logf("  %s: RCPT TO %d, message received %d, delivered %d", a, attempts[a], received[a], r.srv.Delivered()[a])
		}
	}
	// Exit status 0 is "every recipient sent"; 3 is "some recipients
	// failed or their outcome is unknown".
	// The status covers the whole list, held-back unknowns included.
	want := exitOK
	if len(unknown) > 0 {
		want = exitFailed
	}
	if code != want {
		r.t.Errorf("the resume exited %d with %d recipients unknown, want %d as documented\n%s%s", code, len(unknown), want, stdout, stderr)
	}
	if len(unknown) > 0 {
		// The same journal, with nothing left to send: exit 3.
		code, stdout, stderr := r.batch("send", "--yes", "c.toml")
		line := fmt.Sprintf("nothing to send: %d sent before, 0 failed, %d unknown", crashRecipients-len(unknown), len(unknown))
		if code != exitFailed || !strings.Contains(stdout, line) {
			r.t.Errorf("a send after the resume: exit %d, want %d and %q\n%s%s", code, exitFailed, line, stdout, stderr)
		}
	}
	return unknown
}

// finish completes the campaign after resume: --resend-unknown sends the
// unknown recipients once more, and nothing else; with none, a send has
// nothing to do. At the end every recipient is sent.
func (r *rig) finish(unknown []string) {
	r.t.Helper()
	before := r.srv.Delivered()
	if len(unknown) == 0 {
		code, stdout, stderr := r.batch("send", "--yes", "c.toml")
		if code != exitOK || !strings.Contains(stdout, fmt.Sprintf("nothing to send: %d sent before, 0 failed, 0 unknown", crashRecipients)) {
			r.t.Errorf("a send after the campaign: exit %d\n%s%s", code, stdout, stderr)
		}
	} else {
		code, stdout, stderr := r.batch("send", "--yes", "--resend-unknown", "c.toml")
		if code != exitOK {
			r.t.Errorf("send --resend-unknown: exit %d, want 0\n%s%s", code, stdout, stderr)
		}
	}
	if counts := r.status(); counts["sent"] != crashRecipients {
		r.t.Errorf("status at the end: %v, want all %d sent", counts, crashRecipients)
	}
	after := r.srv.Delivered()
	for i := range crashRecipients {
		a := crashAddr(i)
		want := before[a]
		if slices.Contains(unknown, a) {
			want++
			if before[a] > 0 {
				// The server had taken it but the run died before the
				// reply was recorded: a second copy is what
				// --resend-unknown warns of.
				r.t.Logf("%s was unknown but delivered: --resend-unknown sends a second copy, as documented", a)
			}
		}
		if after[a] != want {
			r.t.Errorf("%s: delivered %d times at the end, want %d", a, after[a], want)
		}
	}
}

// checkExactlyOnce checks that every recipient was delivered exactly once.
func (r *rig) checkExactlyOnce() {
	r.t.Helper()
	delivered := r.srv.Delivered()
	for i := range crashRecipients {
		if a := crashAddr(i); delivered[a] != 1 {
			r.t.Errorf("%s delivered %d times, want exactly 1", a, delivered[a])
		}
	}
}

// syncBuffer is a bytes.Buffer that a process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
