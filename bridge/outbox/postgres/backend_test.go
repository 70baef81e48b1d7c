package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxtest"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// raw connects to dsn without the store, closed when t ends.
func raw(t testing.TB, dsn string) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("postgres", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	return db
}

func versions(t *testing.T, db *sqlx.DB) []int {
	t.Helper()
	var vs []int
	require.NoError(t, db.SelectContext(t.Context(), &vs, `SELECT version FROM schema_migrations ORDER BY version`))
	return vs
}

func TestMigrationsAreIdempotent(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	s := open(t, dsn)
	for range 2 {
		require.NoError(t, s.Migrate(t.Context()))
	}
	open(t, dsn) // a second Open finds the schema current
	want := make([]int, postgres.LatestSchema())
	for i := range want {
		want[i] = i + 1
	}
	require.NotEmpty(t, want)
	assert.Equal(t, want, versions(t, raw(t, dsn)), "each migration recorded once")
}

func TestOpensRacingMigrateOnce(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	const daemons = 6
	var wg sync.WaitGroup
	errs := make([]error, daemons)
	for i := range daemons {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), dsn)
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "daemon %d", i)
	}
	assert.Len(t, versions(t, raw(t, dsn)), postgres.LatestSchema())
}

func TestWithoutMigrations(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dsn := testdb.Postgres(t)

	_, err := postgres.Open(ctx, dsn, postgres.WithoutMigrations())
	require.Error(t, err, "an empty database is not migrated")
	assert.Contains(t, err.Error(), "run `cvbridge migrate`")
	var tables int
	require.NoError(t, raw(t, dsn).GetContext(ctx, &tables, `SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'`))
	assert.Zero(t, tables, "nothing was created")

	s := open(t, dsn)
	require.NoError(t, s.Close())
	open(t, dsn, postgres.WithoutMigrations()) // a current schema is accepted

	_, err = raw(t, dsn).ExecContext(ctx, `DELETE FROM schema_migrations WHERE version = $1`, postgres.LatestSchema())
	require.NoError(t, err)
	_, err = postgres.Open(ctx, dsn, postgres.WithoutMigrations())
	require.Error(t, err, "an older schema is refused")
	assert.Contains(t, err.Error(), "is older than this cvbridge needs")
}

func TestNewerSchemaIsRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dsn := testdb.Postgres(t)
	require.NoError(t, open(t, dsn).Close())
	_, err := raw(t, dsn).ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)`)
	require.NoError(t, err)
	for _, opts := range [][]postgres.Option{nil, {postgres.WithoutMigrations()}} {
		_, err = postgres.Open(ctx, dsn, opts...)
		require.Error(t, err)
		assert.Contains(t, err.Error(), fmt.Sprintf("database schema 99 is newer than this cvbridge knows (%d)", postgres.LatestSchema()))
	}
}

func TestOpenErrorsHideThePassword(t *testing.T) {
	t.Parallel()
	port := testdb.FreePort(t) // nothing listens there
	for _, dsn := range []string{
		fmt.Sprintf("postgres://cvbridge:s3cr3t-pw@127.0.0.1:%d/outbox?sslmode=disable&connect_timeout=2", port),
		fmt.Sprintf("host=127.0.0.1 port=%d user=cvbridge password=s3cr3t-pw dbname=outbox sslmode=disable connect_timeout=2", port),
		"postgres://cvbridge:s3cr3t-pw@[::1/outbox", // unparsable
	} {
		_, err := postgres.Open(t.Context(), dsn)
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "s3cr3t-pw")
	}
}

// enqueueN enqueues n results for target in one transaction.
func enqueueN(t testing.TB, s outbox.Store, target, prefix string, n int) {
	t.Helper()
	ctx := t.Context()
	require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error {
		for i := range n {
			person := fmt.Sprintf("%s-%d", prefix, i)
			if _, err := tx.Enqueue(ctx, outbox.NewResult{Target: target, Connection: "moodle", ElearningCode: "e1", PersonID: person,
				Body: fmt.Appendf(nil, `<CoachviewResultaat PersoonExterneId=%q/>`, person)}, outbox.EnqueuePolicy{}); err != nil {
				return err
			}
		}
		return nil
	}))
}

// TestTwoDaemonsClaimEachRowOnce drains a few thousand rows with claimers
// in two Stores (two daemons, each with its own pool) on one database.
func TestTwoDaemonsClaimEachRowOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dsn := testdb.Postgres(t)
	clk := clock.NewFake(outboxtest.Epoch)
	daemons := []*postgres.Store{open(t, dsn, postgres.WithClock(clk), postgres.WithLeasesOnStoreClock()), open(t, dsn, postgres.WithClock(clk), postgres.WithLeasesOnStoreClock())}
	const rows, workersPerDaemon, batch = 3000, 4, 25
	enqueueN(t, daemons[0], "cv", "p", rows)

	var (
		mu      sync.Mutex
		claimed = map[int64][]string{}
		errs    []error
		wg      sync.WaitGroup
	)
	for d, s := range daemons {
		for w := range workersPerDaemon {
			owner := fmt.Sprintf("daemon-%d/worker-%d", d, w)
			wg.Go(func() {
				for {
					items, err := s.Claim(ctx, "cv", owner, batch, clk.Now(), time.Hour)
					for _, it := range items {
						if err == nil {
							err = s.Finish(ctx, outbox.Finish{ID: it.ID, Owner: owner, State: outbox.StateDelivered,
								Attempt: outbox.Attempt{Status: 200, Class: "delivered"}})
						}
					}
					mu.Lock()
					for _, it := range items {
						claimed[it.ID] = append(claimed[it.ID], owner)
					}
					if err != nil {
						errs = append(errs, err)
					}
					mu.Unlock()
					if err != nil || len(items) == 0 {
						return
					}
				}
			})
		}
	}
	wg.Wait()
	require.Empty(t, errs)
	assert.Len(t, claimed, rows, "every row was claimed")
	byDaemon := map[string]int{}
	for id, owners := range claimed {
		require.Len(t, owners, 1, "row #%d was claimed by %v", id, owners)
		byDaemon[strings.Split(owners[0], "/")[0]]++
	}
	assert.Len(t, byDaemon, 2, "both daemons took part: %v", byDaemon)
	counts, err := daemons[1].Counts(ctx, "cv")
	require.NoError(t, err)
	assert.Equal(t, rows, counts[outbox.StateDelivered])
}

// fillDelivered adds n delivered rows of target in one statement, the way
// months of retained history look, and refreshes the planner's statistics.
func fillDelivered(t testing.TB, db *sqlx.DB, target string, n int) {
	t.Helper()
	ms := outboxtest.Epoch.Add(-30 * 24 * time.Hour).UnixMilli()
	_, err := db.ExecContext(t.Context(), `INSERT INTO results
		(target, connection, elearningcode, person_id, person_key, body, body_hash, state, active, tries, last_status,
		 created_at, updated_at, delivered_at)
		SELECT $1, 'moodle', 'e' || (i % 50), 'P' || i, 'p' || i, convert_to('<CoachviewResultaat n="' || i || '"/>', 'UTF8'),
			sha256(convert_to('<CoachviewResultaat n="' || i || '"/>', 'UTF8')), 'delivered', TRUE, 1, 200,
			$2::bigint + i, $2::bigint + i, $2::bigint + i
		FROM generate_series(1, $3) AS i`, target, ms, n)
	require.NoError(t, err)
	_, err = db.ExecContext(t.Context(), `ANALYZE results`)
	require.NoError(t, err)
}

// planIndexes returns the indexes a query's plan uses.
func planIndexes(t *testing.T, db *sqlx.DB, query string, args ...any) []string {
	t.Helper()
	var plan []byte
	require.NoError(t, db.GetContext(t.Context(), &plan, db.Rebind(`EXPLAIN (FORMAT JSON) `+query), args...))
	var nodes []map[string]any
	require.NoError(t, json.Unmarshal(plan, &nodes))
	var found []string
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		if idx, ok := n["Index Name"].(string); ok {
			found = append(found, idx)
		}
		if typ, _ := n["Node Type"].(string); typ == "Seq Scan" {
			found = append(found, "Seq Scan on "+fmt.Sprint(n["Relation Name"]))
		}
		kids, _ := n["Plans"].([]any)
		for _, k := range kids {
			if km, ok := k.(map[string]any); ok {
				walk(km)
			}
		}
	}
	for _, n := range nodes {
		walk(n["Plan"].(map[string]any))
	}
	return found
}

func TestQueriesUseTheirIndexesWithManyDeliveredRows(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	s := open(t, dsn)
	db := raw(t, dsn)
	fillDelivered(t, db, "cv", 200_000)
	enqueueN(t, s, "cv", "due", 20)

	now := time.Now().UnixMilli()
	tests := []struct {
		name, query, index string
		args               []any
	}{
		{"claim", postgres.ClaimQuery, "results_due", []any{"cv", now, 10, "w", now, now, now, 90000}},
		{"next due", postgres.NextDueQuery, "results_due", []any{"cv"}},
		// The planner may pick results_person, as selective as the pair index.
		{"enqueue pair lookup", postgres.ActiveRowQuery, "", []any{"cv", "e1", "p1"}},
		{"purge", postgres.PurgeQuery, "results_purge", []any{now, 1000}},
	}
	for _, tc := range tests {
		used := planIndexes(t, db, tc.query, tc.args...)
		require.NotEmpty(t, used, tc.name)
		if tc.index != "" {
			assert.Contains(t, used, tc.index, "%s: plan uses %v", tc.name, used)
		}
		for _, u := range used {
			assert.NotContains(t, u, "Seq Scan", "%s: plan uses %v", tc.name, used)
		}
	}
	items, err := s.Claim(t.Context(), "cv", "w", 50, time.Now().Add(time.Second), time.Minute)
	require.NoError(t, err)
	assert.Len(t, items, 20, "only the due rows are claimed")
}

func TestPurgeInBatches(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dsn := testdb.Postgres(t)
	s := open(t, dsn)
	fillDelivered(t, raw(t, dsn), "cv", 2500)
	enqueueN(t, s, "cv", "kept", 5)

	var batches []int
	for {
		n, err := s.Purge(ctx, outboxtest.Epoch, 1000)
		require.NoError(t, err)
		batches = append(batches, n)
		if n < 1000 {
			break
		}
	}
	assert.Equal(t, []int{1000, 1000, 500}, batches)
	counts, err := s.Counts(ctx, "cv")
	require.NoError(t, err)
	assert.Equal(t, 2500, counts[outbox.StateDelivered], "delivered rows are kept, as the record of their pairs")
	var bodies int
	require.NoError(t, raw(t, dsn).GetContext(ctx, &bodies, `SELECT COUNT(*) FROM results WHERE state = 'delivered' AND body IS NOT NULL`))
	assert.Zero(t, bodies, "and erased")
	assert.Equal(t, 5, counts[outbox.StatePending], "pending rows are never purged")
}

// TestActiveFlagUpgrade: a database an older cvbridge left at schema 5
// migrates to results.active without breaking the pair rule.
func TestActiveFlagUpgrade(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	db := raw(t, dsn)
	require.NoError(t, postgres.SchemaUpTo(t.Context(), db, outboxtest.ActiveFlagSchema))
	outboxtest.ActiveFlagUpgrade(t, db, func() outbox.Store { return open(t, dsn) })

	// The CHECK constraint refuses a flag that contradicts the state.
	ms := outboxtest.Epoch.UnixMilli()
	for _, c := range []struct {
		state  outbox.State
		active bool
	}{{outbox.StateRejected, true}, {outbox.StatePending, false}} {
		_, err := db.ExecContext(t.Context(), `INSERT INTO results
			(target, connection, elearningcode, person_id, person_key, state, active, created_at, updated_at)
			VALUES ('cv', 'csv', 'E2', 'p9', 'p9', $1, $2, $3, $3)`, string(c.state), c.active, ms)
		assert.ErrorContains(t, err, "results_active_matches_state", "%s flagged active=%t", c.state, c.active)
	}
}

// TestCountsUpgrade: a database an older cvbridge left at schema 8 gets
// counters that start at what its rows add up to.
func TestCountsUpgrade(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	db := raw(t, dsn)
	require.NoError(t, postgres.SchemaUpTo(t.Context(), db, outboxtest.CountsSchema))
	outboxtest.CountsUpgrade(t, db, func() outbox.Store { return open(t, dsn) })
}

// TestSupersessionUpgrade: a database an older cvbridge left at schema 6
// migrates to the new states, and the CHECK constraints know them.
func TestSupersessionUpgrade(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	db := raw(t, dsn)
	require.NoError(t, postgres.SchemaUpTo(t.Context(), db, outboxtest.SupersessionSchema))
	outboxtest.SupersessionUpgrade(t, db, func() outbox.Store { return open(t, dsn) })

	ms := outboxtest.Epoch.UnixMilli()
	_, err := db.ExecContext(t.Context(), `INSERT INTO results
		(target, connection, elearningcode, person_id, person_key, state, active, created_at, updated_at)
		VALUES ('cv', 'csv', 'E2', 'p9', 'p9', 'waiting', TRUE, $1, $1)`, ms)
	assert.ErrorContains(t, err, "results_active_matches_state", "a waiting row takes no part in the pair rule")
	_, err = db.ExecContext(t.Context(), `INSERT INTO results
		(target, connection, elearningcode, person_id, person_key, state, active, created_at, updated_at)
		VALUES ('cv', 'csv', 'E2', 'p9', 'p9', 'lost', FALSE, $1, $1)`, ms)
	assert.ErrorContains(t, err, "results_state_check")
}

// TestInboundOrderUpgrade: a database an older cvbridge left at schema 7
// migrates to the superseded state of inbound messages.
func TestInboundOrderUpgrade(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	db := raw(t, dsn)
	require.NoError(t, postgres.SchemaUpTo(t.Context(), db, outboxtest.InboundOrderSchema))
	outboxtest.InboundOrderUpgrade(t, db, func() inboundstore.Store { return open(t, dsn) })
}

// TestInboundPersonKeyUpgrade: a database an older cvbridge left at schema 9
// gets inbound_messages.person_key, made by source.PersonKey whatever the
// database's locale; the column has no default, so no insert can leave it
// out.
func TestInboundPersonKeyUpgrade(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	db := raw(t, dsn)
	require.NoError(t, postgres.SchemaUpTo(t.Context(), db, outboxtest.InboundPersonKeySchemaPostgres))
	outboxtest.InboundPersonKeyUpgrade(t, db, func() inboundstore.Store { return open(t, dsn) })

	_, err := db.ExecContext(t.Context(), `INSERT INTO inbound_messages
		(source, dedupe_key, received_at, verified, action, person_id, state, updated_at)
		VALUES ('link', 'z', 0, 'bearer', 'enrol', 'P9', 'pending', 0)`)
	assert.ErrorContains(t, err, "person_key")
}

// TestLeasesOnTheServersClock: a daemon whose clock runs two minutes ahead
// shares the database with one whose clock is right. It cannot take the
// other's live lease on a row, nor its poll lease, however late its own
// clock says it is; once the server's clock says the lease ended, it can.
// Found with two daemons on one PostgreSQL, one clock 2 minutes ahead: 102
// of 180 results were sent twice.
func TestLeasesOnTheServersClock(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	ctx := t.Context()
	right := open(t, dsn)
	ahead := open(t, dsn, postgres.WithClock(clock.Skewed{Base: clock.System{}, By: 2 * time.Minute}))
	require.NoError(t, right.InTx(ctx, func(tx outbox.Tx) error {
		_, err := tx.Enqueue(ctx, outbox.NewResult{Target: "cv", ElearningCode: "E1", PersonID: "p1", Body: []byte("<x/>")}, outbox.EnqueuePolicy{})
		return err
	}))
	const lease = 1500 * time.Millisecond
	mine, err := right.Claim(ctx, "cv", "right", 10, time.Now(), lease)
	require.NoError(t, err)
	require.Len(t, mine, 1)
	ok, err := right.AcquireLease(ctx, "poll:moodle", "right", lease, time.Now())
	require.NoError(t, err)
	require.True(t, ok)

	aheadNow := time.Now().Add(2 * time.Minute)
	stolen, err := ahead.Claim(ctx, "cv", "ahead", 10, aheadNow, lease)
	require.NoError(t, err)
	assert.Empty(t, stolen, "a live lease is not taken, whatever the taker's clock says")
	ok, err = ahead.AcquireLease(ctx, "poll:moodle", "ahead", lease, aheadNow)
	require.NoError(t, err)
	assert.False(t, ok, "nor a live poll lease")

	skew, err := ahead.ClockSkew(ctx)
	require.NoError(t, err)
	assert.InDelta(t, (2 * time.Minute).Seconds(), skew.Seconds(), 5, "the skew is measured against the server")

	time.Sleep(lease + 200*time.Millisecond) // the lease ends on the server's clock
	taken, err := ahead.Claim(ctx, "cv", "ahead", 10, time.Now().Add(2*time.Minute), lease)
	require.NoError(t, err)
	require.Len(t, taken, 1, "an ended lease is taken over")
	assert.True(t, taken[0].OutcomeUnknown)
	ok, err = ahead.AcquireLease(ctx, "poll:moodle", "ahead", lease, time.Now().Add(2*time.Minute))
	require.NoError(t, err)
	assert.True(t, ok)
}

// TestHistoryLookupWithoutStatistics: on a fresh database that has never
// been analysed, with 20,000 rejected rows of one target, the enqueue's
// history lookup still goes through results_person. Found from outside: it
// went through results_target_state and scanned every rejected row of the
// target for each new one (20,000 rejected rows took 32 s).
func TestHistoryLookupWithoutStatistics(t *testing.T) {
	t.Parallel()
	dsn := testdb.Postgres(t)
	open(t, dsn) // migrates
	db := raw(t, dsn)
	_, err := db.ExecContext(t.Context(), `ALTER TABLE results SET (autovacuum_enabled = false)`)
	require.NoError(t, err)
	_, err = db.ExecContext(t.Context(), `INSERT INTO results
		(target, connection, elearningcode, person_id, person_key, body_hash, state, active, last_error, created_at, updated_at)
		SELECT 'cv', 'csv', 'E' || (g % 50), 'P' || g, 'p' || g, decode(md5(g::text), 'hex'), 'rejected', FALSE, 'bad', 0, 0
		FROM generate_series(1, 20000) g`)
	require.NoError(t, err)
	used := planIndexes(t, db, postgres.HistoryQuery, "p77", "cv", "E27", "rejected", []byte{0})
	assert.Equal(t, []string{"results_person"}, used)
}

// TestLargeBatchIntoFreshDatabaseScansNoRows: 3,000 results (one in ten
// rejected) enqueued in one transaction into a fresh database read no
// table rows sequentially, by the server's own counters. Found from
// outside: a plan cached while the table was empty scanned every row the
// transaction had added for each new one, and a 300,000-row file had
// reached 54,659 rows after 5 minutes.
func TestLargeBatchIntoFreshDatabaseScansNoRows(t *testing.T) {
	t.Parallel()
	const n = 3000
	dsn := testdb.Postgres(t)
	s := open(t, dsn)
	ctx := t.Context()
	require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error {
		for i := range n {
			r := outbox.NewResult{Target: "cv", Connection: "csv", ElearningCode: "E1", PersonID: fmt.Sprintf("p%05d", i),
				SourceRef: fmt.Sprintf("export.csv:%d", i+2), Body: fmt.Appendf(nil, "<r n=%q/>", fmt.Sprint(i))}
			if i%10 == 3 {
				r.Body, r.RejectReason = nil, "PersoonExterneId is longer than 50 characters"
			}
			if _, err := tx.Enqueue(ctx, r, outbox.EnqueuePolicy{ReplacePending: true}); err != nil {
				return err
			}
		}
		return nil
	}))
	stats := serverTableStats(t, raw(t, dsn), "results", func(st tableStats) bool { return st.Inserted >= n })
	assert.Less(t, stats.SeqRead, int64(n), "rows read by sequential scans: a lookup per result scanned the table")
}

// tableStats are a table's counters in pg_stat_user_tables.
type tableStats struct {
	Inserted int64 `db:"n_tup_ins"`
	Updated  int64 `db:"n_tup_upd"`
	SeqRead  int64 `db:"seq_tup_read"`
}

// serverTableStats returns table's counters once ready accepts them. The
// server publishes a backend's counters when it goes idle, within its flush
// interval (10 s at most); after 30 s the test fails.
func serverTableStats(t *testing.T, db *sqlx.DB, table string, ready func(tableStats) bool) tableStats {
	t.Helper()
	var stats tableStats
	deadline := time.Now().Add(30 * time.Second)
	for {
		require.NoError(t, db.GetContext(t.Context(), &stats, `SELECT n_tup_ins, n_tup_upd, coalesce(seq_tup_read, 0) AS seq_tup_read
			FROM pg_stat_user_tables WHERE relname = $1`, table))
		if ready(stats) {
			return stats
		}
		require.False(t, time.Now().After(deadline), "the server's counters of %s: %+v", table, stats)
		time.Sleep(200 * time.Millisecond)
	}
}

// TestOneConnectionNeverWaitsForAnother: a store whose pool has a single
// connection enqueues, claims and finishes. A transaction's statements are
// prepared on the pool the first time they run, which needs a second
// connection while the transaction holds the only one: the first enqueue
// waited for it forever. (A pool of ten stalls alike when ten transactions
// each need a statement not yet prepared, as at a daemon's start under a
// burst of webhooks.)
func TestOneConnectionNeverWaitsForAnother(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	clk := clock.NewFake(outboxtest.Epoch)
	s := open(t, testdb.Postgres(t), postgres.WithClock(clk), postgres.WithLeasesOnStoreClock(), postgres.WithMaxConns(1))
	for round := range 2 { // the first round prepares on the transaction, the second on the pool
		require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error {
			_, err := tx.Enqueue(ctx, outbox.NewResult{Target: "cv", Connection: "csv", ElearningCode: "E1",
				PersonID: fmt.Sprintf("p%d", round), Body: fmt.Appendf(nil, "<r%d/>", round)}, outbox.EnqueuePolicy{})
			return err
		}), "round %d", round)
	}
	items, err := s.Claim(ctx, "cv", "w", 10, clk.Now(), time.Minute)
	require.NoError(t, err)
	require.Len(t, items, 2)
	for _, it := range items {
		require.NoError(t, s.Finish(ctx, outbox.Finish{ID: it.ID, Owner: "w", State: outbox.StateDelivered, Tries: 1,
			Attempt: outbox.Attempt{Status: 200}}))
	}
	counts, err := s.Counts(ctx, "cv")
	require.NoError(t, err)
	assert.Equal(t, 2, counts[outbox.StateDelivered])
}
