package postgres

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
)

// The queries whose plans the tests check.
var (
	ClaimQuery     = claimQuery(serverNow)
	NextDueQuery   = sqlcore.NextDueQuery
	ActiveRowQuery = sqlcore.ActiveRowQuery
	HistoryQuery   = sqlcore.HistoryQuery
	PurgeQuery     = sqlcore.PurgeQuery(skipLocked)
)

// SchemaUpTo creates in db the schema of versions 1 to v, as an older
// cvbridge left it, for tests of the migrations after v.
func SchemaUpTo(ctx context.Context, db *sqlx.DB, v int) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return err
	}
	for _, m := range ms[:v] {
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			return err
		}
		if err := m.Apply(ctx, tx); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)`, m.Version); err != nil {
			_ = tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// PreparedPlans reports how often the server planned the store's prepared
// statements whose text contains fragment: generic and custom plans, summed
// over the statements the store's connections hold. Only the connection
// that answers sees its own statements, so tests use a one-connection pool.
func (s *Store) PreparedPlans(ctx context.Context, fragment string) (generic, custom int64, err error) {
	err = s.db.QueryRowxContext(ctx, `SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)
		FROM pg_prepared_statements WHERE NOT from_sql AND strpos(statement, $1) > 0`, fragment).Scan(&generic, &custom)
	return generic, custom, err
}
