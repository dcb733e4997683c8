package main

// version is the release's version, set by the release build
// (.goreleaser.yaml: -ldflags "-X main.version={{.Version}}"); "" in a
// build without it, where the module's version in runtime/debug's build
// information is the one to report.
var version string
