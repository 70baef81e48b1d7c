package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// faultSeed is the seed of the random kill moments: CVBRIDGE_FAULT_SEED to
// repeat a run, else the clock. Tests log it.
func faultSeed(t *testing.T) uint64 {
	t.Helper()
	if v := os.Getenv("CVBRIDGE_FAULT_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "CVBRIDGE_FAULT_SEED must be an unsigned number")
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// TestFaultKillAtRandom kills the daemon with SIGKILL at random moments
// (from the seeded generator) while it reads a 10,000-row export and
// delivers it, six times, restarting it after each kill, on SQLite and on
// PostgreSQL.
// Every result is delivered, none is lost, and results are sent twice at
// most once per request in flight at a kill: with the shipped record_ahead,
// concurrency×(record_ahead+1) per kill. It runs
// in `make faults` (CVBRIDGE_FAULTS=1): a few minutes of real processes.
func TestFaultKillAtRandom(t *testing.T) {
	if os.Getenv("CVBRIDGE_FAULTS") == "" {
		t.Skip("kill -9 rounds over a 10,000-result drain: run by `make faults` (CVBRIDGE_FAULTS=1)")
	}
	const (
		n           = 10000
		rounds      = 6
		concurrency = 2
		recordAhead = 8 // the default
		inFlight    = concurrency * (recordAhead + 1)
	)
	seed := faultSeed(t)
	t.Logf("seed %d (set CVBRIDGE_FAULT_SEED=%d to repeat these kill moments)", seed, seed)
	tests := []struct {
		name     string
		postgres bool
	}{
		{"sqlite", false},
		{"postgres", true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			bin := binary(t)
			cfgPath := e2eSetup(t, "http://placeholder", "")
			dir := filepath.Dir(cfgPath)
			base := startSimProcess(t, bin, filepath.Join(dir, "secret"))
			if tc.postgres {
				usePostgres(t, cfgPath, testdb.Postgres(t))
			}
			// Short timeout and lease: after a kill, the rows the dead
			// daemon had claimed come back within seconds.
			withTarget(t, cfgPath, base, fmt.Sprintf("    concurrency: %d\n    record_ahead: %d\n    timeout: 2s\n    connect_timeout: 1s\n    lease: 3s\n", concurrency, recordAhead))
			if tc.postgres {
				out, err := exec.Command(bin, "migrate", "--config", cfgPath).CombinedOutput()
				require.NoError(t, err, string(out))
			}
			dropCSV(t, dir, "export.csv", goodRows(n))

			// The kill moments. The first comes at a random moment of the
			// daemon's start, while it reads the export. Each of the others
			// comes once a random count of results has been accepted, drawn
			// within its own share of the drain's first 90%: every kill lands
			// while results are being delivered, however fast the machine.
			marks := killMarks(rng, n, rounds-1)
			for k := 1; k <= rounds; k++ {
				d := startDaemonProcess(t, bin, cfgPath, fmt.Sprintf("daemon-%d", k))
				moment := ""
				if k == 1 {
					at := time.Duration(rng.Int64N(int64(500 * time.Millisecond)))
					time.Sleep(at)
					moment = fmt.Sprintf("%s after the start", at)
				} else {
					mark := marks[k-2]
					waitEvery(t, 2*time.Minute, 2*time.Millisecond, func() bool { return simStats(t, base).Accepted >= mark })
					moment = fmt.Sprintf("once %d were accepted", mark)
				}
				require.NoError(t, d.Process.Signal(syscall.SIGKILL))
				_ = d.Wait()
				accepted := simStats(t, base).Accepted
				t.Logf("kill %d, %s: %d accepted", k, moment, accepted)
				require.Less(t, accepted, n, "kill %d came after the drain ended", k)
			}
			d := startDaemonProcess(t, bin, cfgPath, "daemon-last")
			waitRunning(t, filepath.Join(dir, "daemon-last.log"), 1)
			// Every result accepted is not yet every row recorded: a row a
			// killed daemon sent but did not record stays leased to it
			// until the lease runs out and this daemon sends it again.
			waitFor(t, 5*time.Minute, func() bool {
				return simStats(t, base).Accepted >= n &&
					outboxLeft(t, bin, cfgPath, "pending") == 0 && outboxLeft(t, bin, cfgPath, "sending") == 0
			})
			require.NoError(t, d.Process.Signal(syscall.SIGTERM))
			require.NoError(t, d.Wait(), "a SIGTERM ends the daemon cleanly")

			stats := simStats(t, base)
			t.Logf("%s: %d results, %d kills, %d requests, %d duplicates (bound %d = kills × concurrency × (record_ahead+1))",
				tc.name, n, rounds, stats.Requests, stats.Duplicates, rounds*inFlight)
			assert.Equal(t, n, stats.Accepted, "every result delivered, none lost")
			assert.LessOrEqual(t, stats.Duplicates, rounds*inFlight, "duplicates at most the requests in flight at the kills")
			for _, state := range []string{"pending", "sending", "waiting"} {
				assert.Zero(t, outboxLeft(t, bin, cfgPath, state), "nothing left %s", state)
			}
			for _, state := range []string{"failed", "probably-delivered"} {
				assert.Zero(t, outboxLeft(t, bin, cfgPath, state), "no duplicate of a kill ends %s", state)
			}
		})
	}
}

// killMarks draws count accepted-result counts at which to kill, one at
// random within each of count equal shares of the first 90% of n results,
// in increasing order.
func killMarks(rng *rand.Rand, n, count int) []int {
	span := n * 9 / 10
	marks := make([]int, count)
	for i := range marks {
		lo, hi := i*span/count, (i+1)*span/count
		marks[i] = lo + 1 + rng.IntN(hi-lo)
	}
	return marks
}

// outboxLeft is the number of results the outbox holds in state, read with
// the operator's command.
func outboxLeft(t *testing.T, bin, cfgPath, state string) int {
	t.Helper()
	out, err := exec.Command(bin, "outbox", "list", "--config", cfgPath, "--state", state).CombinedOutput()
	require.NoError(t, err, string(out))
	return strings.Count(strings.TrimSpace(string(out)), "\n") // the lines after the header
}
