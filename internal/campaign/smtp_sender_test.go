package campaign

import (
	"strings"
	"testing"
)

func TestSenderKey(t *testing.T) {
	smtp := "[smtp]\nhost = \"smtp.example.org\"\n"
	c, _, err := load(t, minimal+"sender = \"bounces@example.org\"\n"+smtp, nil)
	if err != nil || c.SMTP.Sender != "bounces@example.org" {
		t.Fatalf("top-level sender: %v, %+v", err, c)
	}
	c, _, err = load(t, minimal+smtp+"sender = \"b2@example.org\"\n", nil)
	if err != nil || c.SMTP.Sender != "b2@example.org" {
		t.Fatalf("[smtp] sender: %v", err)
	}
	_, _, err = load(t, minimal+"sender = \"a@example.org\"\n"+smtp+"sender = \"b@example.org\"\n", nil)
	if p := problemsOf(t, err); !strings.Contains(p[0].Error(), "give one") {
		t.Errorf("both: %v", err)
	}
	_, _, err = load(t, minimal+"sender = \"nobody\"\n", nil)
	if p := problemsOf(t, err); !strings.Contains(p[0].Error(), "sender") {
		t.Errorf("bad: %v", err)
	}
}
