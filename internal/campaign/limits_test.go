package campaign

import "testing"

func TestParseSize(t *testing.T) {
	for text, want := range map[string]int64{
		"64KiB": 64 << 10, "1 MiB": 1 << 20, "25MB": 25_000_000, "1000": 1000, "2GiB": 2 << 30, "10B": 10,
	} {
		if got, err := parseSize(text); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", text, got, err, want)
		}
	}
	for _, text := range []string{"", "x", "-1", "0", "1.5MB", "12 parsecs", "99999999999GB"} {
		if n, err := parseSize(text); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", text, n)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{
		64 << 10: "64 KiB", 1 << 20: "1 MiB", 25_000_000: "25 MB", 1500: "1.5 KB", 12: "12 bytes", 31_457_280: "30 MiB",
	} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
