package main

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestImportsCampaignOnly: of the project's packages, the command imports
// internal/campaign alone, which holds what a run is; the rest (merge,
// render, deliver, journal, dnscheck, templates) it reaches through it.
func TestImportsCampaignOnly(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/batch-mailer/batch/"
	files := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		files++
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, module) && path != module+"internal/campaign" {
				t.Errorf("%s imports %s: reach it through internal/campaign", name, path)
			}
		}
	}
	if files == 0 {
		t.Fatal("no Go file read")
	}
}
