// Package sqlcore is the SQL the SQLite and PostgreSQL outbox backends share
// on the results, attempts, cursors, marks, target_state and leases tables:
// the operator's queries and actions (List, Get, Counts, OldestPending,
// Retry, Cancel, Purge), the intake's cursors and marks, the targets' paused
// state, the named leases (outbox.Leaser), the row types those tables are
// read into, and the loading of each backend's embedded migrations. Both
// backends embed a Base configured with what differs between them: how a
// write transaction runs, the isolation of a read snapshot, the row locks
// PostgreSQL takes, and the writer lock that serialises SQLite's writes.
// The outbox's rules are written here once: enqueue (queue, replace, wait,
// ignore, reject), finish and its settling of a waiting completion, release,
// the operator's retry, cancel and confirm, and the purge. Each backend
// supplies only its dialect: connection setup, migrations, how a write
// transaction runs, row locks, the claim statement, and PostgreSQL's
// one-statement batch finish.
//
// It follows the backends' storage conventions: every time is an integer of
// Unix milliseconds UTC (NULL for a zero time.Time), and queries are written
// with ? placeholders and passed through sqlx's Rebind.
package sqlcore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// Config is what a backend gives New.
type Config struct {
	// DB is the backend's database.
	DB *sqlx.DB
	// InTx runs fn in one write transaction, committed when fn returns nil
	// and rolled back otherwise, fn's error returned as it is. It takes
	// any writer lock the backend needs itself.
	InTx func(ctx context.Context, fn func(*sqlx.Tx) error) error
	// ReadIsolation is the isolation level of the read-only transaction
	// a read of several statements runs in (sql.LevelRepeatableRead on
	// PostgreSQL, so they see one snapshot; the default where a read
	// transaction already does).
	ReadIsolation sql.IsolationLevel
	// WriteLock, when set, is held around each write made outside InTx
	// (SQLite's in-process writer lock). Nil means none.
	WriteLock sync.Locker
	// RowLock is appended to a row lookup whose row the same transaction
	// then updates (" FOR UPDATE" on PostgreSQL, "" where a write
	// transaction already excludes other writers).
	RowLock string
	// SkipLocked is appended to the subquery choosing the rows a purge
	// deletes (" FOR UPDATE SKIP LOCKED" on PostgreSQL, so a purge never
	// waits on or blocks delivery).
	SkipLocked string
	// ActivePairConflict, when set, reports whether err is the violation
	// of the one-active-row-per-pair index by a concurrent transaction.
	// Nil means writes are serialised and it cannot happen.
	ActivePairConflict func(err error) bool
	// Stmts holds the store's prepared hot statements.
	Stmts *Statements
	// Now is the store's clock.
	Now func() time.Time
	// ServerNow, when set, is the SQL expression of the database server's
	// clock in Unix milliseconds: named leases are then decided on it, not
	// on the callers' clocks (PostgreSQL, shared by daemons on several
	// machines). Empty: the caller's now.
	ServerNow string
	// BatchSetup, when set, runs first in every InTx transaction (a source
	// batch's enqueues): PostgreSQL's "SET LOCAL enable_seqscan = off", so
	// the enqueue's statements, each of which has an index that answers it,
	// never run on a sequential-scan plan made while the table was empty
	// (see InTx).
	BatchSetup string
	// AfterIntake, when set, runs after an InTx transaction that offered
	// results to Enqueue has committed, with their number: PostgreSQL
	// refreshes the planner's statistics once its intake outgrew them.
	AfterIntake func(ctx context.Context, enqueued int)
	// Counters is a query giving the counted rows per (target, state) as
	// columns target, state and n, several rows of one pair adding up,
	// where state 'queued' is pending and sending together (so that claims
	// and releases change no counter; Counts splits it, see countsQuery);
	// HoursFrom likewise gives result_hours' columns target, hour,
	// delivered, failed and backlog. Both read the counters the schema's
	// triggers keep (result_counts and result_hours, plus PostgreSQL's
	// result_changes not yet folded in); empty means those tables alone.
	Counters, HoursFrom string
	// Compact, when set, runs before Counts and Hours read: PostgreSQL's
	// folding of result_changes into the tables. The counters read are
	// right without it; it keeps result_changes short.
	Compact func(ctx context.Context) error
	// FinishCounts, when set, says the schema's triggers leave the
	// counters of a finish's own transition (sending to delivered, failed
	// or probably-delivered) to the finish, which then adds them itself,
	// once per transaction, as FinishCounts says (SQLite's row triggers
	// would run three counter statements per result, PostgreSQL's statement
	// triggers capture every row a claim or finish changes; SQLite's
	// migration 0010, PostgreSQL's 0011). Nil: the triggers count them.
	FinishCounts *FinishCounts
	// Text makes a string storable in a TEXT column (PostgreSQL's TEXT
	// holds no NUL byte and only valid UTF-8). Nil stores strings as they are.
	Text func(string) string
}

// Base implements the outbox.Store methods whose SQL both backends share.
// It is safe for concurrent use.
type Base struct {
	db         *sqlx.DB
	inTx       func(ctx context.Context, fn func(*sqlx.Tx) error) error
	readOpts   sql.TxOptions
	writes     sync.Locker
	rowLock    string
	conflict   func(error) bool
	stmts      *Statements
	now        func() time.Time
	text       func(string) string
	batchSetup string
	// afterIntake is Config.AfterIntake.
	afterIntake func(ctx context.Context, enqueued int)
	// finishQ and insertAttemptQ are the finish statements, rebound.
	finishQ, insertAttemptQ string
	finishCounts            *FinishCounts // Config.FinishCounts
	// acquireLease is AcquireLease's statement for this backend, rebound.
	acquireLease string
	serverClock  bool // leases are decided on the server's clock
	// eraseQuery chooses a batch of delivered rows to erase, skipping rows
	// other transactions lock (Config.SkipLocked), rebound.
	eraseQuery string
	// purgeQuery is PurgeQuery(Config.SkipLocked), rebound.
	purgeQuery string
	// countsFrom is countsQuery of Config.Counters; hoursFrom is
	// Config.HoursFrom.
	countsFrom, hoursFrom string
	// countMovedQ reads back the rows a finish moved, where it counts them
	// (Config.FinishCounts), rebound.
	countMovedQ string
	compactFn   func(ctx context.Context) error
}

// New returns the Base c describes.
func New(c Config) *Base {
	b := &Base{db: c.DB, inTx: c.InTx, readOpts: sql.TxOptions{ReadOnly: true, Isolation: c.ReadIsolation},
		writes: c.WriteLock, rowLock: c.RowLock, conflict: c.ActivePairConflict,
		stmts: c.Stmts, now: c.Now, text: c.Text, batchSetup: c.BatchSetup,
		afterIntake: c.AfterIntake,
		finishQ:     c.DB.Rebind(FinishQuery), finishCounts: c.FinishCounts,
		insertAttemptQ: c.DB.Rebind(InsertAttemptQuery),
		acquireLease:   c.DB.Rebind(acquireLeaseQuery(c.ServerNow)), serverClock: c.ServerNow != "",
		purgeQuery: c.DB.Rebind(PurgeQuery(c.SkipLocked)),
		eraseQuery: c.DB.Rebind(erasable + c.SkipLocked),
		countsFrom: countsQuery(c.Counters), hoursFrom: c.HoursFrom, compactFn: c.Compact}
	if c.FinishCounts != nil {
		b.countMovedQ = c.DB.Rebind(`SELECT target, state, COUNT(*) AS n FROM results
			WHERE id IN (` + c.FinishCounts.MovedIDs + `) GROUP BY target, state`)
	}
	if b.hoursFrom == "" {
		b.hoursFrom = `SELECT target, hour, delivered, failed, backlog FROM result_hours`
	}
	if b.stmts == nil {
		b.stmts = NewStatements(c.DB)
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.text == nil {
		b.text = func(s string) string { return s }
	}
	if b.writes == nil {
		b.writes = noLock{}
	}
	if b.conflict == nil {
		b.conflict = func(error) bool { return false }
	}
	return b
}

// noLock is the sync.Locker of a backend without a writer lock.
type noLock struct{}

func (noLock) Lock()   {}
func (noLock) Unlock() {}

// q rewrites a query written with ? placeholders for the driver.
func (b *Base) q(query string) string { return b.db.Rebind(query) }

// readTx runs fn in one read-only transaction, so its statements see one
// snapshot.
func (b *Base) readTx(ctx context.Context, fn func(*sqlx.Tx) error) error {
	tx, err := b.db.BeginTxx(ctx, &b.readOpts)
	if err != nil {
		return fmt.Errorf("begin outbox read: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// Millis is t as stored: Unix milliseconds, NULL for the zero time.
func Millis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// FromMillis is the time a stored value stands for, in UTC; NULL is the zero time.
func FromMillis(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}
