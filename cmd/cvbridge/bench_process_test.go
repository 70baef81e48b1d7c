package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/simulator"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// Process-level benchmarks: a real `cvbridge run` measured from outside
// through /proc, as an operator would see it. Each iteration starts a fresh
// daemon; run them with -benchtime=1x and -count for medians.

// benchConfig lays out a configuration directory whose target is url and
// with conns CSV drop connections (drop, drop-2, drop-3, …) at the
// adapter's defaults (settle 500ms) polled every minute, and returns the
// main file's path.
func benchConfig(tb testing.TB, url string, conns int) string {
	tb.Helper()
	dir := tb.TempDir()
	require.NoError(tb, os.MkdirAll(filepath.Join(dir, "lms.d"), 0o755))
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "secret"), []byte(e2eSecret+"\n"), 0o600))
	main := fmt.Sprintf(`storage:
  path: outbox.db
admin:
  listen: 127.0.0.1:0
targets:
  coachview:
    url: %s
    secret_file: secret
    hash: sha512
`, url)
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "cvbridge.yaml"), []byte(main), 0o644))
	for i := range conns {
		name, folder := "export", "drop"
		if i > 0 {
			name, folder = fmt.Sprintf("export-%d", i+1), fmt.Sprintf("drop-%d", i+1)
		}
		require.NoError(tb, os.MkdirAll(filepath.Join(dir, folder), 0o755))
		lms := fmt.Sprintf(`name: %s
type: csvdrop
schedule: "@every 1m"
settings:
  folder: %s
  columns:
    person: Deelnemer
    elearningcode: Cursuscode
    completed_at: Datum afgerond
    passed: Geslaagd
    result_decimal: Cijfer
    remark: Opmerking
`, name, folder)
		require.NoError(tb, os.WriteFile(filepath.Join(dir, "lms.d", name+".yaml"), []byte(lms), 0o644))
	}
	return filepath.Join(dir, "cvbridge.yaml")
}

// daemonProcess starts `cvbridge run` on cfgPath, logging to a file beside
// it, and stops it (SIGKILL) when tb ends.
func daemonProcess(tb testing.TB, bin, cfgPath string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	logFile, err := os.Create(filepath.Join(filepath.Dir(cfgPath), "daemon.log"))
	require.NoError(tb, err)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(tb, cmd.Start())
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logFile.Close() })
	return cmd
}

// stopDaemon ends a daemon with SIGTERM and requires a clean exit.
func stopDaemon(tb testing.TB, cmd *exec.Cmd) {
	tb.Helper()
	require.NoError(tb, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(tb, cmd.Wait(), "the daemon stops cleanly")
}

// writeCSV writes a drop file of n good rows for persons prefix0000000…
// aside and renames it into folder, and returns the moment of the rename.
func writeCSV(tb testing.TB, folder, name, prefix string, n int) time.Time {
	tb.Helper()
	return writeRows(tb, folder, name, prefix, n, 0)
}

// writeRows is writeCSV with one in rejectEvery rows (0: none) carrying a
// person id of 51 characters, which the core rejects (Coachview allows 50):
// such a row is stored as rejected, not queued.
func writeRows(tb testing.TB, folder, name, prefix string, n, rejectEvery int) time.Time {
	tb.Helper()
	tmp := filepath.Join(folder, "."+name+".part")
	f, err := os.Create(tmp)
	require.NoError(tb, err)
	w := csv.NewWriter(f)
	w.Comma = ';'
	require.NoError(tb, w.Write([]string{"Deelnemer", "Cursuscode", "Datum afgerond", "Geslaagd", "Cijfer", "Opmerking"}))
	for i := range n {
		passed := "ja"
		if i%7 == 0 {
			passed = "nee"
		}
		person := fmt.Sprintf("%s%07d", prefix, i)
		if rejectEvery > 0 && i%rejectEvery == 1 && i != n-1 {
			person = fmt.Sprintf("%s%050d", prefix, i)
		}
		require.NoError(tb, w.Write([]string{person, "VCA-BASIS", "30-12-2025 14:00", passed, fmt.Sprintf("%d,%d", 4+i%7, i%10), ""}))
	}
	w.Flush()
	require.NoError(tb, w.Error())
	require.NoError(tb, f.Close())
	at := time.Now()
	require.NoError(tb, os.Rename(tmp, filepath.Join(folder, name)))
	return at
}

// waitUntil polls cond every 10ms until it holds or limit passes. It bounds
// a wait for another process; it asserts nothing about speed.
func waitUntil(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not reached within %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// BenchmarkCSVToQueued drops a CSV export of CVBRIDGE_BENCH_CSV_ROWS rows
// (default 100,000; `make bench` sets 1,000,000) on a running daemon whose
// target is paused, and measures the time from the rename into the drop
// folder until the file is processed (every row queued in the outbox), and
// the daemon's peak resident memory (VmHWM).
func BenchmarkCSVToQueued(b *testing.B) {
	csvToQueued(b, "CVBRIDGE_BENCH_CSV_ROWS", 100000, "", 0)
}

// BenchmarkCSVToQueuedPostgres is BenchmarkCSVToQueued into a fresh
// PostgreSQL database for each run, one that has never been analysed, with
// CVBRIDGE_BENCH_PG_CSV_ROWS rows (default 300,000) of which one in 15 is
// rejected by the core's checks (a 51-character person id), so the
// enqueue's history lookup runs 20,000 times. Found from outside: on such a
// database the planner chose an index that scanned every rejected row of
// the target for each new one (20,000 rejected rows took 32 s; a
// 300,000-row file had reached 54,659 rows after 5 minutes).
func BenchmarkCSVToQueuedPostgres(b *testing.B) {
	csvToQueued(b, "CVBRIDGE_BENCH_PG_CSV_ROWS", 300000, testdb.PostgresAdminDSN(), 15)
}

// csvToQueued runs the CSV intake benchmark with the number of rows env
// names (or rows), on SQLite when pgAdmin is empty and otherwise on a fresh
// database of that PostgreSQL server, one in rejectEvery rows rejected (0:
// none).
func csvToQueued(b *testing.B, env string, rows int, pgAdmin string, rejectEvery int) {
	if v := os.Getenv(env); v != "" {
		_, err := fmt.Sscan(v, &rows)
		require.NoError(b, err, env)
	}
	bin := buildBinary(b)
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		cfg := benchConfig(b, "http://127.0.0.1:9/elearning/result.aspx", 1)
		dir := filepath.Dir(cfg)
		if pgAdmin != "" {
			usePostgres(b, cfg, testdb.Postgres(b))
		}
		// Nothing is sent: the measurement is intake alone.
		out, err := exec.Command(bin, "target", "pause", "--config", cfg, "coachview").CombinedOutput()
		require.NoError(b, err, string(out))
		d := daemonProcess(b, bin, cfg)
		waitUntil(b, time.Minute, "daemon ready", func() bool {
			log, _ := os.ReadFile(filepath.Join(dir, "daemon.log"))
			return strings.Contains(string(log), "admin listener")
		})
		// Write the file outside the timed window; its rename starts the clock.
		b.StartTimer()
		start := writeRows(b, filepath.Join(dir, "drop"), "export.csv", "P", rows, rejectEvery)
		waitUntil(b, 30*time.Minute, "file processed", func() bool {
			return exists(filepath.Join(dir, "drop", "processed", "export.csv"))
		})
		elapsed := time.Since(start)
		b.StopTimer()
		hwm, err := procStatus(d.Process.Pid, "VmHWM")
		require.NoError(b, err)
		stopDaemon(b, d)
		out, err = exec.Command(bin, "outbox", "list", "--config", cfg, "--state", "pending", "--limit", "1").CombinedOutput()
		require.NoError(b, err, string(out))
		require.Contains(b, string(out), fmt.Sprintf("P%07d", rows-1), "the last row is queued")
		b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
		b.ReportMetric(float64(hwm)/1024, "peak-RSS-MB")
		b.ReportMetric(float64(rows), "rows")
		b.StartTimer()
	}
}

// BenchmarkIdleFootprint runs a daemon with three CSV drop connections and
// nothing to do for CVBRIDGE_BENCH_IDLE (default 5s; `make bench` sets
// 30s) after a settling period, and reports its resident memory and the
// share of one CPU it used meanwhile.
func BenchmarkIdleFootprint(b *testing.B) {
	idle := 5 * time.Second
	if v := os.Getenv("CVBRIDGE_BENCH_IDLE"); v != "" {
		var err error
		idle, err = time.ParseDuration(v)
		require.NoError(b, err, "CVBRIDGE_BENCH_IDLE")
	}
	bin := buildBinary(b)
	url, _ := simProcess(b, bin)
	for b.Loop() {
		b.StopTimer()
		cfg := benchConfig(b, url, 3)
		d := daemonProcess(b, bin, cfg)
		time.Sleep(3 * time.Second) // start-up: migrations, first polls
		cpu0, err := procCPU(d.Process.Pid)
		require.NoError(b, err)
		time.Sleep(idle)
		cpu1, err := procCPU(d.Process.Pid)
		require.NoError(b, err)
		rss, err := procStatus(d.Process.Pid, "VmRSS")
		require.NoError(b, err)
		hwm, err := procStatus(d.Process.Pid, "VmHWM")
		require.NoError(b, err)
		stopDaemon(b, d)
		b.ReportMetric(float64(rss)/1024, "RSS-MB")
		b.ReportMetric(float64(hwm)/1024, "peak-RSS-MB")
		b.ReportMetric(100*float64(cpu1-cpu0)/float64(idle), "CPU-%")
		b.ReportMetric(idle.Seconds(), "idle-s")
		b.StartTimer()
	}
}

// BenchmarkDropToFirstPOST drops a one-row CSV export on a running daemon
// and measures the time from the rename into the drop folder until the
// simulator registered the result, five times per iteration; it reports
// the median and the worst. The adapter runs at its defaults: a freshly
// written file is taken once it has been unchanged for settle (500ms).
func BenchmarkDropToFirstPOST(b *testing.B) {
	const drops = 5
	bin := buildBinary(b)
	url, _ := simProcess(b, bin)
	base := url[:strings.Index(url, "/elearning")]
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		cfg := benchConfig(b, url, 1)
		dir := filepath.Dir(cfg)
		d := daemonProcess(b, bin, cfg)
		waitUntil(b, time.Minute, "daemon ready", func() bool {
			log, _ := os.ReadFile(filepath.Join(dir, "daemon.log"))
			return strings.Contains(string(log), "admin listener")
		})
		lat := make([]time.Duration, 0, drops)
		for k := range drops {
			prefix := fmt.Sprintf("F%d-%d-", i, k)
			start := writeCSV(b, filepath.Join(dir, "drop"), fmt.Sprintf("export-%d.csv", k), prefix, 1)
			var at time.Time
			waitUntil(b, time.Minute, "result registered", func() bool {
				var got []simulator.Received
				require.NoError(b, json.Unmarshal(get(b, base+"/_sim/accepted"), &got))
				for _, r := range got {
					if strings.HasPrefix(r.PersonID, prefix) {
						at = r.At
						return true
					}
				}
				return false
			})
			lat = append(lat, at.Sub(start))
		}
		stopDaemon(b, d)
		worst := percentile(lat, 100)
		b.ReportMetric(ms(percentile(lat, 50)), "median-ms")
		b.ReportMetric(ms(worst), "max-ms")
		b.StartTimer()
	}
}
