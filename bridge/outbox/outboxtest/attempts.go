package outboxtest

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// AssertNoOrphanAttempts checks that every attempt in db belongs to a
// result row: deleting a result (the retention purge, forget) deletes its
// attempts, whose responses may quote the person, also where no foreign
// key cascades (PostgreSQL since migration 0013). It may run in a
// cleanup, after t's context has ended.
func AssertNoOrphanAttempts(t *testing.T, db *sqlx.DB) {
	t.Helper()
	var orphans []int64
	require.NoError(t, db.SelectContext(context.Background(), &orphans, `SELECT a.id FROM attempts a
		WHERE NOT EXISTS (SELECT 1 FROM results r WHERE r.id = a.result_id) ORDER BY a.id`))
	assert.Empty(t, orphans, "attempts of deleted results")
}
