package main

// version is the release's version, set by the release build
// (.goreleaser.yaml: -ldflags "-X main.version={{.Version}}"); "" in a
// build without it, where the module's version in runtime/debug's build
// information is the one to report.
//
//lint:ignore U1000 set by the release build's -ldflags, read by batch version
var version string
