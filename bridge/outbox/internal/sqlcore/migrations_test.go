package sqlcore_test

import (
	"context"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
)

func TestMigrationSteps(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	files := fstest.MapFS{
		"migrations/0001_init.sql":   {Data: []byte(`CREATE TABLE t (v TEXT NOT NULL, k TEXT NOT NULL DEFAULT '')`)},
		"migrations/0002_filled.sql": {Data: []byte(`INSERT INTO t (v) VALUES ('A')`)},
	}
	fill := func(ctx context.Context, tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE t SET k = 'set in Go'`)
		return err
	}
	ms, err := sqlcore.LoadMigrations(files, map[string]sqlcore.Step{"0002_filled.sql": fill})
	require.NoError(t, err)
	require.Len(t, ms, 2)
	assert.Nil(t, ms[0].Then, "a migration without a step")
	assert.NotNil(t, ms[1].Then)

	db, err := sqlx.Open("sqlite", filepath.Join(t.TempDir(), "m.db"))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	for _, m := range ms {
		tx, err := db.BeginTxx(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, m.Apply(ctx, tx), m.Name)
		require.NoError(t, tx.Commit())
	}
	var k string
	require.NoError(t, db.GetContext(ctx, &k, `SELECT k FROM t`))
	assert.Equal(t, "set in Go", k, "the step runs after the file's statements")

	_, err = sqlcore.LoadMigrations(files, map[string]sqlcore.Step{"0003_missing.sql": fill})
	assert.ErrorContains(t, err, "0003_missing.sql: no such embedded migration")
}
