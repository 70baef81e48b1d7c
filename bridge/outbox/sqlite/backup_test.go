package sqlite_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// TestBackupWhileWriting: a backup taken while another goroutine keeps
// committing is a whole database (integrity_check ok) holding a prefix of the
// commits, private to its owner; a second backup to the same name is
// refused and leaves the first untouched.
func TestBackupWhileWriting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "outbox.db"), clock.System{})
	enqueue := func(i int) error {
		return s.InTx(t.Context(), func(tx outbox.Tx) error {
			_, err := tx.Enqueue(t.Context(), outbox.NewResult{Target: "t", ElearningCode: "C", PersonID: fmt.Sprint("P", i),
				Body: []byte(fmt.Sprint("<x>", i, "</x>"))}, outbox.EnqueuePolicy{})
			return err
		})
	}
	for i := range 50 {
		require.NoError(t, enqueue(i))
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 50; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := enqueue(i); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	to := filepath.Join(dir, "copy.db")
	err := s.Backup(t.Context(), to)
	close(stop)
	wg.Wait()
	require.NoError(t, err)

	info, err := os.Stat(to)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), "partial", "nothing left beside the copy")
	}
	db := raw(t, to)
	var n int
	require.NoError(t, db.Get(&n, `SELECT count(*) FROM results`))
	assert.GreaterOrEqual(t, n, 50, "the copy holds every commit made before it began")
	var check string
	require.NoError(t, db.Get(&check, `PRAGMA integrity_check`))
	assert.Equal(t, "ok", check)

	err = s.Backup(t.Context(), to)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exists")
	var again int
	require.NoError(t, db.Get(&again, `SELECT count(*) FROM results`))
	assert.Equal(t, n, again, "the refused backup left the first one as it was")
}

// TestKilledBackupBlocksNoOther: a backup killed while writing (kill -9:
// nothing cleans up) left copy.db.partial behind, and every later backup to
// that name failed with "file exists" until it was removed by hand. The
// copy being written now has a name of its own; what a killed backup left
// is removed once it is an hour old, as it holds personal data.
func TestKilledBackupBlocksNoOther(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "outbox.db"), clock.System{})
	to := filepath.Join(dir, "nightly.db")
	stale := filepath.Join(dir, ".nightly.db.partial-123")
	fresh := filepath.Join(dir, ".nightly.db.partial-456")
	for _, p := range []string{stale, stale + "-journal", fresh} {
		require.NoError(t, os.WriteFile(p, []byte("a copy with personal data"), 0o600))
	}
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(stale, old, old))
	require.NoError(t, os.Chtimes(stale+"-journal", old, old))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "nightly.db.partial"), []byte("the old fixed name"), 0o600))

	require.NoError(t, s.Backup(t.Context(), to))
	assert.FileExists(t, to)
	assert.NoFileExists(t, stale)
	assert.NoFileExists(t, stale+"-journal")
	assert.FileExists(t, fresh, "a copy another backup may be writing now stays")
}
