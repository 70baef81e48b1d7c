package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxtest"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// open opens a store at path, closed when t ends.
func open(t testing.TB, path string, clk clock.Clock) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, sqlite.WithClock(clk))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}

// raw opens the database file without the store, closed when t ends.
func raw(t *testing.T, path string) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("sqlite", path)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	return db
}

func TestConformance(t *testing.T) {
	t.Parallel()
	outboxtest.Run(t, func(t *testing.T, clk clock.Clock) outbox.Store {
		path := filepath.Join(t.TempDir(), "outbox.db")
		s := open(t, path, clk)
		t.Cleanup(func() { assertActiveFlags(t, path) })
		// Every change the suite makes must leave the counters right.
		t.Cleanup(func() { outboxtest.AssertCounts(t, s, raw(t, path)) })
		t.Cleanup(func() { outboxtest.AssertNoOrphanAttempts(t, raw(t, path)) })
		return s
	})
}

// assertActiveFlags checks that every results row's active flag matches its
// state. SQLite's schema cannot hold the flag to the state (PostgreSQL's
// CHECK constraint does), so every insert and update the conformance suite
// makes (enqueue, claim, finish, release, replace, cancel, retry) is checked
// here.
func assertActiveFlags(t *testing.T, path string) {
	db, err := sqlx.Open("sqlite", path)
	require.NoError(t, err)
	defer func() { assert.NoError(t, db.Close()) }()
	var wrong []struct {
		ID     int64  `db:"id"`
		State  string `db:"state"`
		Active bool   `db:"active"`
	}
	require.NoError(t, db.SelectContext(context.Background(), &wrong, `SELECT id, state, active FROM results
		WHERE active IS NOT (state IN ('pending', 'sending', 'delivered', 'failed'))`))
	assert.Empty(t, wrong, "rows whose active flag contradicts their state")
}

func TestOpenCreatesDirectoryAndPrivateFile(t *testing.T) {
	t.Parallel()
	// Characters a URI would otherwise give a meaning must not cut the path short.
	path := filepath.Join(t.TempDir(), "var", "lib", "cv bridge #1?x=y", "outbox.db")
	open(t, path, clock.NewFake(outboxtest.Epoch))
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the database holds person ids")
	_, err = os.Stat(path + "-wal")
	assert.NoError(t, err, "the WAL sits beside the database, so the store opened that very file")
}

func TestDataAndSchemaSurviveReopen(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "outbox.db")
	clk := clock.NewFake(outboxtest.Epoch)

	s, err := sqlite.Open(ctx, path, sqlite.WithClock(clk))
	require.NoError(t, err)
	require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error {
		if _, err := tx.Enqueue(ctx, outbox.NewResult{Target: "cv", ElearningCode: "e1", PersonID: "p1", Body: []byte("<x/>")}, outbox.EnqueuePolicy{}); err != nil {
			return err
		}
		return tx.SaveCursor(ctx, "moodle", []byte("c1"))
	}))
	require.NoError(t, s.Close())

	for range 2 { // reopening twice applies no migration again
		s := open(t, path, clk)
		rows, err := s.List(ctx, outbox.Filter{})
		require.NoError(t, err)
		require.Len(t, rows, 1)
		assert.Equal(t, []byte("<x/>"), rows[0].Body)
		cur, err := s.Cursor(ctx, "moodle")
		require.NoError(t, err)
		assert.Equal(t, []byte("c1"), cur)
		require.NoError(t, s.Close())
	}

	var versions []int
	require.NoError(t, raw(t, path).SelectContext(ctx, &versions, `SELECT version FROM schema_migrations ORDER BY version`))
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, versions, "each migration recorded once")
}

func TestNewerSchemaIsRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "outbox.db")
	s, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = raw(t, path).ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)`)
	require.NoError(t, err)

	_, err = sqlite.Open(ctx, path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "database schema 99 is newer than this cvbridge knows (13)")
	assert.Contains(t, err.Error(), path, "the error names the file")
}

func TestOpenFailsOnAnUnusablePath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(notDir, []byte("x"), 0o600))
	_, err := sqlite.Open(t.Context(), filepath.Join(notDir, "outbox.db"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), notDir)
}

func TestWALModeIsOn(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "outbox.db")
	open(t, path, clock.NewFake(outboxtest.Epoch))
	var mode string
	require.NoError(t, raw(t, path).GetContext(t.Context(), &mode, `PRAGMA journal_mode`))
	assert.Equal(t, "wal", mode, "WAL is a property of the file")
}

// TestSecondOpenKeepsTheLocks: opening and closing the database a second time
// in the same process (a reload, a check) leaves the first store's POSIX
// locks in place. Closing any descriptor of a file drops all of the
// process's locks on it, so a second Open that touched the file itself would
// leave the first store unlocked, and another SQLite client could delete its
// live WAL.
func TestSecondOpenKeepsTheLocks(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "outbox.db")
	first := open(t, path, clock.System{})
	require.NoError(t, first.SetTargetState(t.Context(), outbox.TargetState{Target: "t"}))
	locks := testdb.POSIXLocks(t, os.Getpid(), path)
	require.Positive(t, locks, "an open store holds a lock on its file")

	second, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	require.NoError(t, second.Close())
	assert.Equal(t, locks, testdb.POSIXLocks(t, os.Getpid(), path), "the first store's locks survive the second's open and close")
}

// TestWithoutMigrations: with storage.migrate: false a database behind this
// build's schema is refused with a request to run `cvbridge migrate`, and
// left as it was; a current one opens.
func TestWithoutMigrations(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "outbox.db")
	_, err := sqlite.Open(ctx, path, sqlite.WithoutMigrations())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "run `cvbridge migrate`")
	var tables int
	require.NoError(t, raw(t, path).GetContext(ctx, &tables, `SELECT COUNT(*) FROM sqlite_schema WHERE name = 'results'`))
	assert.Zero(t, tables, "nothing was created")

	s, err := sqlite.Open(ctx, path) // what `cvbridge migrate` does
	require.NoError(t, err)
	require.NoError(t, s.Close())
	s, err = sqlite.Open(ctx, path, sqlite.WithoutMigrations())
	require.NoError(t, err)
	require.NoError(t, s.Close())
}

func TestCounts(t *testing.T) {
	t.Parallel()
	outboxtest.RunCounts(t, func(t *testing.T, clk clock.Clock) (outbox.Store, *sqlx.DB) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		return open(t, path, clk), raw(t, path)
	})
}
