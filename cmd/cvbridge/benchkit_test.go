package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/result/xsdschema"
)

// Helpers shared by the benchmarks and the fault tests. The process helpers
// of crash_test.go take a *testing.T; these take a testing.TB so that
// benchmarks can use them too.

// benchN is the number of results a drain benchmark queues: CVBRIDGE_BENCH_N
// (`make bench` sets 100000), else def, small enough for a plain
// `go test -bench`.
func benchN(tb testing.TB, def int) int {
	tb.Helper()
	v := os.Getenv("CVBRIDGE_BENCH_N")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(tb, err, "CVBRIDGE_BENCH_N must be a number of results")
	require.Positive(tb, n, "CVBRIDGE_BENCH_N")
	return n
}

// buildBinary builds cvbridge once per test binary (the same build binary()
// makes).
func buildBinary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cvbridge-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "cvbridge")
		out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(tb, buildErr)
	return builtBin
}

// simProcess runs `cvbridge sim` (signature and XSD checks, as Coachview)
// on a free port in a process of its own, and returns its results URL and
// the process.
func simProcess(tb testing.TB, bin string, extra ...string) (string, *exec.Cmd) {
	tb.Helper()
	dir := tb.TempDir()
	secret := filepath.Join(dir, "secret")
	require.NoError(tb, os.WriteFile(secret, []byte(e2eSecret+"\n"), 0o600))
	args := append([]string{"sim", "--listen", "127.0.0.1:0", "--secret-file", secret, "--quiet"}, extra...)
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(tb, err)
	cmd.Stderr = os.Stderr
	require.NoError(tb, cmd.Start())
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(tb, err)
	start := strings.Index(line, "http://")
	require.GreaterOrEqual(tb, start, 0, "simulator banner: %q", line)
	rest := strings.TrimSpace(line[start:])
	if i := strings.IndexAny(rest, " \t"); i >= 0 {
		rest = rest[:i]
	}
	return rest, cmd
}

// bodyTemplate renders one valid CoachviewResultaat whose person is a
// placeholder, so that many distinct bodies can be made by substitution
// without paying for rendering and XSD validation each time.
type bodyTemplate struct {
	doc         []byte
	placeholder []byte
}

const personPlaceholder = "PERSONXXXXXXXXXX"

func newBodyTemplate(tb testing.TB) bodyTemplate {
	tb.Helper()
	schema, err := xsdschema.Bundled()
	require.NoError(tb, err)
	defer schema.Close()
	r, err := result.NewRenderer(result.DefaultOptions(), schema)
	require.NoError(tb, err)
	doc, err := r.Render(benchCompletion(personPlaceholder))
	require.NoError(tb, err)
	require.Equal(tb, 1, bytes.Count(doc, []byte(personPlaceholder)))
	return bodyTemplate{doc: doc, placeholder: []byte(personPlaceholder)}
}

// body is the document for person (same length class as the placeholder
// keeps it valid: identifiers are at most 50 characters).
func (bt bodyTemplate) body(person string) []byte {
	return bytes.Replace(bt.doc, bt.placeholder, []byte(person), 1)
}

// benchCompletion is a typical passed result with a decimal grade.
func benchCompletion(person string) result.Completion {
	return result.Completion{
		PersonID:      person,
		ElearningCode: "VCA-BASIS",
		CompletedAt:   time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC),
		Passed:        true,
		ResultDecimal: "7.5",
		SourceRef:     "bench",
	}
}

// enqueueAll queues one result per person in transactions of 1,000.
func enqueueAll(tb testing.TB, store outbox.Store, target string, bt bodyTemplate, persons []string) {
	tb.Helper()
	ctx := context.Background()
	for start := 0; start < len(persons); start += 1000 {
		chunk := persons[start:min(start+1000, len(persons))]
		require.NoError(tb, store.InTx(ctx, func(tx outbox.Tx) error {
			for _, p := range chunk {
				out, err := tx.Enqueue(ctx, outbox.NewResult{
					Target: target, Connection: "bench", ElearningCode: "VCA-BASIS", PersonID: p,
					SourceRef: "bench", Body: bt.body(p),
				}, outbox.EnqueuePolicy{})
				if err != nil {
					return err
				}
				if out != outbox.Queued {
					return fmt.Errorf("enqueue %s: %s, want queued", p, out)
				}
			}
			return nil
		}))
	}
}

// persons returns n person ids unique to prefix.
func persons(prefix string, n int) []string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprintf("%s%07d", prefix, i)
	}
	return ps
}

// percentile returns the p-th percentile (0–100) of ds by nearest rank; ds
// is sorted in place.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds))*p/100+0.5) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// ms is d in milliseconds, for ReportMetric.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// procStatus reads a /proc/<pid>/status field in kB (VmRSS, VmHWM).
func procStatus(pid int, field string) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.Atoi(f[0])
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// procCPU is the user+system CPU time a process has used so far, from
// /proc/<pid>/stat (clock ticks of 1/100 s on Linux).
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.Atoi(f[11])
	stime, err2 := strconv.Atoi(f[12])
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// selfCPU is the user+system CPU time this process has used so far.
func selfCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postgresCPU is the CPU time the local PostgreSQL server's processes have
// used so far: every process named postgres, with what its exited children
// (the backends of closed connections) used. ok is false when none is
// visible (a server in another container or on another host).
func postgresCPU() (total time.Duration, ok bool) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		comm, err := os.ReadFile(dir + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
			continue
		}
		data, err := os.ReadFile(dir + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 15 {
			continue
		}
		for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
			v, _ := strconv.Atoi(f[i])
			total += time.Duration(v) * 10 * time.Millisecond
		}
		ok = true
	}
	return total, ok
}

// cpuMeter reads the CPU time used so far by this process, the simulator
// and, when measured, the PostgreSQL server, to tell per result where the
// machine's cores went.
type cpuMeter struct {
	tb       testing.TB
	sim      int  // the simulator's pid
	postgres bool // also read the PostgreSQL server
}

// cpuReading is one cpuMeter reading.
type cpuReading struct{ self, sim, db time.Duration }

func (m cpuMeter) read() cpuReading {
	r := cpuReading{self: selfCPU(m.tb)}
	sim, err := procCPU(m.sim)
	require.NoError(m.tb, err)
	r.sim = sim
	if m.postgres {
		r.db, _ = postgresCPU()
	}
	return r
}

// report reports the CPU used per result between from and now, in µs,
// under the metric names prefix+"cpu-self-us" and so on.
func (m cpuMeter) report(b *testing.B, prefix string, from cpuReading, n int) {
	to := m.read()
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(n) }
	b.ReportMetric(per(to.self-from.self), prefix+"cpu-self-us")
	b.ReportMetric(per(to.sim-from.sim), prefix+"cpu-sim-us")
	if m.postgres {
		b.ReportMetric(per(to.db-from.db), prefix+"cpu-db-us")
	}
}

// get fetches url and fails tb unless it answers 200.
func get(tb testing.TB, url string) []byte {
	tb.Helper()
	resp, err := http.Get(url)
	require.NoError(tb, err)
	defer func() { _ = resp.Body.Close() }()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	require.NoError(tb, err)
	require.Equal(tb, http.StatusOK, resp.StatusCode, "%s: %s", url, buf.String())
	return buf.Bytes()
}
