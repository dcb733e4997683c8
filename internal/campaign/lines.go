package campaign

import (
	"strings"
)

// keyLines maps each key of a TOML document ("name", "headers.X-Tag") to the
// line that defines it. BurntSushi/toml keeps key positions to itself, so
// this reads the lines: table headers, key = value lines (bare, quoted and
// dotted keys), skipping multi-line strings and arrays' continuation lines.
func keyLines(doc string) map[string]int {
	out := map[string]int{}
	table := ""
	inString := "" // the delimiter of an open multi-line string
	for i, line := range strings.Split(doc, "\n") {
		n := i + 1
		s := strings.TrimSpace(line)
		if inString != "" {
			if strings.Contains(s, inString) {
				inString = ""
			}
			continue
		}
		if s == "" || s[0] == '#' {
			continue
		}
		if s[0] == '[' {
			name := strings.Trim(strings.SplitN(s, "]", 2)[0], "[ ")
			if strings.HasPrefix(s, "[[") {
				name = strings.Trim(strings.SplitN(s, "]]", 2)[0], "[ ")
			}
			table = joinKey(splitKey(name))
			if _, ok := out[table]; !ok {
				out[table] = n
			}
			continue
		}
		eq := keyEnd(s)
		if eq < 0 {
			continue
		}
		key := joinKey(splitKey(s[:eq]))
		if table != "" {
			key = table + "." + key
		}
		if _, ok := out[key]; !ok {
			out[key] = n
		}
		value := strings.TrimSpace(s[eq+1:])
		for _, d := range []string{`"""`, `'''`} {
			if strings.HasPrefix(value, d) && !strings.Contains(value[3:], d) {
				inString = d
			}
		}
	}
	return out
}

// keyEnd returns the index of the = that ends the key of a key/value line,
// or -1.
func keyEnd(s string) int {
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '=':
			return i
		}
	}
	return -1
}

// splitKey splits a dotted key into its parts, unquoting quoted parts.
func splitKey(k string) []string {
	var parts []string
	var cur strings.Builder
	quote := byte(0)
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' && i+1 < len(k) {
				i++
				cur.WriteByte(k[i])
			} else if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			parts = append(parts, strings.TrimSpace(cur.String()))
			cur.Reset()
		case c == ' ' || c == '\t':
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, strings.TrimSpace(cur.String()))
}

// joinKey joins key parts the way toml.Key.String does: bare parts as they
// are, others quoted.
func joinKey(parts []string) string {
	for i, p := range parts {
		bare := p != ""
		for _, r := range p {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				bare = false
				break
			}
		}
		if !bare {
			parts[i] = `"` + strings.ReplaceAll(strings.ReplaceAll(p, `\`, `\\`), `"`, `\"`) + `"`
		}
	}
	return strings.Join(parts, ".")
}
