// Command bench runs batch's standard benchmark: it generates the standard
// campaign (1.5 KB of Markdown with four merge fields, a list, two links
// and a 20 KB PNG; recipients with email,name,city,plan, every third name
// Chinese) at several list sizes, and times the whole batch process on it:
// a dry run writing .eml files, and check. It prints messages/second, CPU
// time and peak memory (maximum resident set) for each case, and, where
// python3 is found, the same dry run done the classic way with Python's
// email package (reference.py), side by side, with the ratio of the two.
//
// Then, on the first size, two comparisons with a bare program doing only
// the unavoidable part of the work, run in alternation (-pairs of them)
// because a shared machine's speed drifts; each gives the medians and
// their ratio:
//
//   - the dry run beside a bare writer of the same bytes, the dry run's
//     .eml files read into memory beforehand and written as files, a
//     goroutine per core, into a fresh directory of the same filesystem;
//     every run starts after a sync, so that none pays for the writeback
//     of the one before (compare.go);
//   - sending to a loopback SMTP server, STARTTLS and AUTH PLAIN, that
//     offers neither PIPELINING nor CHUNKING, beside a bare go-smtp client
//     pushing the same bytes over as many connections; and to the same
//     server offering both (send.go).
//
// Run it from the repository's root:
//
//	go run ./bench                      # 10,000 and 100,000 recipients
//	go run ./bench -sizes 10000,1000000 # choose
//	go run ./bench -send 1,4            # connection counts; -send "" for none
//	go run ./bench -pairs 5             # alternations of each comparison; 0 for none
//	go run ./bench -million             # only check and dry run of 1,000,000: memory
//	go run ./bench -dir /mnt/scratch    # write somewhere else than $TMPDIR
//
// The .eml files written are kept until the end (unless the disk is too
// full for the next case): deleting tens of thousands of files and
// creating as many at once measures the filesystem, not batch. ext4
// without a journal, as on some VMs, skips inodes freed in the last one to
// six minutes when it makes a file, and on a disk that has just had a
// million files deleted that scan costs more than batch's own work. Give
// the disk a few minutes between runs, or point -dir at a fresh
// filesystem.
package main

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.sizes, "sizes", "10000,100000", "list sizes, comma-separated")
	flag.BoolVar(&o.python, "python", true, "also run the Python reference on the first size")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.StringVar(&o.dir, "dir", "", "where to make the work directory (default $TMPDIR)")
	flag.StringVar(&o.send, "send", "1,2", "connection counts for the send benchmark on the first size; \"\" for none")
	flag.IntVar(&o.pairs, "pairs", 3, "alternations of batch and the bare program in each comparison; 0 for no comparison")
	flag.IntVar(&o.perConn, "per-conn", 100, "messages per connection, for batch (max_per_connection) and the bare client alike")
	million := flag.Bool("million", false, "only check and dry run 1,000,000 recipients, for their peak memory")
	var child childOptions
	flag.BoolVar(&child.serve, "serve", false, "run the benchmark's SMTP server (used by the send benchmark)")
	flag.BoolVar(&child.classic, "classic", false, "with -serve: offer neither PIPELINING nor CHUNKING")
	flag.StringVar(&child.cert, "cert", "", "with -serve: the server's certificate (PEM)")
	flag.StringVar(&child.key, "key", "", "with -serve: the certificate's key (PEM)")
	flag.IntVar(&child.bare, "bare", 0, "run the bare client over this many connections (used by the send benchmark)")
	flag.IntVar(&child.port, "port", 0, "with -bare: the server's port")
	flag.StringVar(&child.ca, "ca", "", "with -bare: the certificate (PEM) of the CA that issued the server's")
	flag.StringVar(&child.eml, "eml", "", "with -bare: the directory of .eml files to send")
	flag.Parse()
	if *million {
		o.sizes, o.python, o.send, o.pairs = "1000000", false, "", 0
	}
	var err error
	switch {
	case child.serve:
		err = serve(child.classic, child.cert, child.key)
	case child.bare > 0:
		err = bareClient(child, o.perConn)
	default:
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the benchmark's flags.
type options struct {
	sizes, dir, send string
	python, keep     bool
	pairs, perConn   int
}

// childOptions are the flags of the bench binary run as the send
// benchmark's server or bare client.
type childOptions struct {
	serve, classic     bool
	cert, key, ca, eml string
	bare, port         int
}

// messageSize is about the size of one of the standard campaign's .eml
// files, to tell whether a dry run's output fits on the disk.
const messageSize = 40 << 10

func run(o options) error {
	if o.pairs < 0 || o.perConn < 1 {
		return fmt.Errorf("-pairs %d, -per-conn %d: want 0 or more pairs, and 1 or more messages per connection", o.pairs, o.perConn)
	}
	var conns []int
	if o.send != "" {
		var err error
		if conns, err = connCounts(o.send); err != nil {
			return err
		}
	}
	work, err := os.MkdirTemp(o.dir, "batch-bench-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(work)
	}
	bin := filepath.Join(work, "batch")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/batch").CombinedOutput(); err != nil {
		return fmt.Errorf("building batch (run from the repository's root): %v\n%s", err, out)
	}
	fmt.Println(machine())
	fmt.Printf("%-28s %10s %10s %12s %10s %10s\n", "case", "messages", "seconds", "messages/s", "CPU s", "peak MiB")
	outs := &outputs{work: work}
	first, err := dryRuns(bin, o.sizes, outs)
	if err != nil {
		return err
	}
	if err := pythonReference(first, outs, o.python); err != nil {
		return err
	}
	if o.pairs == 0 {
		return nil
	}
	msgs, err := firstMessages(bin, first)
	if err != nil {
		return err
	}
	if err := compareWrite(bin, first, msgs, outs, o.pairs); err != nil {
		return err
	}
	if len(conns) == 0 {
		return nil
	}
	return benchSend(sendBench{bin: bin, work: work, camp: first, msgs: msgs, pairs: o.pairs, perConn: o.perConn}, conns)
}

// firstMessages reads the first case's dry run's files, made again if
// they were deleted to make room.
func firstMessages(bin string, first firstCase) ([]eml, error) {
	if _, err := os.Stat(first.out); err != nil {
		out, err := exec.Command(bin, "send", "--dry-run", first.out, filepath.Join(first.dir, "c.toml")).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("dry run for the comparisons: %v\n%s", err, out)
		}
	}
	msgs, err := loadEML(first.out)
	if err == nil && len(msgs) == 0 {
		err = fmt.Errorf("no .eml files in %s", first.out)
	}
	return msgs, err
}

// pythonReference runs reference.py on the first size, where python3 is
// found, and gives batch's dry run's rate as a multiple of its rate.
func pythonReference(first firstCase, outs *outputs, python bool) error {
	py, err := exec.LookPath("python3")
	if err != nil || !python {
		return nil
	}
	if err := outs.room(first.n); err != nil {
		return err
	}
	dir := filepath.Join(outs.work, "out-python")
	outs.dirs = append(outs.dirs, dir)
	ref, err := measure(fmt.Sprintf("Python email, %d", first.n), first.n, py, "bench/reference.py", first.dir, dir)
	if err != nil {
		return err
	}
	fmt.Printf("batch's dry run beside the Python reference: %.0fx the messages a second (target: 50x or more), %.0fx the messages a CPU second\n",
		first.dry.rate()/ref.rate(), ref.cpu.Seconds()/first.dry.cpu.Seconds())
	return nil
}

// firstCase is the first size's campaign, its dry run's output and how
// long that took: the case the comparisons run on.
type firstCase struct {
	n        int
	dir, out string
	dry      result
}

// dryRuns generates the campaign at each of sizes and measures a dry run
// and a check of it, and returns the first size's case.
func dryRuns(bin, sizes string, outs *outputs) (firstCase, error) {
	var first firstCase
	for i, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return first, fmt.Errorf("size %q", s)
		}
		dir := filepath.Join(outs.work, "campaign-"+strconv.Itoa(n))
		if err := generate(dir, n); err != nil {
			return first, err
		}
		if err := outs.room(n); err != nil {
			return first, err
		}
		out := filepath.Join(outs.work, "out-"+strconv.Itoa(n))
		outs.dirs = append(outs.dirs, out)
		dry, err := measure(fmt.Sprintf("batch dry run, %d", n), n, bin, "send", "--dry-run", out, filepath.Join(dir, "c.toml"))
		if err != nil {
			return first, err
		}
		if i == 0 {
			first = firstCase{n: n, dir: dir, out: out, dry: dry}
		}
		if _, err := measure(fmt.Sprintf("batch check, %d", n), n, bin, "check", filepath.Join(dir, "c.toml")); err != nil {
			return first, err
		}
	}
	return first, nil
}

// outputs are the dry runs' output directories in work, kept until the
// end, or until the disk is needed.
type outputs struct {
	work string
	dirs []string
}

// room deletes the earlier outputs when the disk has no room for n more
// messages.
func (o *outputs) room(n int) error {
	need := uint64(n) * messageSize * 11 / 10
	if free(o.work) >= need || len(o.dirs) == 0 {
		return nil
	}
	fmt.Printf("(deleting the earlier cases' files to make room for %d more)\n", n)
	for _, d := range o.dirs {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	o.dirs = nil
	return nil
}

// connCounts parses -send, connection counts comma-separated.
func connCounts(send string) ([]int, error) {
	var conns []int
	for _, s := range strings.Split(send, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-send: connection count %q", s)
		}
		conns = append(conns, n)
	}
	return conns, nil
}

// result is a measured run.
type result struct {
	n       int
	elapsed time.Duration
	cpu     time.Duration
	peakMiB float64
}

func (r result) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

// measure runs a command and prints its rate, CPU time and peak memory.
func measure(name string, n int, args ...string) (result, error) {
	r, err := timeRun(n, args...)
	if err != nil {
		return r, fmt.Errorf("%s: %w", name, err)
	}
	fmt.Printf("%-28s %10d %10.2f %12.0f %10.2f %10.1f\n", name, n, r.elapsed.Seconds(), r.rate(), r.cpu.Seconds(), r.peakMiB)
	return r, nil
}

// timeRun runs a command, of n messages, and times it from start to exit.
func timeRun(n int, args ...string) (result, error) {
	cmd := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%v\n%s", err, stderr.String())
	}
	elapsed := time.Since(start)
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return result{n: n, elapsed: elapsed, cpu: cpu, peakMiB: peakMiB(cmd.ProcessState)}, nil
}

// template is the standard benchmark's Markdown (template.md): about 1.5
// KB, four merge fields, a bulleted list, two links and an image.
//
//go:embed template.md
var template string

// generate writes the standard campaign with n recipients into dir.
func generate(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	toml := `name = "bench"
from = "Python爱好者 <news@example.org>"
subject = "来自SMTP的问候…… {{.name}}"
template = "template.md"
recipients = "recipients.csv"
`
	if err := os.WriteFile(filepath.Join(dir, "c.toml"), []byte(toml), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "template.md"), []byte(template), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "logo.png"), logo(), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "recipients.csv"))
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"email", "name", "city", "plan"})
	cities := []string{"Paris", "上海", "Berlin", "London", "São Paulo"}
	chinese := []string{"张伟", "王芳", "李娜", "刘洋", "陈静"}
	for i := range n {
		name := fmt.Sprintf("User %d", i)
		if i%3 == 0 {
			name = chinese[i%len(chinese)] + strconv.Itoa(i)
		}
		plan := "free"
		if i%2 == 0 {
			plan = "pro"
		}
		w.Write([]string{fmt.Sprintf("user%d@example.com", i), name, cities[i%len(cities)], plan})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return f.Close()
}

// logo is a PNG of 20 KB: opaque noise, so that it doesn't compress away
// (96×70 pixels of 3 random bytes, 20,160 bytes before PNG's framing).
func logo() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 96, 70))
	r := rand.New(rand.NewPCG(1, 2))
	for y := range 70 {
		for x := range 96 {
			img.Set(x, y, color.RGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255})
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

// machine describes where the figures come from.
func machine() string {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s %s/%s", cpu, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
