package campaign

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/batch-mailer/batch/internal/deliver"
	"github.com/batch-mailer/batch/templates"
)

// The campaign batch init writes (templates.Starter) must stay in step
// with the campaign file: it shows every key, and every key it shows,
// uncommented, is one Load takes.

// starterKey is a key line of the starter's campaign.toml, commented out
// or not: `# lang = "en"   # …`, `# [smtp]   # …`, `# [smtp.oauth]   # …`.
var (
	starterKey   = regexp.MustCompile(`^(?:# )?([A-Za-z][A-Za-z_-]*) = `)
	starterTable = regexp.MustCompile(`^(?:# )?\[([a-z.]+)\]`)
)

// starterCampaign is the starter's campaign.toml.
func starterCampaign(t *testing.T) string {
	t.Helper()
	for _, f := range templates.Starter() {
		if f.Path == "campaign.toml" {
			return string(f.Data)
		}
	}
	t.Fatal("the starter has no campaign.toml")
	return ""
}

// starterKeys lists the keys the starter shows, as "table.key" (or "key"
// at the top), and its tables.
func starterKeys(text string) (keys, tables map[string]bool) {
	keys, tables = map[string]bool{}, map[string]bool{}
	table := ""
	for _, line := range strings.Split(text, "\n") {
		if m := starterTable.FindStringSubmatch(line); m != nil {
			table = m[1]
			tables[table] = true
		} else if m := starterKey.FindStringSubmatch(line); m != nil {
			if table != "" {
				keys[table+"."+m[1]] = true
			} else {
				keys[m[1]] = true
			}
		}
	}
	return keys, tables
}

// schemaKeys lists the keys of the campaign file, from the struct it is
// decoded into: "table.key" for a table's, and the tables.
func schemaKeys() (keys, tables map[string]bool) {
	keys, tables = map[string]bool{}, map[string]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := f.Tag.Get("toml")
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft.Kind() == reflect.Struct || prefix == "" && ft.Kind() == reflect.Map:
				tables[prefix+name] = true
				if ft.Kind() == reflect.Struct {
					walk(ft, prefix+name+".")
				}
			default:
				keys[prefix+name] = true
			}
		}
	}
	walk(reflect.TypeFor[file](), "")
	return keys, tables
}

func TestStarterShowsEveryKey(t *testing.T) {
	shown, shownTables := starterKeys(starterCampaign(t))
	keys, tables := schemaKeys()
	for k := range keys {
		if !shown[k] {
			t.Errorf("the starter campaign.toml (templates/starter) doesn't show the key %s: add it, commented out, with a line on what it does", k)
		}
	}
	for k := range tables {
		if !shownTables[k] {
			t.Errorf("the starter campaign.toml doesn't show the table [%s]", k)
		}
	}
	for k := range shown {
		if !keys[k] && !shownTables[strings.SplitN(k, ".", 2)[0]] {
			t.Errorf("the starter campaign.toml shows %s, which is no key of the campaign file", k)
		}
	}
	if len(shown) < len(keys) {
		t.Errorf("the starter shows %d keys, the campaign file has %d", len(shown), len(keys))
	}
}

// uncomment removes the "# " of every key and table line of the starter,
// but for the keys in leave, and the tables in leave with all their keys,
// and comments out the keys in drop.
func uncomment(text string, leave, drop map[string]bool) string {
	var out []string
	table := ""
	for _, line := range strings.Split(text, "\n") {
		if m := starterTable.FindStringSubmatch(line); m != nil {
			table = m[1]
			if !leave[table] {
				line = strings.TrimPrefix(line, "# ")
			}
		} else if m := starterKey.FindStringSubmatch(line); m != nil {
			key := m[1]
			if table != "" {
				key = table + "." + key
			}
			switch {
			case leave[table]:
			case drop[key]:
				line = "# " + strings.TrimPrefix(line, "# ")
			case !leave[key]:
				line = strings.TrimPrefix(line, "# ")
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// writeStarter writes the starter campaign into a directory, with the
// files its commented keys name, and campaign.toml as given.
func writeStarter(t *testing.T, campaignFile string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range templates.Starter() {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"campaign.toml":       campaignFile,
		"layout.html":         templates.DefaultLayout,
		"files/programme.pdf": "%PDF-1.4\n",
		"relay-ca.pem":        "",
		"imap-ca.pem":         "",
		"dkim.pem":            pemOf(t, key, "pkcs8"),
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "campaign.toml")
}

// TestStarterKeysLoad uncomments every key of the starter and loads it:
// each is a key Load takes, with a value it takes. Some keys are the
// alternative of another (password_cmd of password_env, and auth with
// token_cmd or [smtp.oauth] of both; client_secret_cmd of
// client_secret_env; secret_cmd of secret_env; [smtp] sender of sender),
// so the file is loaded once with each.
func TestStarterKeysLoad(t *testing.T) {
	text := starterCampaign(t)
	for _, alt := range []struct{ leave, drop map[string]bool }{
		{leave: map[string]bool{"smtp.password_cmd": true, "smtp.sender": true, "smtp.auth": true, "smtp.token_cmd": true, "smtp.oauth": true, "unsubscribe.secret_cmd": true, "bounces.password_cmd": true}},
		{leave: map[string]bool{"smtp.password_env": true, "sender": true, "smtp.auth": true, "smtp.token_cmd": true, "smtp.oauth": true, "unsubscribe.secret_env": true, "bounces.password_env": true}},
		{leave: map[string]bool{"smtp.password_env": true, "smtp.password_cmd": true, "sender": true, "smtp.oauth": true, "unsubscribe.secret_cmd": true, "bounces.password_cmd": true}},
		{leave: map[string]bool{"smtp.password_env": true, "smtp.password_cmd": true, "sender": true, "smtp.token_cmd": true, "smtp.oauth.client_secret_cmd": true, "unsubscribe.secret_cmd": true, "bounces.password_cmd": true}},
	} {
		full := uncomment(text, alt.leave, alt.drop)
		path := writeStarter(t, full)
		c, err := Load(path)
		if err != nil {
			t.Fatalf("the starter with its keys uncommented:\n%s\n%v", full, err)
		}
		if c.Lang != "en" || c.ReplyTo == nil || c.Preheader == nil || c.LayoutPath == "" || len(c.Attachments) != 1 {
			t.Errorf("the top-level keys were not all read: %+v", c)
		}
		if c.SMTP == nil || c.SMTP.Host != "smtp.example.org" || c.SMTP.Rate == 0 {
			t.Errorf("[smtp] was not read: %+v", c.SMTP)
		}
		if oauth := !alt.leave["smtp.auth"] && !alt.leave["smtp.token_cmd"]; c.SMTP != nil && oauth != (c.SMTP.Auth == deliver.AuthXOAUTH2 && c.SMTP.TokenCmd != "") {
			t.Errorf("[smtp] auth %v, token_cmd %q", c.SMTP.Auth, c.SMTP.TokenCmd)
		}
		if stored := !alt.leave["smtp.oauth"]; c.SMTP != nil && stored != (c.SMTP.Auth == deliver.AuthXOAUTH2 && c.SMTP.OAuth != nil && c.SMTP.OAuth.TokenURL == "https://login.example.org/token" && len(c.SMTP.OAuth.Scopes) == 1) {
			t.Errorf("[smtp] auth %v, [smtp.oauth] %+v", c.SMTP.Auth, c.SMTP.OAuth)
		}
		if c.DKIM == nil || c.Unsubscribe == nil || len(c.Headers) != 1 || c.Columns.Attachments != "files" {
			t.Errorf("[dkim], [unsubscribe], [headers] or [columns] was not read: %+v", c)
		}
		if c.Limits.Cell != 64<<10 || c.Limits.Attachment != 25_000_000 {
			t.Errorf("[limits] was not read: %+v", c.Limits)
		}
	}
}

// TestStarterLoads loads the starter as batch init writes it.
func TestStarterLoads(t *testing.T) {
	c, err := Load(writeStarter(t, starterCampaign(t)))
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP != nil || c.DKIM != nil {
		t.Errorf("the starter has its optional tables on: smtp %v, dkim %v", c.SMTP, c.DKIM)
	}
}
