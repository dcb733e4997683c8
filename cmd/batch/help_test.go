package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// helpOf runs batch CMD --help and returns what it printed and the flags
// the command's flag set defines.
func helpOf(t *testing.T, cmd string) (string, []string) {
	t.Helper()
	var out, errOut bytes.Buffer
	var defined []string
	c := &cli{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" },
		parsing: func(fs *flag.FlagSet) {
			fs.VisitAll(func(f *flag.Flag) { defined = append(defined, f.Name) })
		}}
	if err := c.dispatch(context.Background(), []string{cmd, "--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("batch %s --help: %v, want flag.ErrHelp (exit 0)", cmd, err)
	}
	if errOut.Len() > 0 {
		t.Errorf("batch %s --help wrote on stderr: %s", cmd, errOut.String())
	}
	slices.Sort(defined)
	return out.String(), defined
}

// flagsIn lists the --flags a text names, sorted, without repeats.
func flagsIn(text string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`(?:^|[\s\[|'"()])--([a-z][a-z-]*)`).FindAllStringSubmatch(text, -1) {
		names = append(names, m[1])
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// TestUsageMatchesFlagSets holds the table the usage, the man page and
// completion are written from to the flags each command's flag set
// defines: a flag added to one and not the other fails here.
func TestUsageMatchesFlagSets(t *testing.T) {
	var full, man, bash, zsh, fish bytes.Buffer
	writeUsage(&full)
	writeMan(&man)
	writeBash(&bash)
	writeZsh(&zsh)
	writeFish(&fish)
	manText := strings.ReplaceAll(man.String(), `\-`, "-")
	for _, cmd := range commands {
		usage, defined := helpOf(t, cmd.name)
		var table []string
		for _, f := range cmd.flags {
			table = append(table, f.name)
		}
		slices.Sort(table)
		if !slices.Equal(defined, table) {
			t.Errorf("%s: its flag set defines %q, the table of commands (help.go) lists %q", cmd.name, defined, table)
		}
		// Every flag the command's usage names is one it has, and
		// --help; every flag it has is in its usage.
		named := flagsIn(usage)
		for _, f := range named {
			if !slices.Contains(defined, f) && f != "help" && !(cmd.name == "status" && f == "shard") {
				t.Errorf("batch help %s names --%s, which is no flag of %s", cmd.name, f, cmd.name)
			}
		}
		for _, f := range defined {
			if !slices.Contains(named, f) {
				t.Errorf("batch help %s doesn't name --%s", cmd.name, f)
			}
			if !strings.Contains(full.String(), "\n    --"+f) {
				t.Errorf("batch help doesn't list --%s of %s", f, cmd.name)
			}
			if !strings.Contains(manText, "--"+f) {
				t.Errorf("the man page doesn't list --%s of %s", f, cmd.name)
			}
			if !strings.Contains(fish.String(), "__fish_seen_subcommand_from "+cmd.name+"' -l "+f+" ") {
				t.Errorf("the fish completion doesn't complete --%s of %s", f, cmd.name)
			}
		}
		// Completion offers exactly the command's flags, and --help.
		want := append(slices.Clone(defined), "help")
		slices.Sort(want)
		bashCase := regexp.MustCompile(`(?m)^    ` + cmd.name + `\)\n        flags='([^']*)'`).FindStringSubmatch(bash.String())
		if bashCase == nil || !slices.Equal(flagsIn(bashCase[1]), want) {
			t.Errorf("the bash completion of %s offers %q, want the flags %q", cmd.name, bashCase, want)
		}
		zshCase := regexp.MustCompile(`(?s)\n  \(` + cmd.name + `\)\n(.*?)\n    ;;`).FindStringSubmatch(zsh.String())
		if zshCase == nil || !slices.Equal(flagsIn(zshCase[1]), want) {
			t.Errorf("the zsh completion of %s offers %q, want the flags %q", cmd.name, zshCase, want)
		}
		for _, text := range []string{full.String(), manText, bash.String(), zsh.String(), fish.String()} {
			if !strings.Contains(text, cmd.name) {
				t.Errorf("%s is missing from one of the usage, the man page and the completions", cmd.name)
			}
		}
	}
}

// TestBriefsQuote keeps what the completion scripts put in single quotes
// (and zsh in brackets, after colons) free of what would end them.
func TestBriefsQuote(t *testing.T) {
	check := func(what, s string) {
		if s == "" || strings.ContainsAny(s, `'[]:\`) {
			t.Errorf("%s: %q: a brief is a line without ' [ ] : or \\", what, s)
		}
	}
	for _, cmd := range commands {
		check(cmd.name, cmd.brief)
		for _, f := range cmd.flags {
			check(cmd.name+" --"+f.name, f.brief)
		}
	}
}

func TestUsageWidth(t *testing.T) {
	var full bytes.Buffer
	writeUsage(&full)
	for i, line := range strings.Split(full.String(), "\n") {
		if n := len([]rune(line)); n > 80 {
			t.Errorf("usage line %d is %d columns: %q", i+1, n, line)
		}
	}
}

// TestManPage formats the man page with groff, where it is installed,
// and wants no warning.
func TestManPage(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("no groff")
	}
	var buf bytes.Buffer
	writeMan(&buf)
	man := buf.Bytes()
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = bytes.NewReader(man)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("groff -man -ww: %v\n%s", err, out)
	}
	cmd = exec.Command(groff, "-man", "-Tutf8")
	cmd.Stdin = bytes.NewReader(man)
	cmd.Env = append(os.Environ(), "GROFF_NO_SGR=1")
	text, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	// Without the overstrikes for bold, and with roff's minus signs and
	// hyphens as the dashes typed.
	plain := regexp.MustCompile(".\b").ReplaceAllString(string(text), "")
	plain = strings.NewReplacer("−", "-", "‐", "-").Replace(plain)
	for _, want := range []string{"batch send --dry-run DIR", "--resend-unknown", "SOURCE_DATE_EPOCH", "EXIT STATUS"} {
		if !strings.Contains(plain, want) {
			t.Errorf("the formatted man page has no %q:\n%s", want, plain)
		}
	}
}

// TestReadmeCommands holds the synopsis at the top of README.md's
// "Commands" section to the usage's: every command's lines, in order.
func TestReadmeCommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Commands\n\n```\n")
	if !ok {
		t.Fatal("README.md: no \"## Commands\" section opening with a ``` block")
	}
	got, _, _ := strings.Cut(section, "```\n")
	var want strings.Builder
	for _, cmd := range commands {
		for _, s := range cmd.synopsis {
			want.WriteString("batch " + s + "\n")
		}
	}
	if got != want.String() {
		t.Errorf("README.md's Commands synopsis:\n%s\nthe usage's (help.go's commands):\n%s", got, want.String())
	}
}
