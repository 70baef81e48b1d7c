package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlinbound"
)

// migrationFiles holds the schema, one numbered file per version
// (0001_init.sql, 0002_….sql, …). A released file is never edited: a change
// is a new file with the next number.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationSteps are the migrations that have a step in Go besides their
// file (sqlcore.Step), by file name.
var migrationSteps = map[string]sqlcore.Step{
	"0010_inbound_person_key.sql": sqlinbound.FillPersonKeys,
}

// migrations are the embedded migrations, with their steps, in version order.
func migrations() ([]sqlcore.Migration, error) {
	return sqlcore.LoadMigrations(migrationFiles, migrationSteps)
}

// migrationLockKey is the pg_advisory_xact_lock key under which migrations
// run, so daemons starting at once apply each version exactly once. It
// spells "cvbmigr" and uses the one-bigint key space; Enqueue takes no
// advisory locks, so nothing else in cvbridge can collide with it.
const migrationLockKey int64 = 0x637662_6d696772

// LatestSchema is the schema version this build of cvbridge migrates to.
func LatestSchema() int {
	ms, err := migrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// Migrate brings the database to the newest schema version this build
// knows, in one transaction: either every missing version is applied and
// recorded in schema_migrations, or none is. It holds a transaction-level
// advisory lock throughout, so daemons (or `cvbridge migrate`) starting at
// once wait for each other instead of applying a version twice. It refuses
// a database written by a newer cvbridge, and does nothing to a current one.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			applied_at BIGINT  NOT NULL
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var current sql.NullInt64
		if err := tx.GetContext(ctx, &current, `SELECT MAX(version) FROM schema_migrations`); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if current.Int64 > int64(len(ms)) {
			return &outbox.NewerSchemaError{Current: current.Int64, Known: len(ms)}
		}
		applied := false
		for _, m := range ms {
			if int64(m.Version) <= current.Int64 {
				continue
			}
			if err := m.Apply(ctx, tx); err != nil {
				return fmt.Errorf("migration %s: apply: %w", m.Name, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
				m.Version, s.now().UnixMilli()); err != nil {
				return fmt.Errorf("migration %s: record: %w", m.Name, err)
			}
			applied = true
		}
		if applied {
			// New or rebuilt indexes and filled-in columns get
			// statistics before the first intake, rather than at
			// autovacuum's pleasure.
			if _, err := tx.ExecContext(ctx, `ANALYZE results, inbound_messages`); err != nil {
				return fmt.Errorf("analyze after migrating: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("outbox database (postgres): migrate: %w", err)
	}
	return nil
}

// CheckSchema fails unless the database is at exactly the schema version
// this build knows; a running daemon asks it every minute, since another
// cvbridge on the same database may migrate it (outbox.SchemaChecker).
func (s *Store) CheckSchema(ctx context.Context) error {
	latest := LatestSchema()
	var current sql.NullInt64
	err := s.db.GetContext(ctx, &current, `SELECT MAX(version) FROM schema_migrations`)
	var missing bool
	if err != nil {
		var exists bool
		if e2 := s.db.GetContext(ctx, &exists, `SELECT to_regclass('schema_migrations') IS NOT NULL`); e2 != nil || exists {
			return fmt.Errorf("outbox database (postgres): read schema version: %w", err)
		}
		missing = true
	}
	switch {
	case missing || current.Int64 < int64(latest):
		return fmt.Errorf("outbox database (postgres): schema version %d is older than this cvbridge needs (%d): run `cvbridge migrate`, or let `cvbridge run` migrate at start",
			current.Int64, latest)
	case current.Int64 > int64(latest):
		return fmt.Errorf("outbox database (postgres): %w", &outbox.NewerSchemaError{Current: current.Int64, Known: latest})
	}
	return nil
}
