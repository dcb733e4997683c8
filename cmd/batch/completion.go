package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// completion is batch completion bash|zsh|fish: a script that completes
// the commands, each command's flags and its arguments, from the table
// the usage is written from.
func (c *cli) completion(args []string) error {
	rest, err := c.parseArgs(c.flags("completion"), args)
	if err != nil {
		return err
	}
	if len(rest) != 1 || !slices.Contains(shells, rest[0]) {
		return usageError{fmt.Sprintf("completion: name a shell: %s", strings.Join(shells, ", "))}
	}
	switch rest[0] {
	case "bash":
		writeBash(c.stdout)
	case "zsh":
		writeZsh(c.stdout)
	case "fish":
		writeFish(c.stdout)
	}
	return nil
}

// topFlags are batch's own flags, before a command.
var topFlags = []flagDoc{
	{name: "help", brief: "print the usage"},
	{name: "version", brief: "print the version"},
}

// commandWords is the commands, separated by spaces.
func commandWords() string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return strings.Join(names, " ")
}

// flagWords is the flags of cmd, and --help, as typed.
func flagWords(cmd *cmdDoc) string {
	var words []string
	for _, f := range cmd.flags {
		words = append(words, "--"+f.name)
	}
	return strings.Join(append(words, "--help"), " ")
}

func writeBash(w io.Writer) {
	fmt.Fprintf(w, `# bash completion for batch; load it with: source <(batch completion bash)
_batch_campaigns() {
    local IFS=$'\n'
    COMPREPLY=($(compgen -f -X '!*.toml' -- "$cur") $(compgen -d -S / -- "$cur"))
    compopt -o filenames -o nospace 2>/dev/null
}
_batch_dirs() {
    local IFS=$'\n'
    COMPREPLY=($(compgen -d -S / -- "$cur"))
    compopt -o filenames -o nospace 2>/dev/null
}
_batch() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    if (( COMP_CWORD == 1 )); then
        COMPREPLY=($(compgen -W '%s --help --version' -- "$cur"))
        return
    fi
    local flags= args=
    case ${COMP_WORDS[1]} in
`, commandWords())
	for _, cmd := range commands {
		fmt.Fprintf(w, "    %s)\n        flags='%s' args=%s\n", cmd.name, flagWords(&cmd), argName(cmd.args))
		var dirs, words []string
		for _, f := range cmd.flags {
			switch f.value {
			case argDir:
				dirs = append(dirs, "--"+f.name)
			case argWord:
				words = append(words, "--"+f.name)
			}
		}
		if len(dirs)+len(words) > 0 {
			fmt.Fprintf(w, "        case $prev in\n")
			if len(dirs) > 0 {
				fmt.Fprintf(w, "        %s) _batch_dirs; return;;\n", strings.Join(dirs, "|"))
			}
			if len(words) > 0 {
				fmt.Fprintf(w, "        %s) COMPREPLY=(); return;;\n", strings.Join(words, "|"))
			}
			fmt.Fprintf(w, "        esac\n")
		}
		fmt.Fprintf(w, "        ;;\n")
	}
	fmt.Fprintf(w, `    *) return;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
        return
    fi
    case $args in
    campaign) _batch_campaigns;;
    dir) _batch_dirs;;
    command) COMPREPLY=($(compgen -W '%s' -- "$cur"));;
    shell) COMPREPLY=($(compgen -W '%s' -- "$cur"));;
    esac
}
complete -F _batch batch
`, commandWords(), strings.Join(shells, " "))
}

// argName is the name the bash script gives an argKind.
func argName(k argKind) string {
	switch k {
	case argCampaign:
		return "campaign"
	case argDir:
		return "dir"
	case argCommand:
		return "command"
	case argShell:
		return "shell"
	}
	return "none"
}

func writeZsh(w io.Writer) {
	fmt.Fprint(w, `#compdef batch
# zsh completion for batch; load it with: source <(batch completion zsh)
# (after compinit), or save it as _batch in a directory of $fpath
_batch() {
  if (( CURRENT == 2 )); then
    local -a cmds
    cmds=(
`)
	for _, cmd := range commands {
		fmt.Fprintf(w, "      '%s:%s'\n", cmd.name, cmd.brief)
	}
	fmt.Fprint(w, `    )
    _describe -t commands 'batch command' cmds
    compadd -- --help --version
    return
  fi
  local cmd=$words[2]
  shift words
  (( CURRENT-- ))
  case $cmd in
`)
	for _, cmd := range commands {
		fmt.Fprintf(w, "  (%s)\n    _arguments -s \\\n", cmd.name)
		for _, f := range cmd.flags {
			spec := fmt.Sprintf("--%s[%s]", f.name, f.brief)
			switch f.value {
			case argDir:
				spec += fmt.Sprintf(":%s:_files -/", f.arg)
			case argWord:
				spec += fmt.Sprintf(":%s: ", f.arg)
			}
			fmt.Fprintf(w, "      '%s' \\\n", spec)
		}
		fmt.Fprintf(w, "      '(- *)--help[print the usage of %s]'", cmd.name)
		switch cmd.args {
		case argCampaign:
			fmt.Fprint(w, " \\\n      '1:campaign file:_files -g \"*.toml(-.)\"'")
		case argDir:
			fmt.Fprint(w, " \\\n      '1:directory:_files -/'")
		case argCommand:
			fmt.Fprintf(w, " \\\n      '1:command:(%s)'", commandWords())
		case argShell:
			fmt.Fprintf(w, " \\\n      '1:shell:(%s)'", strings.Join(shells, " "))
		}
		fmt.Fprint(w, "\n    ;;\n")
	}
	fmt.Fprint(w, `  esac
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _batch "$@"
else
  compdef _batch batch
fi
`)
}

func writeFish(w io.Writer) {
	fmt.Fprint(w, "# fish completion for batch; load it with: batch completion fish | source\ncomplete -c batch -f\n")
	for _, cmd := range commands {
		fmt.Fprintf(w, "complete -c batch -n __fish_use_subcommand -a %s -d '%s'\n", cmd.name, cmd.brief)
	}
	for _, f := range topFlags {
		fmt.Fprintf(w, "complete -c batch -n __fish_use_subcommand -l %s -d '%s'\n", f.name, f.brief)
	}
	for _, cmd := range commands {
		cond := fmt.Sprintf("-n '__fish_seen_subcommand_from %s'", cmd.name)
		for _, f := range cmd.flags {
			value := ""
			switch f.value {
			case argDir:
				value = " -r -a '(__fish_complete_directories)'"
			case argWord:
				value = " -x"
			}
			fmt.Fprintf(w, "complete -c batch %s -l %s%s -d '%s'\n", cond, f.name, value, f.brief)
		}
		fmt.Fprintf(w, "complete -c batch %s -l help -d 'print the usage of %s'\n", cond, cmd.name)
		switch cmd.args {
		case argCampaign:
			fmt.Fprintf(w, "complete -c batch %s -k -a '(__fish_complete_suffix .toml)'\n", cond)
		case argDir:
			fmt.Fprintf(w, "complete -c batch %s -a '(__fish_complete_directories)'\n", cond)
		case argCommand:
			fmt.Fprintf(w, "complete -c batch %s -x -a '%s'\n", cond, commandWords())
		case argShell:
			fmt.Fprintf(w, "complete -c batch %s -x -a '%s'\n", cond, strings.Join(shells, " "))
		}
	}
}
