package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
)

// migrationFiles holds the schema, one numbered file per version
// (0001_init.sql, 0002_….sql, …). A released file is never edited: a change
// is a new file with the next number.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one schema version.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded migrations in version order and checks
// that they are numbered 1, 2, 3, … without gaps.
func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("list embedded migrations: %w", err)
	}
	ms := make([]migration, 0, len(names))
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		if !ok {
			return nil, fmt.Errorf("embedded migration %s: name is not NNNN_description.sql", base)
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("embedded migration %s: version %q is not a number: %w", base, num, err)
		}
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read embedded migration %s: %w", base, err)
		}
		ms = append(ms, migration{version: v, name: base, sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("embedded migration %s: expected version %d", m.name, i+1)
		}
	}
	return ms, nil
}

// migrate brings the database to the newest embedded schema version, one
// transaction per version, and refuses a database written by a newer
// cvbridge. Each version is checked again inside its (immediate) transaction,
// so two processes opening the same file at once do not apply it twice.
func migrate(ctx context.Context, db *sqlx.DB, nowMillis int64) error {
	ms, err := loadMigrations()
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
		return fmt.Errorf("database schema %d is newer than this cvbridge knows (%d): upgrade cvbridge or restore a matching backup", current.Int64, latest)
	}
	for _, m := range ms {
		if int64(m.version) <= current.Int64 {
			continue
		}
		if err := applyMigration(ctx, db, m, nowMillis); err != nil {
			return err
		}
	}
	return nil
}

// applyMigration applies m in one transaction unless it is already recorded.
func applyMigration(ctx context.Context, db *sqlx.DB, m migration, nowMillis int64) (err error) {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: begin: %w", m.name, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var n int
	if err := tx.GetContext(ctx, &n, db.Rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version); err != nil {
		return fmt.Errorf("migration %s: check: %w", m.name, err)
	}
	if n > 0 {
		return tx.Commit()
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %s: apply: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), m.version, nowMillis); err != nil {
		return fmt.Errorf("migration %s: record: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.name, err)
	}
	return nil
}
