// Command bench runs batch's standard benchmark: it generates the standard
// campaign (1.5 KB of Markdown with four merge fields, a list, two links
// and a 20 KB PNG; recipients with email,name,city,plan, every third name
// Chinese) at several list sizes, and times the whole batch process on it:
// a dry run writing .eml files, and check. It prints messages/second, CPU
// time and peak memory (maximum resident set) for each case, and, where
// python3 is found, the same dry run done the classic way with Python's
// email package (reference.py), side by side. Then it sends the first
// size's messages to a loopback SMTP server, beside a bare client (see
// send.go).
//
//	go run ./bench                      # 10,000 and 100,000 recipients
//	go run ./bench -sizes 10000,1000000 # choose
//	go run ./bench -send 1,4            # connection counts; -send "" for none
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
	sizes := flag.String("sizes", "10000,100000", "list sizes, comma-separated")
	python := flag.Bool("python", true, "also run the Python reference on the first size")
	keep := flag.Bool("keep", false, "keep the work directory")
	dir := flag.String("dir", "", "where to make the work directory (default $TMPDIR)")
	send := flag.String("send", "1,2,4,8", "connection counts for the send benchmark on the first size; \"\" for none")
	server := flag.Bool("serve", false, "run the benchmark's SMTP server (used by the send benchmark)")
	classic := flag.Bool("classic", false, "with -serve: offer neither PIPELINING nor CHUNKING")
	flag.Parse()
	if *server {
		if err := serve(*classic); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*sizes, *dir, *send, *python, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// messageSize is about the size of one of the standard campaign's .eml
// files, to tell whether a dry run's output fits on the disk.
const messageSize = 40 << 10

func run(sizes, dir, send string, python, keep bool) error {
	work, err := os.MkdirTemp(dir, "batch-bench-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(work)
	}
	bin := filepath.Join(work, "batch")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/batch").CombinedOutput(); err != nil {
		return fmt.Errorf("building batch (run from the repository's root): %v\n%s", err, out)
	}
	fmt.Println(machine())
	fmt.Printf("%-28s %10s %10s %12s %10s %10s\n", "case", "messages", "seconds", "messages/s", "CPU s", "peak MiB")
	outs := &outputs{work: work}
	first, firstOut, err := dryRuns(bin, sizes, outs)
	if err != nil {
		return err
	}
	if py, err := exec.LookPath("python3"); err == nil && python {
		n := countRows(first)
		if err := outs.room(n); err != nil {
			return err
		}
		if err := measure(fmt.Sprintf("Python email, %d", n), n, py, "bench/reference.py", first, filepath.Join(work, "out-python")); err != nil {
			return err
		}
	}
	if send == "" {
		return nil
	}
	conns, err := connCounts(send)
	if err != nil {
		return err
	}
	if _, err := os.Stat(firstOut); err != nil {
		// Deleted to make room: the same files again.
		out, err := exec.Command(bin, "send", "--dry-run", firstOut, filepath.Join(first, "c.toml")).CombinedOutput()
		if err != nil {
			return fmt.Errorf("dry run for the send benchmark: %v\n%s", err, out)
		}
	}
	return benchSend(bin, first, firstOut, conns)
}

// dryRuns generates the campaign at each of sizes and measures a dry run
// and a check of it, and returns the first size's campaign directory and
// the dry run's output.
func dryRuns(bin, sizes string, outs *outputs) (first, firstOut string, err error) {
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return "", "", fmt.Errorf("size %q", s)
		}
		dir := filepath.Join(outs.work, "campaign-"+strconv.Itoa(n))
		if err := generate(dir, n); err != nil {
			return "", "", err
		}
		if err := outs.room(n); err != nil {
			return "", "", err
		}
		out := filepath.Join(outs.work, "out-"+strconv.Itoa(n))
		outs.dirs = append(outs.dirs, out)
		if first == "" {
			first, firstOut = dir, out
		}
		if err := measure(fmt.Sprintf("batch dry run, %d", n), n, bin, "send", "--dry-run", out, filepath.Join(dir, "c.toml")); err != nil {
			return "", "", err
		}
		if err := measure(fmt.Sprintf("batch check, %d", n), n, bin, "check", filepath.Join(dir, "c.toml")); err != nil {
			return "", "", err
		}
	}
	return first, firstOut, nil
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

// measure runs a command and prints its rate, CPU time and peak memory.
func measure(name string, n int, args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s", name, err, stderr.String())
	}
	elapsed := time.Since(start)
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	fmt.Printf("%-28s %10d %10.2f %12.0f %10.2f %10.1f\n", name, n, elapsed.Seconds(), float64(n)/elapsed.Seconds(), cpu.Seconds(), peakMiB(cmd.ProcessState))
	return nil
}

func countRows(dir string) int {
	data, _ := os.ReadFile(filepath.Join(dir, "recipients.csv"))
	return bytes.Count(data, []byte("\n")) - 1
}

// template is the standard benchmark's Markdown: about 1.5 KB, four merge
// fields, a bulleted list, two links and an image.
const template = `![Python Meetup](logo.png)

# Hello {{.name}}!

Our November meetup is on Thursday in {{.city}}. We have three talks lined
up, pizza, and the usual hallway track. As a member on the {{.plan}} plan you
can bring a friend for free; just reply to this mail with their name.

- 18:30: doors open, coffee and introductions
- 19:00: Typing asyncio in anger, lessons from a year of production code
- 19:45: Packaging in 2026, what changed and what you can finally forget
- 20:30: lightning talks, five minutes each, sign up at the door

The venue is the same as last time: third floor, the big room at the end of
the corridor. If you come by bike, the racks are in the courtyard. The talks
will be recorded and published on [our channel](https://pymeetup.example.org/videos)
a week later, together with the slides.

We are still looking for speakers for December and January. If you have
something to share, a library you wrote, a bug you hunted, a tool you love,
[propose a talk](https://pymeetup.example.org/cfp?from={{.email}}). First-time
speakers are very welcome, and we are happy to help you prepare.

Getting there: the venue is five minutes from the central station. Take
the north exit, walk along the river and turn left after the bakery. There is
no parking on site, but the garage on the corner stays open until midnight
and gives meetup members a discount if you show this mail at the desk.
The doors close at 19:15 sharp, so please be on time for the first talk.

See you on Thursday,
the organisers
`

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
