package sqlite_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

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
	_, err = os.Stat(to + ".partial")
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing left beside the copy")
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
