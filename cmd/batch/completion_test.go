package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// bashComplete loads the bash script and completes the words (the last
// one being typed) in dir, as bash does on Tab: it returns COMPREPLY.
func bashComplete(t *testing.T, bash, script, dir string, words ...string) []string {
	t.Helper()
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
	}
	prog := `source "$1" || exit 1
COMP_WORDS=(` + strings.Join(quoted, " ") + `)
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
_batch
printf '%s\n' "${COMPREPLY[@]}"`
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c", prog, "bash", script)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("completing %q: %v\n%s", words, err, stderr.String())
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if l != "" {
			got = append(got, l)
		}
	}
	slices.Sort(got)
	return got
}

func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	var script bytes.Buffer
	writeBash(&script)
	path := filepath.Join(dir, "batch.bash")
	if err := os.WriteFile(path, script.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	for _, d := range []string{"work/spring", "work/out"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"work/news.toml", "work/notes.txt", "work/spring/campaign.toml"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The script registers itself for batch.
	out, err := exec.Command(bash, "--norc", "--noprofile", "-c", `source "$1"; complete -p batch`, "bash", path).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "complete -F _batch batch" {
		t.Fatalf("complete -p batch: %v: %q", err, out)
	}

	all := []string{"--help", "--version"}
	for _, c := range commands {
		all = append(all, c.name)
	}
	slices.Sort(all)
	for _, tc := range []struct {
		words []string
		want  []string
	}{
		{[]string{"batch", ""}, all},
		{[]string{"batch", "s"}, []string{"send", "status", "suppress"}},
		{[]string{"batch", "--v"}, []string{"--version"}},
		{[]string{"batch", "send", "--d"}, []string{"--debug", "--dry-run"}},
		{[]string{"batch", "send", "--re"}, []string{"--resend-unknown", "--retry-failed"}},
		{[]string{"batch", "check", "--"}, []string{"--dns", "--help"}},
		{[]string{"batch", "status", "--"}, []string{"--failed", "--help", "--json", "--raw", "--shard"}},
		{[]string{"batch", "preview", "--"}, []string{"--help", "--listen", "--open"}},
		{[]string{"batch", "help", "--"}, []string{"--help", "--man"}},
		// The campaign file: .toml files, and directories to go into.
		{[]string{"batch", "send", ""}, []string{"news.toml", "out/", "spring/"}},
		{[]string{"batch", "check", "n"}, []string{"news.toml"}},
		{[]string{"batch", "check", "spring/"}, []string{"spring/campaign.toml"}},
		{[]string{"batch", "send", "--yes", "news.toml", "--"}, []string{"--debug", "--dry-run", "--help", "--limit", "--mbox", "--resend-unknown", "--retry-failed", "--shard", "--to", "--wait", "--yes"}},
		// A flag's value: a directory for --dry-run, nothing to offer
		// for a number or an address.
		{[]string{"batch", "send", "--dry-run", ""}, []string{"out/", "spring/"}},
		{[]string{"batch", "send", "--dry-run", "o"}, []string{"out/"}},
		{[]string{"batch", "send", "--limit", ""}, nil},
		{[]string{"batch", "preview", "--listen", ""}, nil},
		{[]string{"batch", "init", ""}, []string{"out/", "spring/"}},
		{[]string{"batch", "help", "c"}, []string{"check", "completion"}},
		{[]string{"batch", "completion", ""}, []string{"bash", "fish", "zsh"}},
		{[]string{"batch", "version", ""}, nil},
		{[]string{"batch", "bogus", ""}, nil},
	} {
		got := bashComplete(t, bash, path, work, tc.words...)
		if !slices.Equal(got, tc.want) {
			t.Errorf("completing %q: got %q, want %q", tc.words, got, tc.want)
		}
	}
}

// TestShellSyntax checks the zsh and fish scripts with the shell's own
// syntax check (zsh -n, fish -n), where the shell is installed.
func TestShellSyntax(t *testing.T) {
	for _, sh := range []struct {
		name  string
		write func(*bytes.Buffer)
	}{
		{"bash", func(b *bytes.Buffer) { writeBash(b) }},
		{"zsh", func(b *bytes.Buffer) { writeZsh(b) }},
		{"fish", func(b *bytes.Buffer) { writeFish(b) }},
	} {
		t.Run(sh.name, func(t *testing.T) {
			bin, err := exec.LookPath(sh.name)
			if err != nil {
				t.Skipf("no %s", sh.name)
			}
			var script bytes.Buffer
			sh.write(&script)
			path := filepath.Join(t.TempDir(), "batch."+sh.name)
			if err := os.WriteFile(path, script.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "-n", path).CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("%s -n: %v\n%s", sh.name, err, out)
			}
		})
	}
}
