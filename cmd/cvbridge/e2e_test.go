package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/daemon"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/result/xsdschema"
	"github.com/cvbridge/cvbridge/bridge/sign"
	"github.com/cvbridge/cvbridge/bridge/simulator"
	"github.com/cvbridge/cvbridge/bridge/source"
)

const e2eSecret = "e2e-shared-secret"

// e2eSetup lays out a configuration directory whose target is url and whose
// one connection is a CSV drop folder, and returns the main file's path.
func e2eSetup(t *testing.T, url string, targetExtra string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "lms.d"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "drop"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "secret"), []byte(e2eSecret+"\n"), 0o600))
	main := fmt.Sprintf(`storage:
  path: outbox.db
admin:
  listen: 127.0.0.1:0
targets:
  coachview:
    url: %s/elearning/result.aspx?plugin=e2e
    secret_file: secret
    hash: sha512
    poll_interval: 200ms
%s`, url, targetExtra)
	lms := `name: export
type: csvdrop
schedule: "@every 1s"
settings:
  folder: drop
  settle: 50ms
  columns:
    person: Deelnemer
    elearningcode: Cursuscode
    completed_at: Datum afgerond
    passed: Geslaagd
    result_decimal: Cijfer
    remark: Opmerking
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cvbridge.yaml"), []byte(main), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lms.d", "export.yaml"), []byte(lms), 0o644))
	return filepath.Join(dir, "cvbridge.yaml")
}

// simulatedSetup prepares a process-level test: the cvbridge binary, the
// configuration e2eSetup writes (its folder is dir) and a simulator process
// at base that its target posts to.
func simulatedSetup(t *testing.T) (bin, cfgPath, dir, base string) {
	t.Helper()
	bin = binary(t)
	cfgPath = e2eSetup(t, "http://placeholder", "")
	dir = filepath.Dir(cfgPath)
	base = startSimProcess(t, bin, filepath.Join(dir, "secret"))
	withTarget(t, cfgPath, base, "")
	return bin, cfgPath, dir, base
}

// dropCSV writes an export the way an LMS does: aside, then renamed into place.
func dropCSV(t *testing.T, dir, name string, rows [][]string) {
	t.Helper()
	tmp := filepath.Join(dir, "drop", "."+name+".part")
	f, err := os.Create(tmp)
	require.NoError(t, err)
	w := csv.NewWriter(f)
	w.Comma = ';'
	require.NoError(t, w.Write([]string{"Deelnemer", "Cursuscode", "Datum afgerond", "Geslaagd", "Cijfer", "Opmerking"}))
	require.NoError(t, w.WriteAll(rows))
	require.NoError(t, f.Close())
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, "drop", name)))
}

// goodRows returns n valid result rows for persons P0000…; Dutch style.
func goodRows(n int) [][]string {
	rows := make([][]string, 0, n)
	for i := range n {
		passed := "ja"
		if i%7 == 0 {
			passed = "nee"
		}
		completed := "30-12-2025 14:00"
		if i == 1 {
			completed = "2025-12-31T23:30:00Z" // 1 January in Amsterdam
		}
		rows = append(rows, []string{fmt.Sprintf("P%04d", i), "VCA-BASIS", completed, passed, fmt.Sprintf("%d,%d", 4+i%7, i%10), ""})
	}
	return rows
}

func startDaemon(t *testing.T, cfgPath string) (*daemon.Daemon, func()) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, err := daemon.Open(context.Background(), cfg, func(cfg *config.Config, conn *config.Connection) (source.Built, error) {
		return buildSource(cfg, conn, log)
	}, daemon.Options{Logger: log})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return d, func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, d.Close())
	}
}

func newSimulator(t *testing.T) (*simulator.Simulator, *httptest.Server) {
	t.Helper()
	schema, err := xsdschema.Bundled()
	require.NoError(t, err)
	t.Cleanup(schema.Close)
	sim := simulator.New(simulator.Options{Secret: []byte(e2eSecret), Algorithm: sign.SHA512, Validate: schema.Validate})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

// TestCSVToCoachview drives a CSV export with good, malformed and invalid
// rows through the whole daemon to a Coachview that checks signatures and
// the XSD: every good row arrives exactly once, nothing else is sent, and
// every bad row is reported.
func TestCSVToCoachview(t *testing.T) {
	const n = 300
	sim, srv := newSimulator(t)
	cfgPath := e2eSetup(t, srv.URL, "")
	dir := filepath.Dir(cfgPath)

	rows := goodRows(n)
	// Malformed CSV rows: reported in the errors file, the rest goes on.
	rows = append(rows,
		[]string{"P9001", "VCA-BASIS", "31-02-2024", "ja", "7", ""},       // no such date
		[]string{"P9002", "VCA-BASIS", "01-03-2024", "misschien", "", ""}, // unknown pass value
		[]string{"P9003", "VCA-BASIS", "01-03-2024", "ja", "zeven", ""},   // not a number
	)
	// Rows the CSV accepts but Coachview's rules refuse: stored as rejected,
	// never sent, and listed in the same errors file as the malformed rows.
	rows = append(rows,
		[]string{"P9004", "VCA-BASIS", "01-03-2024", "ja", "7", strings.Repeat("x", 256)},
		[]string{strings.Repeat("P", 51), "VCA-BASIS", "01-03-2024", "ja", "7", ""},
		[]string{"P9006", "VCA-BASIS", "01-03-2024", "ja", "7", "bel\x01"},
	)
	dropCSV(t, dir, "export-1.csv", rows)

	d, stop := startDaemon(t, cfgPath)
	require.Eventually(t, func() bool { return sim.Stats().Accepted >= n }, 60*time.Second, 20*time.Millisecond)

	// The same content dropped again under another name is not enqueued twice.
	dropCSV(t, dir, "export-1-again.csv", rows)
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(dir, "drop", "processed", "export-1-again.csv"))
		return err == nil
	}, 30*time.Second, 20*time.Millisecond)

	ctx := context.Background()
	counts, err := d.Store().Counts(ctx, "coachview")
	require.NoError(t, err)
	rejected, err := d.Store().List(ctx, outbox.Filter{State: outbox.StateRejected})
	require.NoError(t, err)
	stop()

	stats := sim.Stats()
	assert.Equal(t, n, stats.Accepted, "every good row accepted")
	assert.Equal(t, 0, stats.Duplicates, "no pair sent twice")
	assert.Equal(t, n, stats.Requests, "nothing else sent: no retries, no invalid bodies")
	assert.Equal(t, n, counts[outbox.StateDelivered])
	assert.Equal(t, 3, counts[outbox.StateRejected])
	require.Len(t, rejected, 3)
	byPerson := map[string]string{}
	for _, r := range rejected {
		byPerson[r.PersonID] = r.LastError
	}
	assert.Contains(t, byPerson["P9004"], "Opmerking")
	assert.Contains(t, byPerson[strings.Repeat("P", 51)], "PersoonExterneId")
	assert.Contains(t, byPerson["P9006"], "control character")

	seen := map[string]bool{}
	for _, r := range sim.Accepted() {
		assert.True(t, sign.Verify(sign.SHA512, []byte(e2eSecret), r.Body, r.Signature), "signature of %s", r.PersonID)
		seen[r.PersonID] = true
		if r.PersonID == "P0001" {
			// 23:30 UTC on 31 December is 1 January in Amsterdam.
			assert.Contains(t, string(r.Body), `Datum="2026-01-01"`)
			assert.Contains(t, string(r.Body), `ResultaatDecimaal="5.1"`)
		}
	}
	for i := range n {
		assert.True(t, seen[fmt.Sprintf("P%04d", i)], "P%04d delivered", i)
	}

	// One report per file: every row that will not be sent, in line order,
	// whether the CSV or the checks refused it.
	errorsFile, err := os.ReadFile(filepath.Join(dir, "drop", "processed", "export-1.csv.errors.csv"))
	require.NoError(t, err)
	er := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(errorsFile), "\ufeff")))
	er.Comma = ';'
	recs, err := er.ReadAll()
	require.NoError(t, err)
	var lines []string
	for _, rec := range recs[1:] {
		lines = append(lines, rec[0])
	}
	assert.Equal(t, []string{
		fmt.Sprint(n + 2), fmt.Sprint(n + 3), fmt.Sprint(n + 4), fmt.Sprint(n + 5), fmt.Sprint(n + 6), fmt.Sprint(n + 7),
	}, lines, "errors file lines")
	for _, want := range []string{"31-02-2024", "misschien", "zeven", "Opmerking: is 256 characters long", "PersoonExterneId: is 51 characters long", "control character U+0001"} {
		assert.Contains(t, string(errorsFile), want)
	}
}

// TestCoachviewOutageThenRecovery: Coachview answers 503 for a while; the
// daemon keeps the results and delivers each once when it recovers.
func TestCoachviewOutageThenRecovery(t *testing.T) {
	sim, srv := newSimulator(t)
	sim.FailFirst(5, 503)
	sim.SetRetryAfter("1")
	cfgPath := e2eSetup(t, srv.URL, "    retry:\n      transient:\n        base: 100ms\n        cap: 500ms\n")
	dropCSV(t, filepath.Dir(cfgPath), "export.csv", goodRows(20))

	_, stop := startDaemon(t, cfgPath)
	require.Eventually(t, func() bool { return sim.Stats().Accepted == 20 }, 60*time.Second, 20*time.Millisecond)
	stop()
	stats := sim.Stats()
	assert.Equal(t, 5, stats.ByStatus[503])
	assert.Equal(t, 0, stats.Duplicates)
}
