package journal

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeRecord: where decodeRecord reads a record, it reads what
// encoding/json reads; and every record batch writes, of values with
// nothing to escape, it reads.
func FuzzDecodeRecord(f *testing.F) {
	for _, s := range []string{
		`{"t":"sending","to":"a@example.org","row":3,"id":"1.abc@example.org","at":1764547200}`,
		`{"t":"sent","to":"a@example.org","row":3,"id":"x","at":-1}`,
		`{"t":"failed","to":"b@example.org","row":12,"code":550,"error":"550 5.1.1 no such user","at":1}`,
		`{"t":"open","campaign":"来自SMTP的问候","at":0}`,
		`{"t":"sent","to":"a\u003cb@example.org"}`, `{"t":"x","row":01}`, `{"t":"x","row":1e3}`,
		`{"T":"sent"}`, `{"t":"a","t":"b"}`, `{"t":"x",}`, `{}`, `{"t":null}`, `{"row":99999999999999999999}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast Record
		if decodeRecord(body, &fast) {
			var slow Record
			if err := json.Unmarshal(body, &slow); err != nil {
				t.Fatalf("decodeRecord read %q, which encoding/json refuses: %v", body, err)
			}
			if fast != slow {
				t.Fatalf("decodeRecord(%q) = %+v, encoding/json %+v", body, fast, slow)
			}
		}
		// A record made of the input's bytes, as batch writes it.
		s := string(body)
		r := Record{Kind: "sent", To: s, Row: len(s), ID: s, Code: 250, Error: s, At: int64(len(s)) - 7, Campaign: s}
		line := encodeRecord(nil, &r)
		b := line[9 : len(line)-1]
		var got Record
		ok := decodeRecord(b, &got)
		var want Record
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("encoding/json can't read what batch wrote: %v", err)
		}
		if ok && got != want {
			t.Fatalf("decodeRecord(%q) = %+v, encoding/json %+v", b, got, want)
		}
		if !ok && string(mustJSON(t, s)) == `"`+s+`"` {
			t.Fatalf("decodeRecord left a record with nothing escaped to encoding/json: %q", b)
		}
	})
}

func mustJSON(t *testing.T, s string) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkParseRecord: one line of the journal, as batch writes it.
func BenchmarkParseRecord(b *testing.B) {
	line := encodeRecord(nil, &Record{Kind: KindSent, To: "reader@example.org", Row: 1234, ID: "1764547200.1234.abcdef@example.org", At: 1764547200})
	for b.Loop() {
		if _, err := parseRecord(line); err != nil {
			b.Fatal(err)
		}
	}
}
