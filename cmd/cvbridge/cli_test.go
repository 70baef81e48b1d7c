package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/sign"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := dispatch(context.Background(), args, &out)
	return out.String(), err
}

func TestUsageAndUnknownCommand(t *testing.T) {
	out, err := runCLI(t, "help")
	require.NoError(t, err)
	for _, c := range commands() {
		assert.Contains(t, out, c.name)
	}
	_, err = runCLI(t, "frobnicate")
	require.Error(t, err)
	assert.Equal(t, 2, exitCode(err))
}

// TestSignMatchesOpenSSL checks `cvbridge sign` against an independent tool.
func TestSignMatchesOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	body := filepath.Join(dir, "body.xml")
	secret := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(body, []byte("<CoachviewResultaat/>\n"), 0o644))
	require.NoError(t, os.WriteFile(secret, []byte("geheim\n"), 0o600))
	ref, err := exec.Command("sh", "-c", "openssl dgst -sha256 -hmac geheim -binary < "+body+" | base64 -w0").Output()
	require.NoError(t, err)

	out, err := runCLI(t, "sign", "--secret-file", secret, "--hash", "sha256", body)
	require.NoError(t, err)
	assert.Equal(t, sign.Header+": "+string(ref)+"\n", out)
}

// TestOperatorCommands exercises check, render, outbox and target commands
// on a real configuration and store.
func TestOperatorCommands(t *testing.T) {
	sim, srv := newSimulator(t)
	cfgPath := e2eSetup(t, srv.URL, "")
	dir := filepath.Dir(cfgPath)
	dropCSV(t, dir, "export.csv", append(goodRows(3), []string{"P9", "VCA-BASIS", "gisteren", "ja", "", ""}))

	out, err := runCLI(t, "check", "--config", cfgPath)
	require.NoError(t, err, out)
	assert.Contains(t, out, "ok   connection export")
	assert.Contains(t, out, "answers 405 to GET as Coachview does")
	probes := sim.Stats().Requests // check's GET, answered 405

	// render: shows the XML, sends and moves nothing. The export is taken
	// once it has settled (50ms unchanged), so render may show it only on a
	// second try.
	waitFor(t, 10*time.Second, func() bool {
		out, err = runCLI(t, "render", "--config", cfgPath)
		require.NoError(t, err)
		return strings.Contains(out, "<CoachviewResultaat")
	})
	assert.Equal(t, 3, strings.Count(out, "<CoachviewResultaat"), out)
	assert.Contains(t, out, `PersoonExterneId="P0002"`)
	assert.FileExists(t, filepath.Join(dir, "drop", "export.csv"), "render leaves the file in place")
	assert.NoFileExists(t, filepath.Join(dir, "drop", "export.csv.errors.csv"))
	assert.Equal(t, probes, sim.Stats().Requests)

	// Pause the target before the daemon runs: results queue, nothing is sent.
	out, err = runCLI(t, "target", "pause", "--config", cfgPath, "coachview")
	require.NoError(t, err)
	assert.Contains(t, out, "paused")
	d, stop := startDaemon(t, cfgPath)
	waitFor(t, 30*time.Second, func() bool {
		c, err := d.Store().Counts(context.Background(), "coachview")
		return err == nil && c[outbox.StatePending] == 3
	})
	stop()
	assert.Equal(t, probes, sim.Stats().Requests, "a paused target sends nothing")

	out, err = runCLI(t, "target", "status", "--config", cfgPath)
	require.NoError(t, err)
	assert.Contains(t, out, "paused")

	out, err = runCLI(t, "outbox", "list", "--config", cfgPath, "--state", "pending", "--person", "p0001")
	require.NoError(t, err)
	assert.Equal(t, 2, len(strings.Split(strings.TrimSpace(out), "\n")), "header and one row, person matched case-insensitively:\n%s", out)
	id := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1])[0]

	out, err = runCLI(t, "outbox", "cancel", "--config", cfgPath, id)
	require.NoError(t, err)
	assert.Contains(t, out, "cancelled")
	out, err = runCLI(t, "outbox", "show", "--config", cfgPath, id)
	require.NoError(t, err)
	assert.Contains(t, out, "cancelled")
	assert.Contains(t, out, "<CoachviewResultaat")
	// Times in the configuration's time zone, as the XML's dates: 23:30 UTC
	// on 31 December is 1 January in Amsterdam.
	assert.Contains(t, out, "completed:      2026-01-01 00:30:00 CET")
	assert.Contains(t, out, `Datum="2026-01-01"`)
	_, err = runCLI(t, "outbox", "cancel", "--config", cfgPath, id)
	require.ErrorIs(t, err, outbox.ErrState, "a cancelled result cannot be cancelled again")
	out, err = runCLI(t, "outbox", "retry", "--config", cfgPath, id)
	require.NoError(t, err)
	assert.Contains(t, out, "queued again")

	out, err = runCLI(t, "target", "resume", "--config", cfgPath, "coachview")
	require.NoError(t, err)
	assert.Contains(t, out, "target coachview resumed")
	out, err = runCLI(t, "target", "resume", "--config", cfgPath, "coachview")
	require.NoError(t, err)
	assert.Contains(t, out, "target coachview was not paused: nothing changed")
	_, stop = startDaemon(t, cfgPath)
	waitFor(t, 30*time.Second, func() bool { return sim.Stats().Accepted == 3 })
	stop()

	out, err = runCLI(t, "outbox", "list", "--config", cfgPath, "--state", "delivered")
	require.NoError(t, err)
	assert.Equal(t, 4, len(strings.Split(strings.TrimSpace(out), "\n")), out)

	_, err = runCLI(t, "outbox", "list", "--config", cfgPath, "--state", "lost")
	require.Error(t, err)
	_, err = runCLI(t, "outbox", "show", "--config", cfgPath, "999999")
	require.ErrorIs(t, err, outbox.ErrNotFound)
}

func TestCheckReportsUnreachableTarget(t *testing.T) {
	cfgPath := e2eSetup(t, "http://127.0.0.1:1", "")
	out, err := runCLI(t, "check", "--config", cfgPath)
	require.Error(t, err)
	assert.Contains(t, out, "FAIL target coachview: unreachable")
	out, err = runCLI(t, "check", "--offline", "--config", cfgPath)
	require.NoError(t, err, out)
}

func TestCheckNamesConfigMistake(t *testing.T) {
	cfgPath := e2eSetup(t, "http://127.0.0.1:1", "    concurrancy: 3\n")
	_, err := runCLI(t, "check", "--config", cfgPath)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cvbridge.yaml:11: targets.coachview.concurrancy: unknown key (did you mean \"concurrency\"?)")

	cfgPath = e2eSetup(t, "http://127.0.0.1:1", "")
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(cfgPath), "lms.d", "export.yaml"),
		[]byte("type: csvdrop\nsettings:\n  folder: drop\n  delimter: ';'\n"), 0o644))
	_, err = runCLI(t, "check", "--config", cfgPath)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "export.yaml:4")
	assert.Contains(t, err.Error(), "delimter")

	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(cfgPath), "lms.d", "export.yaml"),
		[]byte("type: blackboard\n"), 0o644))
	_, err = runCLI(t, "check", "--config", cfgPath)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown adapter type "blackboard" (available: csvdrop`)
}

// TestSimulatorRefusesForeignHosts: the simulator keeps every result and
// signature it received and shows them at /_sim/accepted; a page of a
// foreign site re-pointed at its address (DNS rebinding) during `make run`
// must not read them. IP addresses and localhost are served.
func TestSimulatorRefusesForeignHosts(t *testing.T) {
	t.Parallel()
	url, _ := simProcess(t, buildBinary(t))
	base := strings.TrimSuffix(url, "/elearning/result.aspx")
	for host, want := range map[string]int{"": http.StatusOK, "localhost": http.StatusOK, "evil.example": http.StatusMisdirectedRequest} {
		req, err := http.NewRequest(http.MethodGet, base+"/_sim/accepted", nil)
		require.NoError(t, err)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		assert.Equal(t, want, resp.StatusCode, "Host %q", host)
	}
}

// TestConnectionsSharingADropFolderAreRefused: a copy of an LMS file left
// in lms.d (export.old.yaml, its name taken from the file) is a second
// connection on the same drop folder; the two would each take part of the
// files, under each other's settings. check and run refuse it, naming both.
func TestConnectionsSharingADropFolderAreRefused(t *testing.T) {
	t.Parallel()
	cfgPath := e2eSetup(t, "http://127.0.0.1:1", "")
	dir := filepath.Dir(cfgPath)
	lms, err := os.ReadFile(filepath.Join(dir, "lms.d", "export.yaml"))
	require.NoError(t, err)
	copied := strings.Replace(string(lms), "name: export\n", "", 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lms.d", "export.old.yaml"), []byte(copied), 0o644))
	for _, args := range [][]string{{"check", "--offline", "--config", cfgPath}, {"run", "--config", cfgPath}} {
		out, err := runCLI(t, args...)
		require.Error(t, err, args[0])
		assert.Contains(t, out+err.Error(), "drop folder "+filepath.Join(dir, "drop")+` is also used by connection`, args[0])
	}
}

// TestResultsOfAnUnconfiguredTarget: a target renamed or removed in the
// configuration left its queued results waiting, sent by nothing, while
// check said "ok" and the daemon, its metrics and readiness said nothing.
// check now warns, naming the target and how many wait.
func TestResultsOfAnUnconfiguredTarget(t *testing.T) {
	t.Parallel()
	cfgPath := e2eSetup(t, "http://127.0.0.1:1", "")
	s, err := sqlite.Open(t.Context(), filepath.Join(filepath.Dir(cfgPath), "outbox.db"))
	require.NoError(t, err)
	require.NoError(t, s.InTx(t.Context(), func(tx outbox.Tx) error {
		for _, p := range []string{"p1", "p2"} {
			if _, err := tx.Enqueue(t.Context(), outbox.NewResult{Target: "coachview-old", Connection: "export", ElearningCode: "e1",
				PersonID: p, Body: []byte("<CoachviewResultaat/>")}, outbox.EnqueuePolicy{ReplacePending: true}); err != nil {
				return err
			}
		}
		return nil
	}))
	require.NoError(t, s.Close())
	out, err := runCLI(t, "check", "--offline", "--config", cfgPath)
	require.NoError(t, err, out)
	assert.Contains(t, out, "WARN store: 2 result(s) wait for target coachview-old, which is not configured")

	// They can be listed; a target that is neither configured nor in the
	// outbox (a typo) is an error, not an empty list.
	out, err = runCLI(t, "outbox", "list", "--config", cfgPath, "--target", "coachview-old")
	require.NoError(t, err)
	assert.Equal(t, 3, len(strings.Split(strings.TrimSpace(out), "\n")), "a header and two rows: %s", out)
	_, err = runCLI(t, "outbox", "list", "--config", cfgPath, "--target", "coachveiw")
	assert.ErrorContains(t, err, `no results of target "coachveiw", which is not configured`)
}
