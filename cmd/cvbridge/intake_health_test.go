package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFailingConnectionShowsOnReadyz: an LMS connection whose polls keep
// failing (its drop folder removed under the running daemon process) makes
// /readyz answer 503 naming it once two polls in a row failed, while
// /metrics keeps the time of its last good poll; with the folder back, the
// next poll clears it and the log says so. Before, /readyz stayed 200 and
// only the dashboard showed the last poll's error.
func TestFailingConnectionShowsOnReadyz(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test: skipped with -short")
	}
	bin, cfgPath, dir, _ := simulatedSetup(t)
	addr := freeAddr(t)
	cfgText, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfgPath, []byte(strings.Replace(string(cfgText), "127.0.0.1:0", addr, 1)), 0o644))
	startDaemonProcess(t, bin, cfgPath, "daemon")

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error() // not listening yet
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return 0, err.Error()
		}
		return resp.StatusCode, string(body)
	}
	lastSuccess := regexp.MustCompile(`(?m)^cvbridge_adapter_last_success_timestamp_seconds\{connection="export"\} (\S+)$`)
	var good string
	waitFor(t, 30*time.Second, func() bool {
		status, body := get("/metrics")
		if m := lastSuccess.FindStringSubmatch(body); status == http.StatusOK && m != nil {
			good = m[1]
			return true
		}
		return false
	})
	status, body := get("/readyz")
	require.Equal(t, http.StatusOK, status, body)

	require.NoError(t, os.RemoveAll(filepath.Join(dir, "drop")))
	waitFor(t, 30*time.Second, func() bool {
		status, body = get("/readyz")
		return status == http.StatusServiceUnavailable
	})
	assert.Regexp(t, `^not ready\nconnection export: its last [0-9]+ polls failed \(since [0-9T:+Z-]+\): .*drop.*\n$`, body)
	_, metrics := get("/metrics")
	m := lastSuccess.FindStringSubmatch(metrics)
	require.NotNil(t, m)
	assert.Equal(t, good, m[1], "the last good poll's time stays")
	assert.Regexp(t, `(?m)^cvbridge_adapter_run_errors_total\{connection="export"\} ([2-9]|[1-9][0-9]+)\n`, metrics)

	require.NoError(t, os.Mkdir(filepath.Join(dir, "drop"), 0o755))
	waitFor(t, 30*time.Second, func() bool {
		status, _ = get("/readyz")
		return status == http.StatusOK
	})
	log, err := os.ReadFile(filepath.Join(dir, "daemon.log"))
	require.NoError(t, err)
	assert.Regexp(t, `poll succeeded again.*connection=export.*failed_polls=([2-9]|[1-9][0-9]+)\b`, string(log))
}
