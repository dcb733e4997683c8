//go:build race

package render

// raceEnabled is true when the tests run under the race detector, which
// makes sync.Pool drop a share of what is put back on purpose: allocation
// counts mean nothing there.
const raceEnabled = true
