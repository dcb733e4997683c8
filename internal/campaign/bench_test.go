package campaign

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/deliver"
)

// BenchmarkDryRun writes a campaign of 2,000 recipients as .eml files, the
// whole pipeline: read, merge, render on every core, write.
func BenchmarkDryRun(b *testing.B) {
	c, dir := benchCampaign(b, "")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := filepath.Join(dir, fmt.Sprintf("out%d", i))
		_, err := c.Send(context.Background(), func(*Summary) (deliver.Sender, error) { return deliver.NewDir(out), nil },
			Options{Now: now, SinglePass: true})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(2000*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkCheck checks the same campaign, with a preheader that the
// built-in layout shows: every row merged and rendered in memory (render's
// Check), nothing written, what a send does before its first message.
func BenchmarkCheck(b *testing.B) {
	c, _ := benchCampaign(b, "preheader = \"Seats for {{.name}}\"\n")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sum, err := c.Check(context.Background(), Options{Now: now})
		if err != nil {
			b.Fatal(err)
		}
		if sum.Messages != 2000 {
			b.Fatalf("checked %d messages, want 2000", sum.Messages)
		}
	}
	b.ReportMetric(float64(2000*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// benchCampaign loads the benchmarks' campaign: 2,000 recipients, a
// Markdown body with four fields, a list, a link and an image, the
// built-in layout, and extra at the end of its campaign file. dir holds
// its files.
func benchCampaign(b *testing.B, extra string) (c *Campaign, dir string) {
	b.Helper()
	dir = b.TempDir()
	var list strings.Builder
	list.WriteString("email,name,city,plan\n")
	for i := range 2000 {
		name := fmt.Sprintf("User %d", i)
		if i%3 == 0 {
			name = "张伟"
		}
		fmt.Fprintf(&list, "user%d@example.com,%s,Paris,pro\n", i, name)
	}
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write("list.csv", list.String())
	write("logo.png", strings.Repeat("\x89PNG", 5000))
	write("news.md", "![logo](logo.png)\n\n# Hello {{.name}}\n\nSee you in {{.city}} on the {{.plan}} plan.\n\n- one\n- two\n\n[Link](https://example.org/?e={{.email}})\n")
	write("c.toml", minimal+extra)
	c, err := Load(filepath.Join(dir, "c.toml"))
	if err != nil {
		b.Fatal(err)
	}
	return c, dir
}
