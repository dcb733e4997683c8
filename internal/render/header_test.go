package render

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckFieldName: an extra field's name is ftext, and none of the
// fields a message has of its own, each refused with its reason.
func TestCheckFieldName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
		why  FieldReason
	}{
		{"X-Campaign", true, 0},
		{"x-list-id", true, 0},
		{"Resentment", true, 0},
		{"", false, FieldSyntax},
		{strings.Repeat("X", 77), false, FieldSyntax},
		{"X Tag", false, FieldSyntax},
		{"X:Tag", false, FieldSyntax},
		{"X-Tàg", false, FieldSyntax},
		{"X-\x7fTag", false, FieldSyntax},
		{"To", false, FieldRecipients},
		{"cc", false, FieldRecipients},
		{"BCC", false, FieldRecipients},
		{"Resent-To", false, FieldRecipients},
		{"List-Unsubscribe", false, FieldUnsubscribe},
		{"list-unsubscribe-post", false, FieldUnsubscribe},
		{"From", false, FieldAddressed},
		{"Reply-To", false, FieldAddressed},
		{"subject", false, FieldAddressed},
		{"Message-ID", false, FieldWritten},
		{"Content-Type", false, FieldWritten},
		{"content-transfer-encoding", false, FieldWritten},
		{"DKIM-Signature", false, FieldWritten},
		{"Received", false, FieldWritten},
	} {
		err := CheckFieldName(tt.name)
		if tt.ok {
			if err != nil {
				t.Errorf("%q: %v, want none", tt.name, err)
			}
			continue
		}
		var fe *FieldNameError
		if !errors.As(err, &fe) || fe.Reason != tt.why || fe.Name != tt.name {
			t.Errorf("%q: %v (%#v), want a *FieldNameError for reason %d", tt.name, err, fe, tt.why)
			continue
		}
		// render's own words: what the field is to a message, not where
		// a campaign file sets it.
		if msg := err.Error(); strings.ContainsAny(msg, "[]_") || strings.Contains(msg, "campaign") {
			t.Errorf("%q: %q names a campaign file's keys", tt.name, msg)
		}
	}
}
