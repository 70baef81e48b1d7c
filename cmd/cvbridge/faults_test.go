package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/sign"
	"github.com/cvbridge/cvbridge/bridge/simulator"
)

// The fault suite: what happens to queued results when Coachview, the
// database or the disk misbehaves. The tests here finish in seconds and run
// in `make test`; the kill -9 rounds over a 10,000-result drain
// (faults_kill_test.go) run in `make faults`.

// faultEnv is a SQLite outbox on a fake clock, the simulator (signature and
// XSD checked) and a Dispatcher between them.
type faultEnv struct {
	t     *testing.T
	ctx   context.Context
	clk   *clock.Fake
	store *sqlite.Store
	sim   *simulator.Simulator
	d     *delivery.Dispatcher
	bt    bodyTemplate
	logs  *strings.Builder
}

var faultT0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// newFaultEnv opens the outbox at dbPath and a dispatcher with set.
func newFaultEnv(t *testing.T, dbPath string, set delivery.Settings) *faultEnv {
	t.Helper()
	clk := clock.NewFake(faultT0)
	store, err := sqlite.Open(t.Context(), dbPath, sqlite.WithClock(clk))
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	sim, srv := newSimulator(t)
	signer, err := sign.NewSigner(sign.SHA512, []byte(e2eSecret))
	require.NoError(t, err)
	e := &faultEnv{t: t, ctx: t.Context(), clk: clk, store: store, sim: sim, bt: newBodyTemplate(t), logs: &strings.Builder{}}
	e.d, err = delivery.New(delivery.Target{Name: "coachview", URL: srv.URL + "/elearning/result.aspx", Signer: signer, Settings: set},
		store, delivery.Options{Clock: clk, Jitter: func() float64 { return 0 }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Owner: "faults"})
	require.NoError(t, err)
	return e
}

// faultSettings are the defaults with a short request timeout.
func faultSettings(concurrency int) delivery.Settings {
	s := delivery.DefaultSettings()
	s.Concurrency = concurrency
	s.Timeout, s.ConnectTimeout = 5*time.Second, 2*time.Second
	return s
}

// enqueue queues n results for persons prefix0000000….
func (e *faultEnv) enqueue(prefix string, n int) {
	e.t.Helper()
	enqueueAll(e.t, e.store, "coachview", e.bt, persons(prefix, n))
}

// counts returns the rows per state.
func (e *faultEnv) counts() map[outbox.State]int {
	e.t.Helper()
	c, err := e.store.Counts(e.ctx, "coachview")
	require.NoError(e.t, err)
	return c
}

// step runs one delivery step and moves the clock to the next due row
// (the probe time while paused or while the circuit is open), or by at
// most maxJump; it returns false when nothing is left to send.
func (e *faultEnv) step(maxJump time.Duration) bool {
	e.t.Helper()
	_, err := e.d.RunDue(e.ctx)
	require.NoError(e.t, err)
	next, ok, err := e.store.NextDue(e.ctx, "coachview")
	require.NoError(e.t, err)
	if !ok {
		return false
	}
	st, err := e.store.TargetState(e.ctx, "coachview")
	require.NoError(e.t, err)
	if st.Paused && st.NextProbeAt.After(next) {
		next = st.NextProbeAt
	}
	if c := e.d.Circuit(); c.Open && c.NextProbe.After(next) {
		next = c.NextProbe
	}
	if limit := e.clk.Now().Add(maxJump); next.After(limit) {
		next = limit
	}
	if next.After(e.clk.Now()) {
		e.clk.Set(next)
	}
	return true
}

// attemptsWithin is how many attempts the transient schedule s makes for
// one result within outage, the first at its start, without jitter: the
// delays double from base up to cap.
func attemptsWithin(s delivery.TransientRetry, outage time.Duration) int {
	attempts, at, delay := 1, time.Duration(0), s.Base
	for {
		at += delay
		if at >= outage {
			return attempts
		}
		attempts++
		delay = min(2*delay, s.Cap)
	}
}

// TestFaultCoachviewOutage: Coachview answers 503 for three (compressed)
// days. The first 5 failures open the target's circuit (with 4 workers, up
// to 3 more requests were in flight); from then on one probe goes out as
// the transient schedule says (30s doubling up to an hour, no jitter),
// nothing is parked, and when Coachview recovers each result is delivered once.
func TestFaultCoachviewOutage(t *testing.T) {
	const n, outage = 20, 3 * 24 * time.Hour
	set := faultSettings(4)
	e := newFaultEnv(t, filepath.Join(t.TempDir(), "outbox.db"), set)
	e.enqueue("O", n)
	e.sim.SetStatus(503)
	for e.clk.Now().Before(faultT0.Add(outage)) {
		require.True(t, e.step(time.Hour))
	}
	during := e.sim.Stats()
	probes := attemptsWithin(set.Retry.Transient, outage) - 1
	t.Logf("outage of %s: %d requests for %d results (schedule: %d probes)", outage, during.Requests, n, probes)
	assert.GreaterOrEqual(t, during.Requests, set.Retry.CircuitAfter+probes)
	assert.LessOrEqual(t, during.Requests, set.Retry.CircuitAfter+set.Concurrency-1+probes,
		"the requests that opened the circuit, then the probes as the retry schedule says")
	assert.Equal(t, during.Requests, during.ByStatus[503])
	assert.Equal(t, n, e.counts()[outbox.StatePending], "nothing parked after 3 of the 14 days")

	e.sim.SetStatus(0)
	for e.step(time.Hour) {
	}
	after := e.sim.Stats()
	assert.Equal(t, n, after.Accepted, "every result delivered after the recovery")
	assert.Equal(t, 0, after.Duplicates)
	assert.Equal(t, n, after.Requests-during.Requests, "one request each after the recovery")
	assert.Equal(t, n, e.counts()[outbox.StateDelivered])
}

// TestFault403Storm: Coachview refuses the signature. With one request in
// flight exactly one request is sent before the target pauses; with four,
// at most the four already in flight. While paused, one probe goes out per
// pause_probe and nothing else; once a probe is accepted the target resumes
// and everything is delivered once.
func TestFault403Storm(t *testing.T) {
	tests := []struct {
		name        string
		concurrency int
	}{
		{"one in flight", 1},
		{"four in flight", 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const n, paused = 30, 2 * time.Hour
			set := faultSettings(tc.concurrency)
			e := newFaultEnv(t, filepath.Join(t.TempDir(), "outbox.db"), set)
			e.enqueue("F", n)
			e.sim.SetStatus(403)

			_, err := e.d.RunDue(e.ctx)
			require.NoError(t, err)
			first := e.sim.Stats().Requests
			if tc.concurrency == 1 {
				assert.Equal(t, 1, first, "one request, then the pause")
			}
			assert.LessOrEqual(t, first, tc.concurrency, "only the requests already in flight")
			st, err := e.store.TargetState(e.ctx, "coachview")
			require.NoError(t, err)
			require.True(t, st.Paused)
			assert.Equal(t, delivery.ForbiddenReason, st.Reason)
			assert.Equal(t, n, e.counts()[outbox.StatePending], "the unsent rows are handed back")

			// Two hours in one-minute steps: a probe every pause_probe (15 min).
			for range int(paused / time.Minute) {
				e.clk.Advance(time.Minute)
				_, err := e.d.RunDue(e.ctx)
				require.NoError(t, err)
			}
			probes := e.sim.Stats().Requests - first
			t.Logf("403 storm: %d request(s) before the pause, %d probes in %s", first, probes, paused)
			assert.Equal(t, int(paused/set.Retry.PauseProbe), probes, "one probe per pause_probe")

			e.sim.SetStatus(0)
			e.clk.Advance(set.Retry.PauseProbe)
			for e.step(time.Minute) {
			}
			stats := e.sim.Stats()
			assert.Equal(t, n, stats.Accepted, "everything delivered after the fix")
			assert.Equal(t, 0, stats.Duplicates)
			st, err = e.store.TargetState(e.ctx, "coachview")
			require.NoError(t, err)
			assert.False(t, st.Paused, "resumed after a successful probe")
		})
	}
}

// requireRoot skips a test that needs root (chattr, mount) when not root.
func requireRoot(t *testing.T, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("%s needs root; run `make faults` as root to include it", what)
	}
}

// TestFaultSQLiteReadOnly: the outbox's files become immutable (chattr +i:
// as root, chmod would not stop the writes) while results wait. Delivery
// steps fail with the store's error and send nothing, since nothing can be
// claimed; once the files are writable again everything is delivered once.
func TestFaultSQLiteReadOnly(t *testing.T) {
	requireRoot(t, "chattr +i")
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("chattr not installed (e2fsprogs)")
	}
	const n = 50
	dir := t.TempDir()
	e := newFaultEnv(t, filepath.Join(dir, "outbox.db"), faultSettings(2))
	e.enqueue("R", n)

	// The database and its write-ahead log; not the -shm file, the WAL's
	// shared-memory index, which SQLite maps into memory: a mapped page of
	// an immutable file faults (SIGBUS) instead of returning an error.
	files := []string{filepath.Join(dir, "outbox.db"), filepath.Join(dir, "outbox.db-wal")}
	chattr := func(flag string) {
		out, err := exec.Command("chattr", append([]string{flag}, files...)...).CombinedOutput()
		if err != nil && flag == "+i" {
			t.Skipf("chattr +i refused on this file system: %v: %s", err, out)
		}
		require.NoError(t, err, string(out))
	}
	chattr("+i")
	t.Cleanup(func() { _ = exec.Command("chattr", append([]string{"-i"}, files...)...).Run() })

	for range 3 {
		_, err := e.d.RunDue(e.ctx)
		require.Error(t, err, "a store that cannot be written fails the step")
		assert.ErrorContains(t, err, "delivery: target coachview")
		t.Logf("read-only outbox: %v", err)
		e.clk.Advance(time.Minute)
	}
	assert.Zero(t, e.sim.Stats().Requests, "nothing sent while nothing can be recorded")

	chattr("-i")
	for e.step(time.Minute) {
	}
	stats := e.sim.Stats()
	assert.Equal(t, n, stats.Accepted)
	assert.Equal(t, 0, stats.Duplicates)
	assert.Equal(t, n, e.counts()[outbox.StateDelivered])
	integrity(t, files[0])
}

// TestFaultDiskFull: the SQLite outbox lives on a 1 MB file system that
// fills up. Enqueueing then fails with an error that says so, the file
// stays consistent (PRAGMA integrity_check), everything committed before
// is still there, and once the file system has room again enqueueing and
// delivery carry on.
func TestFaultDiskFull(t *testing.T) {
	requireRoot(t, "mounting a small tmpfs")
	dir := filepath.Join(t.TempDir(), "small")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); the disk-full test needs it", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	path := filepath.Join(dir, "outbox.db")
	e := newFaultEnv(t, path, faultSettings(2))

	// Fill the disk in batches of 100 until a batch is refused.
	var fullErr error
	queued := 0
	for i := 0; fullErr == nil && i < 1000; i++ {
		ps := persons(fmt.Sprintf("B%04d-", i), 100)
		fullErr = e.store.InTx(e.ctx, func(tx outbox.Tx) error {
			for _, p := range ps {
				if _, err := tx.Enqueue(e.ctx, outbox.NewResult{Target: "coachview", Connection: "bench",
					ElearningCode: "VCA-BASIS", PersonID: p, SourceRef: "disk-full", Body: e.bt.body(p)}, outbox.EnqueuePolicy{}); err != nil {
					return err
				}
			}
			return nil
		})
		if fullErr == nil {
			queued += len(ps)
		}
	}
	require.Error(t, fullErr, "a 1 MB file system fills up")
	t.Logf("disk full after %d results: %v", queued, fullErr)
	assert.ErrorContains(t, fullErr, "database or disk is full", "the error says what is wrong")
	assert.Equal(t, queued, e.counts()[outbox.StatePending], "every committed batch is intact, the refused one left nothing")
	integrity(t, path)

	// Room again: the same store carries on.
	out, err := exec.Command("mount", "-o", "remount,size=64m", dir).CombinedOutput()
	require.NoError(t, err, string(out))
	e.enqueue("AFTER-", 100)
	for e.step(time.Minute) {
	}
	assert.Equal(t, queued+100, e.sim.Stats().Accepted, "everything delivered once there is room")
	integrity(t, path)
}

// integrity runs PRAGMA integrity_check on the database at path through a
// connection of its own.
func integrity(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer func() { assert.NoError(t, db.Close()) }()
	var res string
	require.NoError(t, db.QueryRowContext(t.Context(), "PRAGMA integrity_check").Scan(&res))
	assert.Equal(t, "ok", res, "PRAGMA integrity_check")
}
