package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/simulator"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// binary builds cvbridge once for the process-level tests.
func binary(t *testing.T) string {
	t.Helper()
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
	require.NoError(t, buildErr)
	return builtBin
}

// startSimProcess runs `cvbridge sim` on a free port and returns its base URL.
func startSimProcess(t *testing.T, bin, secretFile string) string {
	t.Helper()
	cmd := exec.Command(bin, "sim", "--listen", "127.0.0.1:0", "--secret-file", secretFile, "--quiet")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	// "Coachview simulator on http://127.0.0.1:PORT/elearning/result.aspx …"
	start := strings.Index(line, "http://")
	require.GreaterOrEqual(t, start, 0, "simulator banner: %q", line)
	rest := line[start:]
	return rest[:strings.Index(rest, "/elearning")]
}

func simStats(t *testing.T, base string) simulator.Stats {
	t.Helper()
	resp, err := http.Get(base + "/_sim/stats")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	var s simulator.Stats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&s))
	return s
}

// TestKillDuringDelivery kills the daemon with SIGKILL several times while
// it delivers a few thousand results, restarting it each time: every result
// arrives, and a result is sent twice at most once per request that was in
// flight at a kill.
func TestKillDuringDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level crash test: skipped with -short")
	}
	const (
		n           = 3000
		kills       = 3
		concurrency = 2
	)
	bin := binary(t)
	// Short timeout and lease: after a kill, rows the dead daemon had
	// claimed come back within seconds, not minutes.
	cfgPath := e2eSetup(t, "http://placeholder", "")
	dir := filepath.Dir(cfgPath)
	base := startSimProcess(t, bin, filepath.Join(dir, "secret"))
	cfgText, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	cfgText = []byte(strings.Replace(string(cfgText), "http://placeholder", base, 1) +
		fmt.Sprintf("    concurrency: %d\n    record_ahead: 0\n    timeout: 2s\n    connect_timeout: 1s\n    lease: 3s\n", concurrency))
	require.NoError(t, os.WriteFile(cfgPath, cfgText, 0o644))
	dropCSV(t, dir, "export.csv", goodRows(n))

	run := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "--config", cfgPath)
		logFile, err := os.OpenFile(filepath.Join(dir, "daemon.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		require.NoError(t, err)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logFile.Close() })
		return cmd
	}

	for k := 1; k <= kills; k++ {
		cmd := run()
		threshold := k * n / (kills + 1)
		waitFor(t, 60*time.Second, func() bool { return simStats(t, base).Accepted >= threshold })
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		t.Logf("kill %d at %d accepted", k, simStats(t, base).Accepted)
	}
	cmd := run()
	waitRunning(t, filepath.Join(dir, "daemon.log"), kills+1)
	waitFor(t, 120*time.Second, func() bool { return simStats(t, base).Accepted >= n })
	// Let anything still queued by mistake show up before counting.
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "a SIGTERM ends the daemon cleanly")

	stats := simStats(t, base)
	t.Logf("crash test: %d results, %d kills, %d requests, %d duplicates (bound %d)",
		n, kills, stats.Requests, stats.Duplicates, kills*concurrency)
	assert.Equal(t, n, stats.Accepted, "every result delivered, none lost")
	assert.LessOrEqual(t, stats.Duplicates, kills*concurrency, "duplicates at most the requests in flight at the kills")

	out, err := exec.Command(bin, "outbox", "list", "--config", cfgPath, "--state", "pending").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(string(out)), "\n")+1, "nothing left pending:\n%s", out)
}

// waitFor polls cond until it holds or the deadline passes. It bounds a wait
// for a process; it asserts nothing about speed.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	waitEvery(t, limit, 20*time.Millisecond, cond)
}

// waitEvery is waitFor checking cond every interval, for a wait that must
// end soon after cond first holds.
func waitEvery(t *testing.T, limit, interval time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached within %s", limit)
		}
		time.Sleep(interval)
	}
}

// waitRunning waits until the daemon log at path records its runs-th start
// ("cvbridge running"): a SIGTERM before the daemon has set up its signal
// handling would kill it rather than stop it. A drain may finish before a
// daemon started after it is up.
func waitRunning(t *testing.T, path string, runs int) {
	t.Helper()
	waitFor(t, time.Minute, func() bool {
		b, err := os.ReadFile(path)
		return err == nil && bytes.Count(b, []byte(`msg="cvbridge running"`)) >= runs
	})
}

// TestSIGTERMDuringDelivery: a SIGTERM while results are being sent stops
// the daemon cleanly: requests in flight finish, nothing is left claimed,
// and the rest is sent after a restart without a single duplicate.
func TestSIGTERMDuringDelivery(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test: skipped with -short")
	}
	const n = 2000
	bin, cfgPath, dir, base := simulatedSetup(t)
	dropCSV(t, dir, "export.csv", goodRows(n))

	d := startDaemonProcess(t, bin, cfgPath, "daemon")
	waitFor(t, 60*time.Second, func() bool { return simStats(t, base).Accepted >= n/3 })
	require.NoError(t, d.Process.Signal(syscall.SIGTERM))
	require.NoError(t, d.Wait(), "SIGTERM ends the daemon with exit status 0")

	out, err := exec.Command(bin, "outbox", "list", "--config", cfgPath, "--state", "sending").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Equal(t, 1, len(strings.Split(strings.TrimSpace(string(out)), "\n")), "nothing left claimed:\n%s", out)
	stopped := simStats(t, base).Accepted
	assert.Less(t, stopped, n, "the daemon stopped mid-drain")

	d = startDaemonProcess(t, bin, cfgPath, "daemon-2")
	waitRunning(t, filepath.Join(dir, "daemon-2.log"), 1)
	waitFor(t, 60*time.Second, func() bool { return simStats(t, base).Accepted >= n })
	require.NoError(t, d.Process.Signal(syscall.SIGTERM))
	require.NoError(t, d.Wait())
	stats := simStats(t, base)
	assert.Equal(t, n, stats.Accepted)
	assert.Zero(t, stats.Duplicates, "a graceful stop repeats nothing")
}

// TestSecondDaemonOnOneSQLiteOutboxIsRefused: a second `cvbridge run` whose
// configuration names the same SQLite outbox (a copied configuration with
// the packaged absolute path, its target a test Coachview) started without
// a word and sent most of the production queue to its own target. It is
// refused now, naming the first daemon's pid; once that one is killed
// (kill -9: the kernel drops its lock), the other starts.
func TestSecondDaemonOnOneSQLiteOutboxIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("runs daemon processes")
	}
	t.Parallel()
	bin := buildBinary(t)
	first := e2eSetup(t, "http://127.0.0.1:1", "")
	outboxPath := filepath.Join(filepath.Dir(first), "outbox.db")
	second := e2eSetup(t, "http://127.0.0.1:2", "")
	text, err := os.ReadFile(second)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(second, []byte(strings.Replace(string(text), "path: outbox.db", "path: "+outboxPath, 1)), 0o644))

	d1 := startDaemonProcess(t, bin, first, "first")
	waitFor(t, 30*time.Second, func() bool {
		b, err := os.ReadFile(outboxPath + ".lock")
		return err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(d1.Process.Pid)
	})
	out, err := exec.Command(bin, "run", "--config", second).CombinedOutput()
	require.Error(t, err, "the second daemon ran: %s", out)
	assert.Contains(t, string(out), "another cvbridge daemon (pid "+strconv.Itoa(d1.Process.Pid)+") runs on the outbox "+outboxPath)

	require.NoError(t, d1.Process.Kill())
	_, _ = d1.Process.Wait()
	d2 := startDaemonProcess(t, bin, second, "second")
	waitFor(t, 30*time.Second, func() bool {
		b, err := os.ReadFile(outboxPath + ".lock")
		return err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(d2.Process.Pid)
	})
}
