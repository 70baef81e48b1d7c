package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
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
		{"temp_store", "2"}, // MEMORY
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
		{"purge", sqlcore.PurgeQuery(""), "results_purge", []any{0, 10}},
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
	assert.Equal(t, 1, count(), "a delivered row is erased, not deleted: its attempts stay")

	// A cancelled row (the history the purge deletes) takes its attempts.
	require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error {
		_, err := tx.Enqueue(ctx, outbox.NewResult{Target: "cv", ElearningCode: "e2", PersonID: "p1", Body: []byte("<y/>")}, outbox.EnqueuePolicy{})
		return err
	}))
	items, err = s.Claim(ctx, "cv", "w", 1, now, time.Minute)
	require.NoError(t, err)
	require.Len(t, items, 1)
	require.NoError(t, s.Finish(ctx, outbox.Finish{ID: items[0].ID, Owner: "w", State: outbox.StateFailed, Attempt: outbox.Attempt{Status: 500}}))
	require.NoError(t, s.Cancel(ctx, items[0].ID, now))
	require.Equal(t, 2, count())
	n, err = s.Purge(ctx, now.Add(time.Millisecond), 10)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	assert.Equal(t, 1, count(), "the attempts go with their result")
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

// TestHotWritesBuildNoTempTables: the statements that write a result on
// its way through the outbox (enqueue, claim, finish, release) build no
// temporary b-tree for each row they write. SQLite builds one for an IN
// list of more than two values in a CHECK constraint, a partial index's
// WHERE or a trigger's WHEN, every row again, and before migration 0012 a
// claim and a finish each built four. A temporary b-tree built once per
// statement (behind a Once) is fine.
func TestHotWritesBuildNoTempTables(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	tests := []struct{ name, query string }{
		{"enqueue", sqlcore.InsertActiveQuery},
		{"claim", claimLeaseQuery},
		{"finish", sqlcore.FinishQuery},
		{"release", sqlcore.ReleaseQuery},
		{"attempt", sqlcore.InsertAttemptQuery},
	}
	for _, tc := range tests {
		perRow, _ := inListTrees(t, s.db, tc.query)
		assert.Empty(t, perRow, "%s builds an IN list's temporary b-tree for each row", tc.name)
	}
}

// TestInListTreesSeesBoth keeps TestHotWritesBuildNoTempTables able to
// fail: on this build's SQLite, inListTrees finds a CHECK's IN list built
// for each row and a query's built once.
func TestInListTreesSeesBoth(t *testing.T) {
	t.Parallel()
	db, err := sqlx.Open("sqlite", ":memory:")
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	db.SetMaxOpenConns(1) // one in-memory database
	_, err = db.ExecContext(t.Context(), `CREATE TABLE t (s TEXT CHECK (s IN ('a', 'b', 'c')))`)
	require.NoError(t, err)
	perRow, once := inListTrees(t, db, `INSERT INTO t (s) VALUES (?)`)
	assert.NotEmpty(t, perRow, "the CHECK's list is built for each row")
	assert.Zero(t, once)
	perRow, once = inListTrees(t, db, `SELECT count(*) FROM t WHERE s IN ('a', 'b', 'c')`)
	assert.Empty(t, perRow)
	assert.Equal(t, 1, once, "the query's list is built once")
}

// inListTrees reads query's program (and its triggers' programs) from
// EXPLAIN and returns where it builds an IN list's temporary b-tree for each
// row it writes, and how many such b-trees it builds once per statement.
func inListTrees(t *testing.T, db *sqlx.DB, query string) (perRow []string, once int) {
	t.Helper()
	args := make([]any, strings.Count(query, "?")) // EXPLAIN binds, but runs nothing
	var ops []struct {
		Addr    int            `db:"addr"`
		Opcode  string         `db:"opcode"`
		P1      int            `db:"p1"`
		P2      int            `db:"p2"`
		P3      int            `db:"p3"`
		P4      sql.NullString `db:"p4"`
		P5      int            `db:"p5"`
		Comment sql.NullString `db:"comment"`
	}
	require.NoError(t, db.SelectContext(t.Context(), &ops, "EXPLAIN "+query, args...))
	program := "the statement"
	for i, op := range ops {
		if i > 0 && op.Addr == 0 {
			program = "a trigger's program" // EXPLAIN lists each trigger's program after the statement's
		}
		// An IN list's b-tree is filled with its constants right away;
		// other temporary tables (the rows a RETURNING gives, the ids an
		// UPDATE collects first) are filled from rows, once.
		inList := op.Opcode == "OpenEphemeral" && i+3 < len(ops) && slices.Contains([]string{"String8", "Integer", "Real"}, ops[i+1].Opcode) &&
			ops[i+2].Opcode == "MakeRecord" && ops[i+3].Opcode == "IdxInsert"
		switch {
		case !inList:
		case program == "the statement" && i > 0 && ops[i-1].Opcode == "Once":
			once++
		default:
			perRow = append(perRow, fmt.Sprintf("%s at %d", program, op.Addr))
		}
	}
	return perRow, once
}

// TestRowChecksUpgrade: a database an older cvbridge left at schema 11 is
// rebuilt for the state checks without IN lists (migration 0012) and keeps
// every row with every column, every attempt and the id sequence; the
// counters keep following the rows.
func TestRowChecksUpgrade(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, open := olderSchema(t, 11)
	for i, st := range outbox.States {
		person := fmt.Sprintf("p%d", i)
		_, err := db.ExecContext(ctx, `INSERT INTO results (target, connection, elearningcode, person_id, person_key,
			source_ref, completed_at, body, body_hash, state, tries, streak, streak_since, last_class, last_status,
			last_error, next_attempt_at, lease_owner, lease_until, created_at, updated_at, delivered_at, active,
			waiting_id, outcome_unknown)
			VALUES ('cv', 'csv', 'E1', ?, ?, 'line 2', 5, '<x/>', x'01', ?, 2, 1, 3, 'transient', 503, 'busy', 7,
				'w', 8, 1, 9, 10, ?, ?, ?)`,
			strings.ToUpper(person), person, string(st), st.Active(), i+100, i%2)
		require.NoError(t, err)
	}
	_, err := db.ExecContext(ctx, `INSERT INTO attempts (result_id, at, status, class, response, error, duration_ns)
		SELECT id, 11, 503, 'transient', 'Service Unavailable', '', 40 FROM results`)
	require.NoError(t, err)
	var purged int64 // the newest row was purged: its id is never given out again
	require.NoError(t, db.GetContext(ctx, &purged, `DELETE FROM results WHERE id = (SELECT MAX(id) FROM results) RETURNING id`))

	snapshot := func(query string) []map[string]any {
		rows, err := db.QueryxContext(ctx, query)
		require.NoError(t, err)
		defer func() { require.NoError(t, rows.Close()) }()
		var all []map[string]any
		for rows.Next() {
			row := map[string]any{}
			require.NoError(t, rows.MapScan(row))
			all = append(all, row)
		}
		require.NoError(t, rows.Err())
		return all
	}
	results, attempts := snapshot(`SELECT * FROM results ORDER BY id`), snapshot(`SELECT * FROM attempts ORDER BY id`)
	require.Len(t, attempts, len(outbox.States)-1, "the purged row's attempt went with it")

	s := open()
	assert.Equal(t, results, snapshot(`SELECT * FROM results ORDER BY id`), "every row and column kept")
	assert.Equal(t, attempts, snapshot(`SELECT * FROM attempts ORDER BY id`), "every attempt kept, with its result")
	var check string
	require.NoError(t, db.GetContext(ctx, &check, `PRAGMA integrity_check`))
	assert.Equal(t, "ok", check)

	outboxtest.AssertCounts(t, s, db)
	require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error {
		_, err := tx.Enqueue(ctx, outbox.NewResult{Target: "cv", ElearningCode: "E2", PersonID: "new", Body: []byte("<x/>")}, outbox.EnqueuePolicy{})
		return err
	}))
	items, err := s.Claim(ctx, "cv", "w2", 10, time.Now().Add(time.Hour), time.Minute)
	require.NoError(t, err)
	require.True(t, slices.ContainsFunc(items, func(it outbox.Item) bool { return it.PersonID == "new" }))
	for _, it := range items {
		if it.PersonID == "new" {
			assert.Greater(t, it.ID, purged, "no id is given out twice")
		}
		require.NoError(t, s.Finish(ctx, outbox.Finish{ID: it.ID, Owner: "w2", State: outbox.StateDelivered, Tries: 1, Attempt: outbox.Attempt{Status: 200}}))
	}
	outboxtest.AssertCounts(t, s, db)
}
