// Command cvbload is the benchmarks' own tooling. `make bench` runs the
// benchmarks (see cmd/cvbridge's bench*_test.go), appends their output to
// one file, and then runs
//
//	cvbload report -in bin/bench.txt -out BENCHMARKS.md
//
// which takes the median of every metric over the runs (-count), sets each
// one beside its goal, and describes the machine and the commands. Lines of
// the input that start with "# command: " or "# load: " are the exact
// commands run and the load average before and after, written by make.
//
// The inbound benchmark also runs
//
//	cvbload sink -config cvbridge.yaml -listen 127.0.0.1:0
//
// the bare handler measured beside the daemon: the daemon's public server
// and webhook receivers on a store that keeps nothing.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cvbload:", err)
		os.Exit(1)
	}
}

// usage lists the subcommands.
const usage = `usage:
  cvbload report -in BENCH_OUTPUT -out BENCHMARKS.md
  cvbload sink -config cvbridge.yaml [-listen 127.0.0.1:0]`

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "report":
		return report(args[1:], out)
	case "sink":
		return sink(args[1:], out)
	}
	return fmt.Errorf("unknown subcommand %q\n%s", args[0], usage)
}

// report writes BENCHMARKS.md from benchmark output.
func report(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	in := fs.String("in", "", "benchmark output to read (required)")
	dst := fs.String("out", "BENCHMARKS.md", "report to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" {
		return errors.New("report: -in is required")
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // read only
	res, err := parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	text := render(res, machine(), time.Now())
	if err := os.WriteFile(*dst, []byte(text), 0o644); err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "wrote %s (%d benchmarks)\n", *dst, len(res.runs))
	return err
}

// results are the parsed benchmark output.
type results struct {
	// runs maps a benchmark name (without the -GOMAXPROCS suffix) to one
	// map of unit → value per run.
	runs     map[string][]map[string]float64
	commands []string
	loads    []string
	cpu      string // the "cpu:" line go test prints
}

// parse reads `go test -bench` output.
func parse(r io.Reader) (*results, error) {
	res := &results{runs: map[string][]map[string]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		switch {
		case strings.HasPrefix(text, "# command: "):
			res.commands = append(res.commands, strings.TrimPrefix(text, "# command: "))
		case strings.HasPrefix(text, "# load: "):
			res.loads = append(res.loads, strings.TrimPrefix(text, "# load: "))
		case strings.HasPrefix(text, "cpu: "):
			res.cpu = strings.TrimPrefix(text, "cpu: ")
		case strings.HasPrefix(text, "Benchmark"):
			fields := strings.Fields(text)
			if len(fields) < 4 || len(fields)%2 != 0 {
				continue // a benchmark's log line, not a result
			}
			name := fields[0]
			if i := strings.LastIndexByte(name, '-'); i > 0 {
				name = name[:i]
			}
			m := map[string]float64{}
			for i := 2; i+1 < len(fields); i += 2 {
				v, err := strconv.ParseFloat(fields[i], 64)
				if err != nil {
					return nil, fmt.Errorf("line %d: value %q of %s: %w", line, fields[i], fields[i+1], err)
				}
				m[fields[i+1]] = v
			}
			res.runs[name] = append(res.runs[name], m)
		}
	}
	return res, sc.Err()
}

// median is the median of unit over name's runs, and how many runs had it.
func (r *results) median(name, unit string) (float64, int) {
	var vs []float64
	for _, m := range r.runs[name] {
		if v, ok := m[unit]; ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0, 0
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2], len(vs)
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, len(vs)
}

// span is the lowest and highest value of unit over name's runs.
func (r *results) span(name, unit string) (float64, float64) {
	lo, hi := 0.0, 0.0
	for i, m := range r.runs[name] {
		v := m[unit]
		if i == 0 || v < lo {
			lo = v
		}
		if i == 0 || v > hi {
			hi = v
		}
	}
	return lo, hi
}

// host describes the machine.
type host struct {
	model, kernel, goVersion string
	cpus                     int
	memMB                    int
}

func machine() host {
	h := host{cpus: runtime.NumCPU(), goVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.model = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.kernel = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(rest); len(f) > 0 {
					kb, _ := strconv.Atoi(f[0])
					h.memMB = kb / 1024
				}
			}
		}
	}
	return h
}
