package testdb_test

import (
	"database/sql"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/testdb"
)

func TestPostgresGivesAnEmptyDatabase(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("postgres", testdb.Postgres(t))
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&n))
	require.Zero(t, n)
}

func TestMySQLGivesAnEmptyDatabase(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("mysql", testdb.MySQL(t))
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	var n int
	require.NoError(t, db.QueryRow("SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()").Scan(&n))
	require.Zero(t, n)
}
