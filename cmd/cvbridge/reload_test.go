package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// notifySocket collects what the daemon tells systemd.
type notifySocket struct {
	mu    sync.Mutex
	msgs  []string
	times []time.Time // when each of msgs arrived
	path  string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	n := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, conn.Close()) })
	go func() {
		buf := make([]byte, 4096)
		for {
			k, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.times = append(n.times, time.Now())
			n.mu.Unlock()
		}
	}()
	return n
}

func (n *notifySocket) count(msg string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		if strings.Contains(m, msg) {
			c++
		}
	}
	return c
}

// longestGap returns the longest time between two messages containing msg
// that arrived between from and to (from and to count as arrivals).
func (n *notifySocket) longestGap(msg string, from, to time.Time) time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	last, longest := from, time.Duration(0)
	for i, m := range n.msgs {
		at := n.times[i]
		if !strings.Contains(m, msg) || at.Before(from) || at.After(to) {
			continue
		}
		longest = max(longest, at.Sub(last))
		last = at
	}
	return max(longest, to.Sub(last))
}

// TestReloadKeepsTheWatchdogFed: a reload while Coachview takes 5 s to
// answer waits for that request, and the daemon keeps pinging systemd's
// watchdog meanwhile. Found from outside: with a request at the 30 s
// timeout the ping gap was 30.7 s against WatchdogSec=30s, and systemd
// killed the daemon.
func TestReloadKeepsTheWatchdogFed(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test: skipped with -short")
	}
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		_, _ = io.WriteString(w, "OK")
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	bin := binary(t)
	cfgPath := e2eSetup(t, slow.URL, "    timeout: 10s\n")
	dir := filepath.Dir(cfgPath)
	ns := listenNotify(t)
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	const watchdog = 2 * time.Second // the daemon pings every half of it
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path, fmt.Sprintf("WATCHDOG_USEC=%d", watchdog.Microseconds()))
	logFile, err := os.Create(filepath.Join(dir, "daemon.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logFile.Close() })
	waitFor(t, 30*time.Second, func() bool { return ns.count("READY=1") == 1 })

	dropCSV(t, dir, "one.csv", goodRows(1))
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("the result was not sent")
	}
	from := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	waitFor(t, 30*time.Second, func() bool { return ns.count("READY=1") == 2 })
	to := time.Now()
	assert.GreaterOrEqual(t, to.Sub(from), 3*time.Second, "the reload waited for the request in flight")
	assert.Less(t, ns.longestGap("WATCHDOG=1", from, to), watchdog, "the watchdog went hungry during the reload")
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())
}

// TestReloadAndSystemdNotify: SIGHUP with a broken configuration is refused
// and the daemon goes on; SIGHUP with a new LMS connection starts polling
// it; systemd hears READY, RELOADING, STOPPING and watchdog pings.
func TestReloadAndSystemdNotify(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test: skipped with -short")
	}
	bin, cfgPath, dir, base := simulatedSetup(t)
	good, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	ns := listenNotify(t)

	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC=200000")
	logPath := filepath.Join(dir, "daemon.log")
	logFile, err := os.Create(logPath)
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logFile.Close() })
	daemonLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }

	waitFor(t, 30*time.Second, func() bool { return ns.count("READY=1") == 1 })
	dropCSV(t, dir, "one.csv", goodRows(5))
	waitFor(t, 30*time.Second, func() bool { return simStats(t, base).Accepted == 5 })
	adminURL := regexp.MustCompile(`admin listener" address=(http://[0-9.:]+/)`).FindStringSubmatch(daemonLog())
	require.Len(t, adminURL, 2, "the admin listener's address is logged")
	checkAdmin := func(wantDelivered string) {
		t.Helper()
		ready, err := http.Get(adminURL[1] + "readyz")
		require.NoError(t, err)
		_ = ready.Body.Close()
		assert.Equal(t, http.StatusOK, ready.StatusCode)
		// The simulator counts a result before the daemon records the 200.
		waitFor(t, 10*time.Second, func() bool {
			return strings.Contains(metricsText(t, adminURL[1]), `cvbridge_results_delivered_total{target="coachview"} `+wantDelivered+"\n")
		})
	}
	checkAdmin("5")
	waitFor(t, 10*time.Second, func() bool { return ns.count("WATCHDOG=1") >= 2 })

	// A foreign site's page that re-points its name at the admin listener
	// (DNS rebinding) is refused before anything runs.
	req, err := http.NewRequest(http.MethodPost, adminURL[1]+"results/1/cancel", nil)
	require.NoError(t, err)
	req.Host = "rebind.attacker.example"
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)

	// A typo: refused, with file, line and key; the daemon carries on.
	require.NoError(t, os.WriteFile(cfgPath, append(good, []byte("    concurency: 3\n")...), 0o644))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(daemonLog(), "reload refused") })
	assert.Contains(t, daemonLog(), "cvbridge.yaml:")
	assert.Contains(t, daemonLog(), "concurency: unknown key")
	more := make([][]string, 0, 3)
	for i := range 3 {
		more = append(more, []string{fmt.Sprintf("R%d", i), "VCA-BASIS", "01-03-2026", "ja", "7", ""})
	}
	dropCSV(t, dir, "two.csv", more)
	waitFor(t, 30*time.Second, func() bool { return simStats(t, base).Accepted == 8 })

	// A valid change: a second LMS connection with its own drop folder.
	require.NoError(t, os.WriteFile(cfgPath, good, 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "drop2"), 0o755))
	second, err := os.ReadFile(filepath.Join(dir, "lms.d", "export.yaml"))
	require.NoError(t, err)
	second = []byte(strings.NewReplacer("name: export", "name: second", "folder: drop", "folder: drop2").Replace(string(second)))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lms.d", "second.yaml"), second, 0o644))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(daemonLog(), "configuration reloaded") })
	rows := make([][]string, 0, 4)
	for i := range 4 {
		rows = append(rows, []string{fmt.Sprintf("S%d", i), "BHV", "01-03-2026", "ja", "7", ""})
	}
	tmp := filepath.Join(dir, "drop2", ".x.part")
	var b strings.Builder
	b.WriteString("Deelnemer;Cursuscode;Datum afgerond;Geslaagd;Cijfer;Opmerking\n")
	for _, r := range rows {
		b.WriteString(strings.Join(r, ";") + "\n")
	}
	require.NoError(t, os.WriteFile(tmp, []byte(b.String()), 0o644))
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, "drop2", "three.csv")))
	waitFor(t, 30*time.Second, func() bool { return simStats(t, base).Accepted == 12 })
	checkAdmin("12") // the same listener, now serving the reloaded daemon; the counters carried over
	assert.Contains(t, metricsText(t, adminURL[1]), `cvbridge_results_enqueued_total{connection="second",outcome="queued"} 4`)

	// The second connection removed again: its series leave /metrics, the rest carry on.
	require.NoError(t, os.Remove(filepath.Join(dir, "lms.d", "second.yaml")))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	waitFor(t, 30*time.Second, func() bool { return strings.Count(daemonLog(), "configuration reloaded") == 2 })
	checkAdmin("12")
	body := metricsText(t, adminURL[1])
	assert.False(t, strings.Contains(body, `connection="second"`), "the removed connection's series are still served")
	assert.True(t, strings.Contains(body, `connection="export"`), "the remaining connection's series are gone")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())
	assert.Equal(t, 3, ns.count("RELOADING=1"))
	assert.Equal(t, 4, ns.count("READY=1"), "ready at start, after the refused and after each done reload")
	assert.Equal(t, 1, ns.count("STOPPING=1"))
	assert.Zero(t, simStats(t, base).Duplicates)
}

// metricsText returns the exposition the admin listener at adminURL serves.
func metricsText(t *testing.T, adminURL string) string {
	t.Helper()
	resp, err := http.Get(adminURL + "metrics")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}
