package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"strings"

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
	"0011_inbound_person_key.sql": sqlinbound.FillPersonKeys,
}

// migrations are the embedded migrations, with their steps, in version order.
func migrations() ([]sqlcore.Migration, error) {
	return sqlcore.LoadMigrations(migrationFiles, migrationSteps)
}

// migrate brings the database to the newest embedded schema version, one
// transaction per version, and refuses a database written by a newer
// cvbridge. Each version is checked again inside its (immediate) transaction,
// so two processes opening the same file at once do not apply it twice.
func migrate(ctx context.Context, db *sqlx.DB, nowMillis int64) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	latest := len(ms)
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current sql.NullInt64
	if err := db.GetContext(ctx, &current, `SELECT MAX(version) FROM schema_migrations`); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current.Int64 > int64(latest) {
		return &outbox.NewerSchemaError{Current: current.Int64, Known: latest}
	}
	for _, m := range ms {
		if int64(m.Version) <= current.Int64 {
			continue
		}
		if err := applyMigration(ctx, db, m, nowMillis); err != nil {
			return err
		}
	}
	return nil
}

// checkSchema fails unless the database is at exactly the schema version
// this build knows; it changes nothing (storage.migrate: false).
func checkSchema(ctx context.Context, db *sqlx.DB, _ int64) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	var tables int
	if err := db.GetContext(ctx, &tables, `SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	var current sql.NullInt64 // a new, empty file has no schema yet: version 0
	if tables > 0 {
		if err := db.GetContext(ctx, &current, `SELECT MAX(version) FROM schema_migrations`); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
	}
	switch {
	case current.Int64 > int64(len(ms)):
		return &outbox.NewerSchemaError{Current: current.Int64, Known: len(ms)}
	case current.Int64 < int64(len(ms)):
		return fmt.Errorf("schema version %d is older than this cvbridge needs (%d): run `cvbridge migrate`, or set storage.migrate: true",
			current.Int64, len(ms))
	}
	return nil
}

// foreignKeysOff marks a migration that rebuilds a table: it runs with
// foreign keys off, as SQLite's procedure for such changes requires, and is
// checked with PRAGMA foreign_key_check before it commits.
const foreignKeysOff = "-- cvbridge: foreign-keys-off"

// applyMigration applies m in one transaction unless it is already recorded.
func applyMigration(ctx context.Context, db *sqlx.DB, m sqlcore.Migration, nowMillis int64) (err error) {
	conn, err := db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("migration %s: connect: %w", m.Name, err)
	}
	defer func() { _ = conn.Close() }() // hands the connection back to the pool
	rebuild := strings.HasPrefix(m.SQL, foreignKeysOff)
	if rebuild {
		// Only outside a transaction does this pragma take effect.
		if _, err := conn.ExecContext(ctx, `PRAGMA foreign_keys = OFF`); err != nil {
			return fmt.Errorf("migration %s: foreign keys off: %w", m.Name, err)
		}
		defer func() {
			if _, ferr := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA foreign_keys = ON`); ferr != nil && err == nil {
				err = fmt.Errorf("migration %s: foreign keys on: %w", m.Name, ferr)
			}
		}()
	}
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: begin: %w", m.Name, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var n int
	if err := tx.GetContext(ctx, &n, db.Rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.Version); err != nil {
		return fmt.Errorf("migration %s: check: %w", m.Name, err)
	}
	if n > 0 {
		return tx.Commit()
	}
	if err := m.Apply(ctx, tx); err != nil {
		return fmt.Errorf("migration %s: apply: %w", m.Name, err)
	}
	if rebuild {
		var broken []struct {
			Table  string        `db:"table"`
			RowID  sql.NullInt64 `db:"rowid"`
			Parent string        `db:"parent"`
			FKID   int           `db:"fkid"`
		}
		if err := tx.SelectContext(ctx, &broken, `PRAGMA foreign_key_check`); err != nil {
			return fmt.Errorf("migration %s: foreign key check: %w", m.Name, err)
		}
		if len(broken) > 0 {
			return fmt.Errorf("migration %s: %d rows of %s no longer find their %s row", m.Name, len(broken), broken[0].Table, broken[0].Parent)
		}
	}
	if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), m.Version, nowMillis); err != nil {
		return fmt.Errorf("migration %s: record: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.Name, err)
	}
	return nil
}
