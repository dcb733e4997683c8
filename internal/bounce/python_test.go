package bounce

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/merge"
)

// inspected is what testdata/reportinspect.py reports of one message:
// Python's email package reading it, an independent parser.
type inspected struct {
	File     string              `json:"file"`
	Defects  []string            `json:"defects"`
	Blocks   []map[string]string `json:"blocks"`
	Feedback *struct {
		Type string   `json:"type"`
		Rcpt []string `json:"rcpt"`
	} `json:"feedback"`
	OriginalID string `json:"original_id"`
}

// The corpus is well-formed for Python's email package, and Classify reads
// from each report the recipients, kinds, codes and Message-ID that
// Python's reading of its parts gives by the rules of RFC 3464 and 5965.
func TestCorpusWithPython(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3")
	}
	files, _ := filepath.Glob("testdata/*.eml")
	out, err := exec.Command("python3", append([]string{"testdata/reportinspect.py"}, files...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	var all []inspected
	if err := json.Unmarshal(out, &all); err != nil {
		t.Fatal(err)
	}
	if len(all) != len(files) {
		t.Fatalf("python read %d files of %d", len(all), len(files))
	}
	for _, py := range all {
		name := filepath.Base(py.File)
		if name != "not-a-message.eml" && len(py.Defects) > 0 {
			t.Errorf("%s: python finds defects %v", name, py.Defects)
		}
		data, _ := os.ReadFile(py.File)
		v, err := Classify(bytes.NewReader(data), Options{Unsubscribe: unsubMailbox})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, b := range py.Blocks {
			action, status := strings.ToLower(b["Action"]), b["Status"]
			kind := ""
			switch {
			case action == "failed" && strings.HasPrefix(status, "5."):
				kind = "hard"
			case action == "failed" || action == "delayed":
				kind = "soft"
			default:
				continue
			}
			addr := pyAddress(b["Original-Recipient"])
			if addr == "" {
				addr = pyAddress(b["Final-Recipient"])
			}
			if addr != "" {
				want = append(want, addr+" "+kind+" "+status)
			}
		}
		if fb := py.Feedback; fb != nil && fb.Type == "abuse" {
			for _, r := range fb.Rcpt {
				want = append(want, strings.Trim(r, "<>")+" complaint ")
			}
		}
		var got []string
		for _, r := range v.Recipients {
			if r.Kind != Unsubscribe {
				got = append(got, r.Address+" "+strings.Fields(r.Kind.String())[0]+" "+r.Status)
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: batch reads\n%s\npython's parts give\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if py.OriginalID != "" && v.MessageID != py.OriginalID {
			t.Errorf("%s: Message-ID %q, python reads the original's as %q", name, v.MessageID, py.OriginalID)
		}
	}
}

// pyAddress returns the address of "rfc822; addr" when batch could send to it.
func pyAddress(field string) string {
	kind, addr, ok := strings.Cut(field, ";")
	if !ok || !strings.EqualFold(strings.TrimSpace(kind), "rfc822") {
		return ""
	}
	addr = strings.Trim(strings.TrimSpace(addr), "<>")
	if merge.CheckAddress(addr) != nil {
		return ""
	}
	return addr
}
