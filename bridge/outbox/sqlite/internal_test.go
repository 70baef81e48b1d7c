package sqlite

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxtest"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "outbox.db"), WithClock(clock.NewFake(time.Date(2026, 1, 15, 9, 0, 0, 0, time.UTC))))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}

func TestConnectionSettings(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
	}
	// Every pooled connection gets the settings, not only the first.
	conns := make([]func() error, 0, 3)
	for range 3 {
		c, err := s.db.Connx(t.Context())
		require.NoError(t, err)
		conns = append(conns, c.Close)
		for _, tc := range tests {
			var got string
			require.NoError(t, c.GetContext(t.Context(), &got, "PRAGMA "+tc.pragma))
			assert.Equal(t, tc.want, got, tc.pragma)
		}
	}
	for _, closeConn := range conns {
		require.NoError(t, closeConn())
	}
}

func TestQueriesUseTheirIndexes(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	tests := []struct {
		name, query, index string
		args               []any
	}{
		{"claim", claimDueQuery, "results_due", []any{"cv", 0, 10}},
		{"next due", sqlcore.NextDueQuery, "results_due", []any{"cv"}},
		{"enqueue pair lookup", sqlcore.ActiveRowQuery, "results_active_pair", []any{"cv", "e1", "p1"}},
		{"enqueue history lookup", sqlcore.HistoryQuery, "results_person (person_key=? AND target=? AND elearningcode=?)",
			[]any{"p1", "cv", "e1", "delivered", []byte("h")}},
	}
	for _, tc := range tests {
		var plan []struct {
			ID     int    `db:"id"`
			Parent int    `db:"parent"`
			NotUse int    `db:"notused"`
			Detail string `db:"detail"`
		}
		require.NoError(t, s.db.SelectContext(t.Context(), &plan, "EXPLAIN QUERY PLAN "+tc.query, tc.args...), tc.name)
		var details []string
		for _, p := range plan {
			details = append(details, p.Detail)
		}
		assert.Contains(t, strings.Join(details, "; "), "USING INDEX "+tc.index, tc.name)
		assert.NotContains(t, strings.Join(details, "; "), "TEMP B-TREE", "%s: no sort step", tc.name)
	}
}

func TestPurgeDeletesAttempts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error {
		_, err := tx.Enqueue(ctx, outbox.NewResult{Target: "cv", ElearningCode: "e1", PersonID: "p1", Body: []byte("<x/>")}, outbox.EnqueuePolicy{})
		return err
	}))
	now := s.now()
	items, err := s.Claim(ctx, "cv", "w", 1, now, time.Minute)
	require.NoError(t, err)
	require.Len(t, items, 1)
	require.NoError(t, s.Finish(ctx, outbox.Finish{ID: items[0].ID, Owner: "w", State: outbox.StateDelivered, Attempt: outbox.Attempt{Status: 200}}))

	count := func() int {
		var n int
		require.NoError(t, s.db.GetContext(ctx, &n, `SELECT COUNT(*) FROM attempts`))
		return n
	}
	require.Equal(t, 1, count())
	n, err := s.Purge(ctx, now.Add(time.Millisecond), 10)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	assert.Zero(t, count(), "the attempts go with their result")
}

// olderSchema lays out, in a new file, the schema of versions 1 to v as an
// older cvbridge left it, and returns the database (closed when t ends)
// and an opener that migrates it to this build's schema and opens the
// store on it.
func olderSchema(t *testing.T, v int) (*sqlx.DB, func() outbox.Store) {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "outbox.db")
	db, err := sqlx.Open("sqlite", dsn(path))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	_, err = db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`)
	require.NoError(t, err)
	ms, err := migrations()
	require.NoError(t, err)
	for _, m := range ms[:v] {
		require.NoError(t, applyMigration(ctx, db, m, 0))
	}
	return db, func() outbox.Store {
		s, err := Open(ctx, path)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, s.Close()) })
		return s
	}
}

// TestActiveFlagUpgrade: a database an older cvbridge left at schema 5
// migrates to results.active without breaking the pair rule.
func TestActiveFlagUpgrade(t *testing.T) {
	t.Parallel()
	db, open := olderSchema(t, outboxtest.ActiveFlagSchema)
	outboxtest.ActiveFlagUpgrade(t, db, open)
}

// TestSupersessionUpgrade: a database an older cvbridge left at schema 6
// is rebuilt for the new states without losing an attempt or an id.
func TestSupersessionUpgrade(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, open := olderSchema(t, outboxtest.SupersessionSchema)
	outboxtest.SupersessionUpgrade(t, db, open)
	var check string
	require.NoError(t, db.GetContext(ctx, &check, `PRAGMA integrity_check`))
	assert.Equal(t, "ok", check)
	var fk int
	require.NoError(t, db.GetContext(ctx, &fk, `PRAGMA foreign_keys`))
	assert.Equal(t, 1, fk, "foreign keys are on again on the pool's connections")
}

// TestInboundOrderUpgrade: a database an older cvbridge left at schema 7 has
// its inbound messages rebuilt for the superseded state without losing a
// field or an id.
func TestInboundOrderUpgrade(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, open := olderSchema(t, outboxtest.InboundOrderSchema)
	outboxtest.InboundOrderUpgrade(t, db, func() inboundstore.Store { return open().(*Store) })
	var check string
	require.NoError(t, db.GetContext(ctx, &check, `PRAGMA integrity_check`))
	assert.Equal(t, "ok", check)
}

// TestCountsUpgrade: a database an older cvbridge left at schema 8 gets
// counters that start at what its rows add up to.
func TestCountsUpgrade(t *testing.T) {
	t.Parallel()
	db, open := olderSchema(t, outboxtest.CountsSchema)
	outboxtest.CountsUpgrade(t, db, open)
}

// TestInboundPersonKeyUpgrade: a database an older cvbridge left at schema
// 10 gets inbound_messages.person_key, made by source.PersonKey also for
// the ids SQLite's lower() does not fold.
func TestInboundPersonKeyUpgrade(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, open := olderSchema(t, outboxtest.InboundPersonKeySchemaSQLite)
	outboxtest.InboundPersonKeyUpgrade(t, db, func() inboundstore.Store { return open().(*Store) })
	var check string
	require.NoError(t, db.GetContext(ctx, &check, `PRAGMA integrity_check`))
	assert.Equal(t, "ok", check)
}
