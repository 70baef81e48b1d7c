package csvdrop

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// watch runs Watch until the test ends and returns its wake-ups.
func watch(t *testing.T, f *Folder) <-chan struct{} {
	t.Helper()
	woke := make(chan struct{}, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Watch(ctx, func() { woke <- struct{}{} }) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done, "Watch ends cleanly with its context")
	})
	return woke
}

func TestWatchWakesOnNewFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	woke := watch(t, e.f)
	// Watch has no readiness signal: drop files until one is noticed.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(10 * time.Second)
	for i := 0; ; i++ {
		select {
		case <-woke:
			return
		case <-tick.C:
			e.write(fmt.Sprintf("export-%d.csv", i), "x")
		case <-timeout:
			t.Fatal("no wake after dropping files into the watched folder")
		}
	}
}

func TestWatchWakesAfterSettleForChangingFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "  settle: 50ms\n"+dutchColumns)
	path := filepath.Join(e.drop, "growing.csv")
	e.write("growing.csv", "Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\n")
	future := e.clk.Now().Add(time.Hour)
	require.NoError(t, os.Chtimes(path, future, future))
	require.NoError(t, e.poll())
	require.Zero(t, e.sink.Commits(), "not settled")

	// The poll ran before Watch started, so only its recheck can wake it.
	woke := watch(t, e.f)
	select {
	case <-woke:
	case <-time.After(10 * time.Second):
		t.Fatal("no wake after settle for a file that was still changing")
	}
}

func TestWatchMissingFolder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dutchColumns)
	require.NoError(t, os.Remove(e.drop))
	err := e.f.Watch(context.Background(), func() {})
	assert.ErrorContains(t, err, "watch drop folder "+e.drop)
}
