package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/daemon"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// usePostgres switches a configuration made by e2eSetup to PostgreSQL at dsn.
func usePostgres(t testing.TB, cfgPath, dsn string) {
	t.Helper()
	dir := filepath.Dir(cfgPath)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dsn"), []byte(dsn+"\n"), 0o600))
	text, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	text = []byte(strings.Replace(string(text), "storage:\n  path: outbox.db\n", "storage:\n  driver: postgres\n  dsn_file: dsn\n", 1))
	require.NoError(t, os.WriteFile(cfgPath, text, 0o644))
}

// withTarget appends delivery settings to the configuration's target and
// points it at base.
func withTarget(t *testing.T, cfgPath, base, extra string) {
	t.Helper()
	text, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	s := strings.Replace(string(text), "http://placeholder", base, 1) + extra
	require.NoError(t, os.WriteFile(cfgPath, []byte(s), 0o644))
}

// startDaemonProcess runs `cvbridge run`, logging to a file in the
// configuration's directory, with env added to its environment.
func startDaemonProcess(t *testing.T, bin, cfgPath, name string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), env...)
	logFile, err := os.Create(filepath.Join(filepath.Dir(cfgPath), name+".log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logFile.Close()
		if t.Failed() {
			tail, _ := os.ReadFile(logFile.Name())
			if len(tail) > 4000 {
				tail = tail[len(tail)-4000:]
			}
			t.Logf("%s log (end):\n%s", name, tail)
		}
	})
	return cmd
}

// TestTwoDaemonsOnePostgres: two daemons share one PostgreSQL outbox and one
// drop folder. They drain 10,000 results together, each delivered once; one
// is killed mid-way and the other finishes, and then also takes over polling.
func TestTwoDaemonsOnePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test: skipped with -short")
	}
	const n, concurrency, recordAhead = 10000, 2, 8
	bin := binary(t)
	cfgPath := e2eSetup(t, "http://placeholder", "")
	dir := filepath.Dir(cfgPath)
	base := startSimProcess(t, bin, filepath.Join(dir, "secret"))
	usePostgres(t, cfgPath, testdb.Postgres(t))
	withTarget(t, cfgPath, base, fmt.Sprintf("    concurrency: %d\n    record_ahead: %d\n    timeout: 2s\n    connect_timeout: 1s\n    lease: 3s\n", concurrency, recordAhead))
	out, err := exec.Command(bin, "migrate", "--config", cfgPath).CombinedOutput()
	require.NoError(t, err, string(out))

	a := startDaemonProcess(t, bin, cfgPath, "daemon-a")
	b := startDaemonProcess(t, bin, cfgPath, "daemon-b")
	dropCSV(t, dir, "export.csv", goodRows(n))

	waitFor(t, 120*time.Second, func() bool { return simStats(t, base).Accepted >= n/3 })
	require.NoError(t, a.Process.Signal(syscall.SIGKILL))
	_ = a.Wait()
	t.Logf("daemon a killed at %d accepted", simStats(t, base).Accepted)
	waitFor(t, 180*time.Second, func() bool { return simStats(t, base).Accepted >= n })

	// Polling fails over: b alone takes the next file.
	more := make([][]string, 0, 50)
	for i := range 50 {
		more = append(more, []string{fmt.Sprintf("Q%04d", i), "BHV", "01-03-2026", "ja", "8", ""})
	}
	dropCSV(t, dir, "export-2.csv", more)
	waitFor(t, 60*time.Second, func() bool { return simStats(t, base).Accepted >= n+50 })

	require.NoError(t, b.Process.Signal(syscall.SIGTERM))
	require.NoError(t, b.Wait())
	stats := simStats(t, base)
	inFlight := concurrency * (recordAhead + 1)
	t.Logf("two daemons: %d results, %d requests, %d duplicates (bound %d)", n+50, stats.Requests, stats.Duplicates, inFlight)
	assert.Equal(t, n+50, stats.Accepted, "every result delivered")
	assert.LessOrEqual(t, stats.Duplicates, inFlight, "only requests in flight at the kill may repeat")

	logA, err := os.ReadFile(filepath.Join(dir, "daemon-a.log"))
	require.NoError(t, err)
	logB, err := os.ReadFile(filepath.Join(dir, "daemon-b.log"))
	require.NoError(t, err)
	assert.Contains(t, string(logA), "msg=delivery", "daemon a delivered some")
	assert.Contains(t, string(logB), "msg=delivery", "daemon b delivered some")
}

// TestTwoDaemonsWithSkewedClocks: two daemons share one PostgreSQL outbox
// and one drop folder; one's clock runs two minutes ahead, more than the
// lease (90 s). Both keep to the database server's clock, so neither takes
// the other's live leases and the rows either one enqueues are due for
// both: every result is sent exactly once, both deliver, and the daemon
// with the wrong clock says so in its log. Found from outside: with the
// same skew, 102 of 180 results were sent twice.
func TestTwoDaemonsWithSkewedClocks(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test: skipped with -short")
	}
	const n = 6000
	bin := binary(t)
	cfgPath := e2eSetup(t, "http://placeholder", "")
	dir := filepath.Dir(cfgPath)
	base := startSimProcess(t, bin, filepath.Join(dir, "secret"))
	usePostgres(t, cfgPath, testdb.Postgres(t))
	withTarget(t, cfgPath, base, "")
	out, err := exec.Command(bin, "migrate", "--config", cfgPath).CombinedOutput()
	require.NoError(t, err, string(out))

	right := startDaemonProcess(t, bin, cfgPath, "daemon-right")
	ahead := startDaemonProcess(t, bin, cfgPath, "daemon-ahead", clockOffsetEnv+"=2m")
	waitRunning(t, filepath.Join(dir, "daemon-right.log"), 1)
	waitRunning(t, filepath.Join(dir, "daemon-ahead.log"), 1)
	dropCSV(t, dir, "export.csv", goodRows(n))
	waitFor(t, 180*time.Second, func() bool { return simStats(t, base).Accepted >= n })
	for _, d := range []*exec.Cmd{right, ahead} {
		require.NoError(t, d.Process.Signal(syscall.SIGTERM))
		require.NoError(t, d.Wait())
	}

	stats := simStats(t, base)
	t.Logf("skewed clocks: %d results, %d requests, %d duplicates", n, stats.Requests, stats.Duplicates)
	assert.Equal(t, n, stats.Accepted, "every result delivered")
	assert.Zero(t, stats.Duplicates, "no result sent twice")
	logAhead, err := os.ReadFile(filepath.Join(dir, "daemon-ahead.log"))
	require.NoError(t, err)
	assert.Contains(t, string(logAhead), "clock differs from the database server's")
	logRight, err := os.ReadFile(filepath.Join(dir, "daemon-right.log"))
	require.NoError(t, err)
	assert.NotContains(t, string(logRight), "clock differs from the database server's")
	assert.Contains(t, string(logAhead), "msg=delivery", "the daemon ahead delivered some")
	assert.Contains(t, string(logRight), "msg=delivery", "the daemon on time delivered some")
}

// TestPostgresRestartMidDrain: the database restarts while the daemon
// delivers; the daemon keeps running, reconnects, and loses nothing.
func TestPostgresRestartMidDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test: skipped with -short")
	}
	const n = 2000
	bin := binary(t)
	pg := testdb.PrivatePostgres(t)
	cfgPath := e2eSetup(t, "http://placeholder", "")
	dir := filepath.Dir(cfgPath)
	base := startSimProcess(t, bin, filepath.Join(dir, "secret"))
	usePostgres(t, cfgPath, pg.DSN())
	// The rate limit stretches the drain over seconds, so that the
	// restart comes while results are still being delivered on any machine.
	withTarget(t, cfgPath, base, "    record_ahead: 0\n    rate_limit: 400\n    timeout: 2s\n    connect_timeout: 1s\n    lease: 3s\n    retry:\n      transient:\n        base: 200ms\n        cap: 1s\n")

	d := startDaemonProcess(t, bin, cfgPath, "daemon")
	dropCSV(t, dir, "export.csv", goodRows(n))
	waitFor(t, 60*time.Second, func() bool { return simStats(t, base).Accepted >= n/4 })
	pg.Stop()
	stopped := simStats(t, base).Accepted
	require.Less(t, stopped, n, "the database stopped before the drain ended")
	time.Sleep(2 * time.Second) // the outage: the daemon meets errors meanwhile
	pg.Start()
	t.Logf("database stopped at %d accepted, started again at %d", stopped, simStats(t, base).Accepted)
	waitFor(t, 120*time.Second, func() bool { return simStats(t, base).Accepted >= n })

	require.NoError(t, d.Process.Signal(syscall.SIGTERM))
	require.NoError(t, d.Wait(), "the daemon survived the restart and stops cleanly")
	stats := simStats(t, base)
	assert.Equal(t, n, stats.Accepted)
	assert.LessOrEqual(t, stats.Duplicates, 2, "at most the requests whose 200 could not be recorded during the outage")
}

// TestMoveSQLiteToPostgres: `cvbridge storage copy` moves a used SQLite
// outbox into PostgreSQL; the daemon on PostgreSQL then knows every result
// and every file it had processed.
func TestMoveSQLiteToPostgres(t *testing.T) {
	sim, srv := newSimulator(t)
	cfgPath := e2eSetup(t, srv.URL, "")
	dir := filepath.Dir(cfgPath)
	rows := append(goodRows(20), []string{"P9", "VCA-BASIS", "01-03-2024", "ja", "7", strings.Repeat("x", 300)})
	dropCSV(t, dir, "export.csv", rows)
	_, stop := startDaemon(t, cfgPath)
	waitFor(t, 30*time.Second, func() bool { return sim.Stats().Accepted == 20 })
	stop()

	sqlitePath := filepath.Join(dir, "outbox.db")
	usePostgres(t, cfgPath, testdb.Postgres(t))
	out, err := runCLI(t, "storage", "copy", "--config", cfgPath, "--from", sqlitePath)
	require.NoError(t, err)
	assert.Contains(t, out, "copied")
	_, err = runCLI(t, "storage", "copy", "--config", cfgPath, "--from", sqlitePath)
	require.Error(t, err, "a non-empty target is refused")

	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)
	store, err := daemon.OpenStore(context.Background(), cfg, clock.System{})
	require.NoError(t, err)
	counts, err := store.Counts(context.Background(), "")
	require.NoError(t, err)
	require.NoError(t, store.Close())
	assert.Equal(t, 20, counts[outbox.StateDelivered])
	assert.Equal(t, 1, counts[outbox.StateRejected])

	// The same export dropped again is recognised from the copied marks.
	dropCSV(t, dir, "export-again.csv", rows)
	d, stop := startDaemon(t, cfgPath)
	waitFor(t, 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "drop", "processed", "export-again.csv"))
		return err == nil
	})
	counts, err = d.Store().Counts(context.Background(), "")
	require.NoError(t, err)
	stop()
	assert.Equal(t, 20, counts[outbox.StateDelivered])
	assert.Equal(t, 0, counts[outbox.StatePending])
	assert.Equal(t, 20, sim.Stats().Requests, "nothing sent again")
}
