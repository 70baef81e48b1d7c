package sqlcore_test

import (
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
)

func TestStatements(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, err := sqlx.Open("sqlite", filepath.Join(t.TempDir(), "s.db"))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	db.SetMaxOpenConns(3)
	_, err = db.Exec(`CREATE TABLE t (v INTEGER)`)
	require.NoError(t, err)

	stmts := sqlcore.NewStatements(db)
	const insert, count = `INSERT INTO t (v) VALUES (?)`, `SELECT COUNT(*) FROM t`
	a, err := stmts.Get(ctx, insert)
	require.NoError(t, err)
	b, err := stmts.Get(ctx, insert)
	require.NoError(t, err)
	assert.Same(t, a, b, "a query is prepared once")
	c, err := stmts.Get(ctx, count)
	require.NoError(t, err)
	assert.NotSame(t, a, c)

	t.Run("bound to a transaction", func(t *testing.T) {
		// Several transactions in turn, on whichever connections the pool
		// hands out: each sees its own writes, and a rollback undoes them.
		for i := range 5 {
			tx, err := db.BeginTxx(ctx, nil)
			require.NoError(t, err)
			ins, err := stmts.InTx(ctx, tx, insert)
			require.NoError(t, err)
			_, err = ins.ExecContext(ctx, i)
			require.NoError(t, err)
			cnt, err := stmts.InTx(ctx, tx, count)
			require.NoError(t, err)
			var n int
			require.NoError(t, cnt.GetContext(ctx, &n))
			assert.Equal(t, 1, n, "the transaction sees its own insert")
			require.NoError(t, tx.Rollback())
		}
		var n int
		require.NoError(t, c.GetContext(ctx, &n))
		assert.Zero(t, n, "every insert was rolled back")
	})

	t.Run("closed", func(t *testing.T) {
		stmts.Close()
		_, err := a.ExecContext(ctx, 1)
		require.Error(t, err, "a closed statement cannot run")
		again, err := stmts.Get(ctx, insert)
		require.NoError(t, err)
		assert.NotSame(t, a, again, "after Close a query is prepared anew")
		_, err = again.ExecContext(ctx, 1)
		require.NoError(t, err)
		stmts.Close()
	})
}
