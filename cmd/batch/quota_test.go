package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/smtptest"
)

// TestSendQuota: a quota not reached sends everyone; one reached stops the
// send with exit status 4, nothing failed, saying how many remain and when
// the window reopens; status shows the quota used. A second run the same
// hour sends nothing, and neither reaches the server nor asks.
func TestSendQuota(t *testing.T) {
	srv := smtptest.Start(t)
	path := smtpCampaign(t, srv, 3, "quota = \"100/day\"\n")
	code, stdout, stderr := batch(t, nil, "send", "--yes", path)
	if code != exitOK || !strings.HasPrefix(stdout, "sent 3, failed 0, ") {
		t.Fatalf("send, quota not reached: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, _ = batch(t, nil, "status", path)
	if code != 0 || !regexp.MustCompile(`(?m)^quota 3/100 used \(100/day\), the next frees up at 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d \S+ \(20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC\)$`).MatchString(stdout) {
		t.Errorf("status: exit %d\n%s", code, stdout)
	}

	srv = smtptest.Start(t)
	path = smtpCampaign(t, srv, 5, "quota = \"2/h\"\n")
	code, stdout, stderr = batch(t, nil, "send", "--yes", path)
	if code != exitQuota {
		t.Errorf("send, quota reached: exit %d, want %d\n%s%s", code, exitQuota, stdout, stderr)
	}
	if !strings.Contains(stderr, "no rate limit, a quota of 2/h, 1 connection") {
		t.Errorf("plan:\n%s", stderr)
	}
	if !strings.HasPrefix(stdout, "sent 2, failed 0, unknown 0, ") {
		t.Errorf("summary: %s", stdout)
	}
	reopen := regexp.MustCompile(`(?m)^batch: quota of 2/h reached: 2 messages handed over in the last hour; the window reopens at 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d \S+ \(20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC\)$`)
	if !reopen.MatchString(stderr) || !strings.Contains(stderr, "batch: 3 recipients remain, nothing failed: run batch send "+path+" again after ") {
		t.Errorf("stderr:\n%s", stderr)
	}
	if strings.Contains(stderr, "batch: failed") {
		t.Errorf("a failure is reported:\n%s", stderr)
	}
	if n := len(srv.Delivered()); n != 2 {
		t.Errorf("the server has %d messages, want 2", n)
	}
	code, stdout, _ = batch(t, nil, "status", path)
	if code != 0 || !strings.HasPrefix(stdout, "sent 2\nfailed 0\nunknown 0\npending 3\nquota 2/2 used (2/h), the next frees up at ") {
		t.Errorf("status: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = batch(t, nil, "status", "--json", path)
	if code != 0 || stdout != `{"failed":0,"pending":3,"quota_used":2,"sent":2,"unknown":0}`+"\n" {
		t.Errorf("status --json: exit %d\n%s", code, stdout)
	}

	// The same hour: nothing more goes.
	code, stdout, stderr = batch(t, nil, "send", "--yes", path)
	if code != exitQuota || !strings.HasPrefix(stdout, "sent 0, failed 0, unknown 0, skipped 0, sent before 2, held 0 in 0s") || !reopen.MatchString(stderr) || strings.Contains(stderr, "about to send") {
		t.Errorf("send again: exit %d\n%s%s", code, stdout, stderr)
	}
	if n := len(srv.Delivered()); n != 2 {
		t.Errorf("the server has %d messages after the second run, want 2", n)
	}
}
