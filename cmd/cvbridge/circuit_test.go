package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// freeAddr returns a loopback address no one listens on at the moment.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// adminGet fetches path from the admin listener at addr.
func adminGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// TestBacklogAgainst503Daemon is issue 16's finding through the whole
// daemon, in real time: 5,000 results dropped as a CSV export while
// Coachview answers 503. In 30 seconds the daemon sends a few dozen
// requests at most, not one per result per retry round; the open circuit
// shows on `target status`, /readyz and /metrics; once Coachview answers
// 200 the backlog drains, every result delivered exactly once. The retry
// schedule is shortened (2s doubling to 5s) so that the recovery is
// noticed within seconds; upper bounds only, so a loaded machine cannot
// fail it.
func TestBacklogAgainst503Daemon(t *testing.T) {
	const n, outage = 5000, 30 * time.Second
	sim, srv := newSimulator(t)
	sim.SetStatus(http.StatusServiceUnavailable)
	addr := freeAddr(t)
	cfgPath := e2eSetup(t, srv.URL, "    retry:\n      transient:\n        base: 2s\n        cap: 5s\n")
	cfgText, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfgPath, []byte(strings.Replace(string(cfgText), "127.0.0.1:0", addr, 1)), 0o644))
	dropCSV(t, filepath.Dir(cfgPath), "export.csv", goodRows(n))

	d, stop := startDaemon(t, cfgPath)
	defer stop()
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	adminSrv := &http.Server{Handler: d.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = adminSrv.Serve(l) }()
	defer func() { _ = adminSrv.Close() }()

	ctx := context.Background()
	require.Eventually(t, func() bool {
		c, err := d.Store().Counts(ctx, "coachview")
		return err == nil && c[outbox.StatePending]+c[outbox.StateSending] == n
	}, 60*time.Second, 50*time.Millisecond, "the export is queued")
	start := sim.Stats().Requests
	time.Sleep(outage)
	during := sim.Stats().Requests
	t.Logf("%d requests in the first %s of 503s with %d results queued (%d before)", during, outage, n, start)
	assert.LessOrEqual(t, during, 40, "a few dozen requests, not a burst per retry round")

	out, err := runCLI(t, "target", "status", "--config", cfgPath)
	require.NoError(t, err)
	assert.Regexp(t, `coachview\s+active\s+open\s+5000\s`, out)
	assert.Contains(t, out, "Coachview answered 503 Service Unavailable")
	status, body := adminGet(t, addr, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, body, "target coachview: circuit open since ")
	_, body = adminGet(t, addr, "/metrics")
	for _, line := range []string{`cvbridge_target_circuit_open{target="coachview"} 1`, `cvbridge_target_circuit_openings_total{target="coachview"} 1`} {
		assert.True(t, strings.Contains(body, line+"\n"), "/metrics shows %s", line)
	}

	sim.SetStatus(0)
	require.Eventually(t, func() bool { return sim.Stats().Accepted == n }, 3*time.Minute, 100*time.Millisecond, "the backlog drains")
	stats := sim.Stats()
	assert.Equal(t, 0, stats.Duplicates, "no result sent twice")
	assert.Equal(t, n, stats.Requests-stats.ByStatus[http.StatusServiceUnavailable], "one 200 per result, nothing else")
	// The simulator counts a result before the daemon records its 200.
	require.Eventually(t, func() bool {
		counts, err := d.Store().Counts(ctx, "coachview")
		return err == nil && counts[outbox.StateDelivered] == n
	}, time.Minute, 50*time.Millisecond, "every result recorded as delivered")

	out, err = runCLI(t, "target", "status", "--config", cfgPath)
	require.NoError(t, err)
	assert.Regexp(t, `coachview\s+active\s+closed\s+0\s`, out)
	status, _ = adminGet(t, addr, "/readyz")
	assert.Equal(t, http.StatusOK, status)
}
