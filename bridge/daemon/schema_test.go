package daemon_test

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/daemon"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// TestStopsWhenANewerCvbridgeMigrates: daemons share a PostgreSQL outbox,
// and a newer cvbridge migrates it while this one runs (played from
// outside by recording the next schema version in the database, as that
// cvbridge's migration does). Within the minute this daemon stops by itself
// with the newer-schema error, which makes systemd restart it, and a start
// then refuses the database: a daemon never goes on writing with the
// statements of an older schema.
func TestStopsWhenANewerCvbridgeMigrates(t *testing.T) {
	dsn := testdb.Postgres(t)
	t.Setenv("CVBRIDGE_TEST_SCHEMA_DSN", dsn)
	cfg := loadConfig(t, `storage:
  driver: postgres
  dsn_env: CVBRIDGE_TEST_SCHEMA_DSN
targets:
  cv:
    url: http://127.0.0.1:1/r
    secret_file: secret
`)
	clk := clock.NewFake(time.Now())
	var logs bytes.Buffer
	d, err := daemon.Open(t.Context(), cfg, nil, daemon.Options{Clock: clk, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, d.Close()) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stopped := make(chan struct{})
	go func() { done <- d.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped }) // before Close

	// Minutes pass, with checks that find the schema this build knows (the
	// loop's ticker exists after its first check, so keep advancing).
	for range 20 {
		clk.Advance(time.Minute)
		time.Sleep(25 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("the daemon stopped on its own schema: %v", err)
	default:
	}

	db, err := sqlx.Open("postgres", dsn)
	require.NoError(t, err)
	defer func() { assert.NoError(t, db.Close()) }()
	_, err = db.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)`, postgres.LatestSchema()+1)
	require.NoError(t, err)

	var runErr error
	require.Eventually(t, func() bool {
		clk.Advance(time.Minute)
		select {
		case runErr = <-done:
			return true
		default:
			return false
		}
	}, 10*time.Second, 50*time.Millisecond, "the daemon goes on running on a newer schema")
	var newer *outbox.NewerSchemaError
	require.ErrorAs(t, runErr, &newer)
	assert.Equal(t, int64(postgres.LatestSchema()+1), newer.Current)
	assert.Contains(t, logs.String(), "another cvbridge migrated the outbox database to a newer schema")

	_, err = daemon.OpenStore(t.Context(), cfg, nil)
	require.ErrorAs(t, err, &newer, "a restart refuses the database")
}
