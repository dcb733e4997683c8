package main

import (
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"
)

// cmdDoc is one of batch's commands as its usage, its man page and its
// shell completion describe it: the one place they all come from, so that
// they never disagree (help_test.go holds the flag sets to it).
type cmdDoc struct {
	name     string
	synopsis []string // the usage lines after "batch "
	brief    string   // a line, for a list of commands
	about    string   // what it does; wrapped, but for lines indented 4 spaces
	flags    []flagDoc
	args     argKind // what its arguments are, for completion
}

// flagDoc is a flag of a command.
type flagDoc struct {
	name  string  // without the dashes: "dry-run"
	arg   string  // the value's name, "DIR"; "" for a switch
	brief string  // a line, for completion's descriptions
	help  string  // what it does, wrapped at 56 columns
	value argKind // what the value is, for completion
}

// argKind is what a command's arguments or a flag's value are.
type argKind int

const (
	argNone     argKind = iota
	argCampaign         // a campaign file, *.toml
	argDir              // a directory
	argCommand          // one of the commands
	argShell            // bash, zsh or fish
	argWord             // something to type: no completion
)

// shells are those batch completion writes a script for.
var shells = []string{"bash", "zsh", "fish"}

// commands is every command, in the order the usage lists them.
var commands = []cmdDoc{
	{
		name: "send",
		synopsis: []string{
			"send [--yes] [--limit N] [--to ADDR] [--debug] [--shard K/N]\n           [--retry-failed] [--resend-unknown] [--wait] CAMPAIGN.toml",
			"send --dry-run DIR [--limit N] [--shard K/N] CAMPAIGN.toml",
			"send --mbox FILE [--limit N] [--shard K/N] CAMPAIGN.toml",
		},
		brief: "check the campaign, then deliver it over SMTP or write .eml files",
		about: `Check the whole campaign, then render every recipient's message
and deliver it over SMTP as the campaign's [smtp] table says.
On a terminal batch first says what it is about to do and asks.
Every outcome goes to a journal in .batch/ beside the campaign
file: run send again after a crash or Ctrl-C and it resumes,
skipping everyone already sent.`,
		args: argCampaign,
		flags: []flagDoc{
			{name: "dry-run", arg: "DIR", value: argDir, brief: "write one .eml file per recipient into DIR instead of sending",
				help: "write one .eml file per recipient into DIR (created if\nmissing) instead of sending; nothing touches the network"},
			{name: "mbox", arg: "FILE", value: argWord, brief: "write the messages into one mbox file instead of sending",
				help: "the same, into one mbox file (mboxrd, LF line ends)\nthat mutt, neomutt and aerc open as a folder"},
			{name: "yes", brief: "send without asking",
				help: "send without asking (needed when not on a terminal)"},
			{name: "limit", arg: "N", value: argWord, brief: "send to the first N recipients not yet sent",
				help: "send to the first N recipients not yet sent"},
			{name: "to", arg: "ADDR", value: argWord, brief: "test send, every message to ADDR instead of its recipient",
				help: "test send: every message goes to ADDR instead of its\nrecipient, its headers unchanged but for a Message-ID\nof its own; not recorded"},
			{name: "debug", brief: "print the SMTP dialogue on stderr",
				help: "print the SMTP dialogue on stderr, secrets hidden"},
			{name: "retry-failed", brief: "also send to recipients that failed for good before",
				help: "also send to recipients that failed for good before"},
			{name: "resend-unknown", brief: "also send to recipients whose outcome is unknown",
				help: "also send to recipients whose outcome is unknown (the\nrun died between handing the message over and the\nserver's reply): they may get it twice"},
			{name: "wait", brief: "when the quota is spent, wait for it to reopen",
				help: "when [smtp] quota is spent, wait until its window\nreopens and go on, instead of stopping with exit\nstatus 4"},
			{name: "shard", arg: "K/N", value: argWord, brief: "send to part K of N of the list",
				help: "send to part K of N of the list, split by a stable\nhash of the address, with a journal of its own: N\nmachines or accounts, one shard each, cover the list\nexactly once"},
		},
	},
	{
		name:     "check",
		synopsis: []string{"check [--dns] CAMPAIGN.toml"},
		brief:    "render every message in memory and list every problem",
		about: `Render every message in memory and list every problem:
campaign file, templates, missing files, invalid rows. With
--dns, then look up the sending domains' DNS records.`,
		args: argCampaign,
		flags: []flagDoc{
			{name: "dns", brief: "also check the SPF, DKIM, DMARC and MX records of the sending domains",
				help: "once the campaign is ready, look up SPF, DKIM, DMARC\nand MX of the From and sender domains, and their\nalignment; say what to publish, and, past 5,000\nmessages, which bulk-sender rules aren't met; exit 1\nif a record is missing or wrong; the DNS server asked\nis /etc/resolv.conf's, or BATCH_RESOLVER (host:port)"},
		},
	},
	{
		name:     "status",
		synopsis: []string{"status [--json | --failed [--raw]] [--shard K/N] CAMPAIGN.toml"},
		brief:    "count the recipients sent, failed, unknown and pending",
		about: `Count the recipients in each state: sent, failed, unknown,
pending. With --failed, print the failed rows as CSV (the list's
columns and the server's reply in "error"), ready to fix; a
cell a spreadsheet would run (=, +, -, @ first) gets a ' in
front, unless --raw.`,
		args: argCampaign,
		flags: []flagDoc{
			{name: "json", brief: "print the counts as a JSON object",
				help: "print the counts as a JSON object"},
			{name: "failed", brief: "print the failed rows as CSV",
				help: "print the failed rows as CSV, with the server's reply"},
			{name: "raw", brief: "with --failed, write every cell as it is",
				help: "with --failed, write every cell as it is, for a\nprogram rather than a spreadsheet"},
			{name: "shard", arg: "K/N", value: argWord, brief: "the state of part K of N of the list",
				help: "the state of part K of N of the list, as sent by\nsend --shard K/N"},
		},
	},
	{
		name: "suppress",
		synopsis: []string{
			"suppress add [--reason R] CAMPAIGN.toml ADDRESS...",
			"suppress remove CAMPAIGN.toml ADDRESS...",
			"suppress list CAMPAIGN.toml",
		},
		brief: "add to, remove from or list the suppression list of the campaign",
		about: `Edit the suppression list the campaign's suppress key names:
the addresses check and send skip. add appends each ADDRESS
not on it yet, with the reason manual (or R: unsubscribed,
bounced, complained) and the time, creating the file;
remove drops every line of each ADDRESS, and its soft
bounces (the list's .soft.csv), so that they count from none
again; list prints the list as CSV, a cell a spreadsheet
would run made text.`,
		args: argCampaign,
		flags: []flagDoc{
			{name: "reason", arg: "R", value: argWord, brief: "with add, the reason, manual (the default), unsubscribed, bounced or complained",
				help: "with add, why the addresses are suppressed: manual\n(the default), unsubscribed, bounced or complained"},
		},
	},
	{
		name:     "bounces",
		synopsis: []string{"bounces --maildir DIR | --mbox FILE | --imap [--dry-run] CAMPAIGN.toml"},
		brief:    "read a bounce mailbox and suppress its hard bounces, complaints and unsubscribes",
		about: `Read the bounce mailbox, a Maildir (new/ and cur/), an mbox or
the campaign's [bounces] IMAP mailbox, and match each message
to the campaign's recipients by their Message-IDs: hard bounces
are added to the suppression list as bounced, complaints as
complained, mails to the unsubscribe mailto as unsubscribed.
Soft bounces are recorded beside the list (suppressed.soft.csv
for suppressed.csv), once per address and campaign, and an
address with soft bounces of [bounces] soft_limit campaigns
(3) is suppressed as bounced. Every other message is left
alone and listed with why. A Maildir or an mbox is only read, never
changed; over IMAP the handled messages are then moved to
[bounces] move_to, or flagged \Seen without it, and those left
alone are not touched.`,
		args: argCampaign,
		flags: []flagDoc{
			{name: "maildir", arg: "DIR", value: argDir, brief: "read the Maildir DIR",
				help: "read the messages of the Maildir DIR (new/ and cur/,\nnever tmp/)"},
			{name: "mbox", arg: "FILE", value: argWord, brief: "read the mbox FILE",
				help: "read the messages of the mbox FILE (mboxo or mboxrd)"},
			{name: "imap", brief: "read the IMAP bounce mailbox the campaign file names",
				help: "read the IMAP mailbox the campaign's [bounces] imap\nnames, and file the handled messages"},
			{name: "dry-run", brief: "say what would be counted and suppressed, change nothing",
				help: "say what would be counted and suppressed, and change\nnothing"},
		},
	},
	{
		name:     "preview",
		synopsis: []string{"preview [--listen ADDR] [--open] CAMPAIGN.toml"},
		brief:    "serve the campaign as its readers will see it, on this machine",
		about: `Serve the campaign as its readers will see it, on this
machine only: every row's message (headers, HTML at desktop
and phone width, text, attachments), the body's shapes, one
for each combination of {{if}} branches, and check's
problems. Pages reload when a file of the campaign changes.
Nothing is sent.`,
		args: argCampaign,
		flags: []flagDoc{
			{name: "listen", arg: "ADDR", value: argWord, brief: "listen on ADDR, by default a free port on the loopback",
				help: "listen on ADDR (default 127.0.0.1:0, a free port on\nthis machine's loopback); another address warns that\nwhoever can reach it can read the list"},
			{name: "open", brief: "open the preview in the default browser",
				help: "open the preview in the default browser"},
		},
	},
	{
		name:     "unsubscribe-server",
		synopsis: []string{"unsubscribe-server [--listen ADDR] CAMPAIGN.toml"},
		brief:    "answer the one-click unsubscribe links, adding to the suppression list",
		about: `Answer the unsubscribe links of a campaign whose
[unsubscribe] table has token = true: a POST of
List-Unsubscribe=One-Click (RFC 8058, what mail clients
send) with a valid token adds its address to the
suppression list as unsubscribed; a GET shows a page whose
button does the same, as a GET alone never unsubscribes. A
token that is not valid gets 400 and adds nothing. It reads
the secret as send does and serves plain HTTP: put it
behind an HTTPS reverse proxy (see README.md).`,
		args: argCampaign,
		flags: []flagDoc{
			{name: "listen", arg: "ADDR", value: argWord, brief: "listen on ADDR, by default port 8089 of the loopback",
				help: "listen on ADDR (default 127.0.0.1:8089, this\nmachine's loopback, where the reverse proxy forwards to;\nport 0 for a free one, printed)"},
		},
	},
	{
		name:     "login",
		synopsis: []string{"login [--provider google|microsoft|custom] CAMPAIGN.toml"},
		brief:    "sign in to the SMTP account with OAuth2 and keep the token for send",
		about: `Sign in to the [smtp] username's account with OAuth2's device
flow, for a campaign with auth = "xoauth2" or "oauthbearer"
and no token_cmd: batch prints a URL and a code on stderr,
to open and enter in any browser (this machine needs none),
and waits until you have signed in or the code expires. The
token is kept in the user's config directory
(batch/tokens/PROVIDER-ACCOUNT.json, readable by the user
alone), never beside the campaign; send refreshes it. The
provider, client ID and secret come from [smtp.oauth].`,
		args: argCampaign,
		flags: []flagDoc{
			{name: "provider", arg: "NAME", value: argWord, brief: "the OAuth2 provider, google, microsoft or custom",
				help: "google, microsoft or custom ([smtp.oauth]'s endpoints);\nby default [smtp.oauth] provider, or the host's"},
		},
	},
	{
		name:     "init",
		synopsis: []string{"init [DIR]"},
		brief:    "write a small working campaign to start from",
		about: `Write a small campaign that works into DIR (default: the
current directory): campaign.toml with every key explained,
recipients.csv, newsletter.md with an image, files/ and a
.gitignore. It overwrites nothing: if any of them exists,
it writes none.`,
		args: argDir,
	},
	{
		name:     "version",
		synopsis: []string{"version"},
		brief:    "print the version, the revision built from and the Go version",
		about: `Print batch's module version, the revision it was built from
(and whether the tree had changes), and the Go version.`,
	},
	{
		name:     "help",
		synopsis: []string{"help [--man] [COMMAND]"},
		brief:    "print the usage, or that of one command",
		about: `Print the usage of batch, or of COMMAND alone. batch COMMAND
--help does the same.`,
		args: argCommand,
		flags: []flagDoc{
			{name: "man", brief: "print the manual page (roff) instead",
				help: "print the manual page, in roff: pipe it to man -l -"},
		},
	},
	{
		name:     "completion",
		synopsis: []string{"completion bash|zsh|fish"},
		brief:    "print a script that completes batch commands in bash, zsh or fish",
		about: `Print a script that completes batch's commands, their flags
and campaign files in bash, zsh or fish. Load it from the
shell's startup file:
    bash: source <(batch completion bash)
    zsh:  source <(batch completion zsh)   (after compinit)
    fish: batch completion fish | source`,
		args: argShell,
	},
}

// trailer ends the full usage.
const trailer = `Flags may come before or after the campaign file. With SOURCE_DATE_EPOCH
set (seconds since 1970), every message carries that Date, and two dry
runs of the same campaign write identical files.

Ctrl-C (or SIGTERM) stops taking new messages, lets the ones in flight
finish, and records everything; a second Ctrl-C quits at once. It is also
how a preview and an unsubscribe server end, with exit status 0.

Exit status: 0 on success (every recipient sent); 1 when the campaign has
problems, a run fails or check --dns finds a DNS record missing or wrong; 2
for a usage error; 3 when some recipients failed or their outcome is unknown
(the others were sent); 4 when [smtp] quota is spent, nothing failed (run
send again once its window reopens, or with --wait); 130 when interrupted.
`

// lookup returns the command called name, or nil.
func lookup(name string) *cmdDoc {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

// commandNames lists the commands: "send, check, …".
func commandNames() string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// flag returns the flag of cmd called name, or nil.
func (cmd *cmdDoc) flag(name string) *flagDoc {
	for i := range cmd.flags {
		if cmd.flags[i].name == name {
			return &cmd.flags[i]
		}
	}
	return nil
}

// spelled is the flag as the usage spells it: "--dry-run DIR".
func (f *flagDoc) spelled() string {
	if f.arg == "" {
		return "--" + f.name
	}
	return "--" + f.name + " " + f.arg
}

// lineWidth is the width the usage is wrapped to.
const lineWidth = 78

// wrap breaks text into lines of at most width columns, at spaces; a line
// of text indented 4 spaces is kept as it is, on a line of its own.
func wrap(text string, width int) []string {
	var lines []string
	var cur string
	flush := func() {
		if cur != "" {
			lines = append(lines, cur)
			cur = ""
		}
	}
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "    ") {
			flush()
			lines = append(lines, l)
			continue
		}
		for _, word := range strings.Fields(l) {
			switch {
			case cur == "":
				cur = word
			case utf8.RuneCountInString(cur)+1+utf8.RuneCountInString(word) > width:
				flush()
				cur = word
			default:
				cur += " " + word
			}
		}
	}
	flush()
	return lines
}

// writeUsage writes the usage of every command.
func writeUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage:")
	for _, cmd := range commands {
		writeSynopsis(w, &cmd)
	}
	fmt.Fprintln(w, "\nCommands:")
	for _, cmd := range commands {
		if len(cmd.name) > 11 { // too long for the column: a line of its own
			fmt.Fprintf(w, "    %s\n", cmd.name)
		}
		for i, line := range wrap(cmd.about, lineWidth-16) {
			if i == 0 && len(cmd.name) <= 11 {
				fmt.Fprintf(w, "    %-11s %s\n", cmd.name, line)
			} else {
				fmt.Fprintf(w, "                %s\n", line)
			}
		}
	}
	for _, cmd := range commands {
		if len(cmd.flags) > 0 {
			fmt.Fprintf(w, "\nFlags of %s:\n", cmd.name)
			writeFlags(w, &cmd)
		}
	}
	fmt.Fprintf(w, "\n%s", trailer)
}

// writeCommandUsage writes the usage of cmd alone.
func writeCommandUsage(w io.Writer, cmd *cmdDoc) {
	fmt.Fprintln(w, "Usage:")
	writeSynopsis(w, cmd)
	fmt.Fprintf(w, "\n%s\n", strings.Join(wrap(cmd.about, lineWidth), "\n"))
	if len(cmd.flags) > 0 {
		fmt.Fprintln(w, "\nFlags:")
		writeFlags(w, cmd)
	}
	fmt.Fprintln(w, "\nRun 'batch help' for every command, and README.md for more.")
}

func writeSynopsis(w io.Writer, cmd *cmdDoc) {
	for _, s := range cmd.synopsis {
		fmt.Fprintf(w, "    batch %s\n", s)
	}
}

func writeFlags(w io.Writer, cmd *cmdDoc) {
	for _, f := range cmd.flags {
		for i, line := range strings.Split(f.help, "\n") {
			if i == 0 {
				fmt.Fprintf(w, "    %-17s %s\n", f.spelled(), line)
			} else {
				fmt.Fprintf(w, "    %-17s %s\n", "", line)
			}
		}
	}
}

// help is batch help [--man] [COMMAND].
func (c *cli) help(args []string) error {
	fs := c.flags("help")
	man := fs.Bool("man", false, "")
	names, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(names) > 1:
		return usageError{fmt.Sprintf("help: one command expected, got %d", len(names))}
	case *man && len(names) > 0:
		return usageError{"help: --man prints the whole manual: give no command"}
	case *man:
		writeMan(c.stdout)
	case len(names) == 0:
		writeUsage(c.stdout)
	default:
		cmd := lookup(names[0])
		if cmd == nil {
			return unknownCommand(names[0])
		}
		writeCommandUsage(c.stdout, cmd)
	}
	return nil
}

// unknownCommand is the usage error for a command batch doesn't have.
func unknownCommand(name string) error {
	return usageError{fmt.Sprintf("unknown command %q\nthe commands are: %s", name, commandNames())}
}

// writeMan writes batch(1) in roff, from the same table as the usage.
func writeMan(w io.Writer) {
	fmt.Fprint(w, `.TH BATCH 1 "" "batch" "User Commands"
.SH NAME
batch \- send a newsletter campaign from the command line
.SH SYNOPSIS
.nf
`)
	for _, cmd := range commands {
		for _, s := range cmd.synopsis {
			for i, line := range strings.Split(s, "\n") {
				if i == 0 {
					fmt.Fprintf(w, "\\fBbatch\\fR %s\n", roff(line, true))
				} else {
					fmt.Fprintf(w, "%s\n", roff(line, true))
				}
			}
		}
	}
	fmt.Fprint(w, `.fi
.SH DESCRIPTION
A campaign is a few plain files kept in git: a TOML file that names a CSV
list of recipients and a Markdown template.
For every recipient,
.B batch
merges the row into the template, renders it into an HTML body and a
plain-text alternative, embeds the images the template uses, and writes the
message as an .eml file (a dry run) or delivers it over SMTP.
`)
	// The trailer's first paragraph says where flags go, then what
	// SOURCE_DATE_EPOCH does: one for the description, one for the
	// environment.
	flagsPlace, sourceDate, _ := strings.Cut(trailerPart(0), " With ")
	sourceDate = "With " + sourceDate
	fmt.Fprintf(w, "%s\n.SH COMMANDS\n", roff(flagsPlace, false))
	for _, cmd := range commands {
		fmt.Fprintf(w, ".TP\n.B %s\n%s\n", cmd.name, roff(strings.Join(strings.Fields(cmd.about), " "), false))
		for _, f := range cmd.flags {
			flag := strings.ReplaceAll("--"+f.name, "-", `\-`)
			if f.arg != "" {
				fmt.Fprintf(w, ".RS\n.TP\n.BI \"%s \" %s\n", flag, roff(f.arg, true))
			} else {
				fmt.Fprintf(w, ".RS\n.TP\n.B %s\n", flag)
			}
			fmt.Fprintf(w, "%s\n.RE\n", roff(strings.Join(strings.Fields(f.help), " "), false))
		}
	}
	fmt.Fprintf(w, ".SH ENVIRONMENT\n.TP\n.B SOURCE_DATE_EPOCH\n%s\n", roff(sourceDate, false))
	fmt.Fprintf(w, ".TP\n.B BATCH_RESOLVER\n%s\n", roff("The DNS server (host:port) batch check --dns asks, instead of those of /etc/resolv.conf.", false))
	fmt.Fprintf(w, ".SH EXIT STATUS\n%s\n", roff(strings.TrimPrefix(trailerPart(2), "Exit status: "), false))
	fmt.Fprint(w, `.SH SEE ALSO
README.md in batch's repository: the campaign file, the list, the
templates and the messages.
`)
}

// trailerPart is paragraph i of the usage's trailer on one line, for the
// manual page, which says the same.
func trailerPart(i int) string {
	return strings.Join(strings.Fields(strings.Split(trailer, "\n\n")[i]), " ")
}

// roff escapes text for a roff line: backslashes, hyphens as minus signs
// where they begin a flag, and a leading dot or quote; in a synopsis
// (literal), every hyphen.
func roff(s string, literal bool) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	if literal {
		s = strings.ReplaceAll(s, "-", `\-`)
	} else {
		s = strings.ReplaceAll(s, "--", `\-\-`)
	}
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// flagError is a flag package error in the words of batch's usage: flags
// spelled as the usage spells them (--limit, not -limit), and what to give.
type flagError struct {
	msg string
	err error // the flag package's
}

func (e *flagError) Error() string { return e.msg }
func (e *flagError) Unwrap() error { return e.err }

// The flag package's errors, which have no type of their own.
var (
	flagUndefined = regexp.MustCompile(`^flag provided but not defined: -(.*)$`)
	flagNoValue   = regexp.MustCompile(`^flag needs an argument: -(.*)$`)
	flagBadValue  = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-([^:]*): `)
)

// newFlagError rewords err, from parsing the flags of fs.
func newFlagError(fs *flag.FlagSet, err error) error {
	cmd := fs.Name()
	msg := fmt.Sprintf("%s: %v", cmd, err)
	if m := flagUndefined.FindStringSubmatch(err.Error()); m != nil {
		msg = fmt.Sprintf("%s: --%s is not a flag of %s", cmd, m[1], cmd)
		var in []string
		for _, other := range commands {
			if other.flag(m[1]) != nil {
				in = append(in, other.name)
			}
		}
		if len(in) > 0 {
			msg += fmt.Sprintf(" (it is one of batch %s)", strings.Join(in, ", batch "))
		}
	} else if m := flagNoValue.FindStringSubmatch(err.Error()); m != nil {
		msg = fmt.Sprintf("%s: --%s needs a value", cmd, m[1])
		if c := lookup(cmd); c != nil && c.flag(m[1]) != nil {
			msg += fmt.Sprintf(": %s", c.flag(m[1]).spelled())
		}
	} else if m := flagBadValue.FindStringSubmatch(err.Error()); m != nil {
		msg = fmt.Sprintf("%s: --%s %q: ", cmd, m[2], m[1])
		if f := fs.Lookup(m[2]); f != nil {
			switch f.Value.(flag.Getter).Get().(type) {
			case bool:
				msg = fmt.Sprintf("%s: --%s=%s: --%s takes no value, or true or false", cmd, m[2], m[1], m[2])
			case int:
				msg += "want a whole number"
			default:
				msg += err.Error()[len(m[0]):]
			}
		}
	}
	return &flagError{msg: msg, err: err}
}
