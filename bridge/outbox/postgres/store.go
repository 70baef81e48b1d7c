// Package postgres is the PostgreSQL backend of the outbox Store, for
// providers who run several cvbridge daemons on one database or want the
// outbox in a database their IT already backs up. It owns the schema of that
// database (embedded, numbered migrations, applied under an advisory lock)
// and the SQL that keeps several daemons from delivering one result twice;
// delivery policy belongs to the delivery package.
//
// Storage conventions, shared with the SQLite backend so both return equal
// outbox.Items and a store copies across unchanged: every time is a BIGINT
// of Unix milliseconds UTC (NULL for a zero time.Time), so times read back
// are in UTC and truncated to the millisecond; the one-row-per-pair rule is
// a partial unique index; queries are written with ? placeholders and passed
// through sqlx's Rebind.
//
// Several daemons: Claim locks due rows with FOR UPDATE SKIP LOCKED, so two
// daemons claiming at once get disjoint rows; Enqueue locks the pair's active
// row (FOR UPDATE) and inserts new pairs with ON CONFLICT DO NOTHING, so two
// transactions enqueueing one pair neither both insert nor both replace.
// Transactions run at READ COMMITTED.
//
// Connection loss: a call that fails because the server went away
// (restart, failover, network) returns that error and changes nothing
// (its transaction is rolled back by the server); the store holds no state
// tied to a connection, so the next call works as soon as the server is
// back. database/sql discards the pool's connections that died with the
// server and retries a statement on a fresh connection when the dead one
// failed before sending it (TestServerRestart restarts a real server under
// a full pool to show it).
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // registers the "postgres" database/sql driver

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlinbound"
)

// Pool defaults. A daemon's delivery workers and intake share the pool; ten
// connections serve both without starving the server of connection slots
// when several daemons share it.
const (
	defaultMaxConns    = 10
	defaultConnMaxLife = 30 * time.Minute
)

var _ outbox.Store = (*Store)(nil)

// Store is the PostgreSQL outbox. It is safe for concurrent use, and several
// Stores (in several daemons) may share one database.
type Store struct {
	db       *sqlx.DB
	clock    clock.Clock
	migrate  bool
	maxConns int
	// Store holds the inbound messages and OAuth tokens, locking the rows
	// it updates so several daemons can share them.
	*sqlinbound.Store
}

// Option changes how Open sets up a Store.
type Option func(*Store)

// WithClock makes the store take the current time (for created_at,
// updated_at and the due time of newly enqueued rows) from c instead of the
// system clock.
func WithClock(c clock.Clock) Option {
	return func(s *Store) { s.clock = c }
}

// WithoutMigrations makes Open leave the schema alone: it then only checks
// that the database is at the schema version this build expects, and fails
// with a request to run `cvbridge migrate` when it is not.
func WithoutMigrations() Option {
	return func(s *Store) { s.migrate = false }
}

// WithMaxConns bounds the connection pool to n connections (default 10).
func WithMaxConns(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.maxConns = n
		}
	}
}

// Open connects to the PostgreSQL database dsn (a lib/pq URL or key=value
// DSN) and, unless WithoutMigrations is given, migrates it to the newest
// schema this build knows. It refuses a database written by a newer
// cvbridge. Errors never contain the DSN, which may hold a password.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	s := &Store{clock: clock.System{}, migrate: true, maxConns: defaultMaxConns}
	for _, o := range opts {
		o(s)
	}
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("outbox database (postgres): parse DSN: %w", redact(err, dsn))
	}
	db.SetMaxOpenConns(s.maxConns)
	db.SetMaxIdleConns(s.maxConns)
	db.SetConnMaxLifetime(defaultConnMaxLife)
	s.db = db
	s.Store = sqlinbound.New(sqlinbound.Config{DB: db, InTx: s.inTx, Now: s.now,
		RowLock: ` FOR UPDATE`, ClaimLock: ` FOR UPDATE SKIP LOCKED`})
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("outbox database (postgres): connect: %w", redact(err, dsn))
	}
	if s.migrate {
		err = s.Migrate(ctx)
	} else {
		err = s.checkSchema(ctx)
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the connection pool.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close outbox database (postgres): %w", err)
	}
	return nil
}

// q rewrites a query written with ? placeholders into PostgreSQL's $n.
func (s *Store) q(query string) string { return s.db.Rebind(query) }

// now is the store clock's time.
func (s *Store) now() time.Time { return s.clock.Now() }

// inTx runs fn in one READ COMMITTED transaction, committed when fn returns
// nil and rolled back otherwise, fn's error returned as it is.
func (s *Store) inTx(ctx context.Context, fn func(*sqlx.Tx) error) (err error) {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin outbox transaction: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			return errors.Join(err, fmt.Errorf("roll back outbox transaction: %w", rbErr))
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit outbox transaction: %w", err)
	}
	return nil
}

// readTx runs fn in one read-only REPEATABLE READ transaction: all its
// statements see one snapshot.
func (s *Store) readTx(ctx context.Context, fn func(*sqlx.Tx) error) (err error) {
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return fmt.Errorf("begin outbox read: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// InTx runs fn in one transaction, committed when fn returns nil. When fn
// fails, nothing it did is kept and its error is returned unchanged.
func (s *Store) InTx(ctx context.Context, fn func(outbox.Tx) error) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		t := &txn{s: s, tx: tx}
		defer t.close()
		return fn(t)
	})
}

// txn is the outbox.Tx of one InTx call.
type txn struct {
	s     *Store
	tx    *sqlx.Tx
	stmts map[string]*sqlx.Stmt
}

// stmt returns query (written with ? placeholders) prepared in the
// transaction. A source batch enqueues thousands of results in one
// transaction; preparing each statement once saves the server planning it
// anew for every row.
func (t *txn) stmt(ctx context.Context, query string) (*sqlx.Stmt, error) {
	if st, ok := t.stmts[query]; ok {
		return st, nil
	}
	st, err := t.tx.PreparexContext(ctx, t.s.q(query))
	if err != nil {
		return nil, err
	}
	if t.stmts == nil {
		t.stmts = make(map[string]*sqlx.Stmt)
	}
	t.stmts[query] = st
	return st, nil
}

// close closes the transaction's prepared statements, freeing them on the
// server before the connection goes back to the pool.
func (t *txn) close() {
	for _, st := range t.stmts {
		_ = st.Close()
	}
}

var _ outbox.Tx = (*txn)(nil)

// SaveCursor stores connection's cursor, replacing the previous one.
func (t *txn) SaveCursor(ctx context.Context, connection string, cursor []byte) error {
	if cursor == nil {
		cursor = []byte{}
	}
	_, err := t.tx.ExecContext(ctx, t.s.q(`INSERT INTO cursors (connection, cursor, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (connection) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at`),
		connection, cursor, t.s.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("save cursor of connection %q: %w", connection, err)
	}
	return nil
}

// Mark records mark for connection; marking twice is not an error.
func (t *txn) Mark(ctx context.Context, connection, mark string) error {
	_, err := t.tx.ExecContext(ctx, t.s.q(`INSERT INTO marks (connection, mark, created_at) VALUES (?, ?, ?)
		ON CONFLICT (connection, mark) DO NOTHING`),
		connection, mark, t.s.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("mark %q of connection %q: %w", mark, connection, err)
	}
	return nil
}

// Cursor returns connection's stored cursor, nil if none.
func (s *Store) Cursor(ctx context.Context, connection string) ([]byte, error) {
	var cur []byte
	err := s.db.GetContext(ctx, &cur, s.q(`SELECT cursor FROM cursors WHERE connection = ?`), connection)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cursor of connection %q: %w", connection, err)
	}
	if cur == nil {
		cur = []byte{}
	}
	return cur, nil
}

// Marked reports whether connection recorded mark.
func (s *Store) Marked(ctx context.Context, connection, mark string) (bool, error) {
	var found bool
	err := s.db.GetContext(ctx, &found, s.q(`SELECT EXISTS (SELECT 1 FROM marks WHERE connection = ? AND mark = ?)`), connection, mark)
	if err != nil {
		return false, fmt.Errorf("read mark %q of connection %q: %w", mark, connection, err)
	}
	return found, nil
}

// targetStateRow is a target_state row as stored.
type targetStateRow struct {
	Target      string        `db:"target"`
	Paused      bool          `db:"paused"`
	Reason      string        `db:"reason"`
	PausedAt    sql.NullInt64 `db:"paused_at"`
	NextProbeAt sql.NullInt64 `db:"next_probe_at"`
}

// state converts r to the outbox's TargetState.
func (r targetStateRow) state() outbox.TargetState {
	return outbox.TargetState{
		Target:      r.Target,
		Paused:      r.Paused,
		Reason:      r.Reason,
		PausedAt:    fromMillis(r.PausedAt),
		NextProbeAt: fromMillis(r.NextProbeAt),
	}
}

// TargetState returns target's state; a target never set is active.
func (s *Store) TargetState(ctx context.Context, target string) (outbox.TargetState, error) {
	var r targetStateRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT target, paused, reason, paused_at, next_probe_at FROM target_state WHERE target = ?`), target)
	if errors.Is(err, sql.ErrNoRows) {
		return outbox.TargetState{Target: target}, nil
	}
	if err != nil {
		return outbox.TargetState{}, fmt.Errorf("read state of target %q: %w", target, err)
	}
	return r.state(), nil
}

// SetTargetState stores st.
func (s *Store) SetTargetState(ctx context.Context, st outbox.TargetState) error {
	if st.Target == "" {
		return errors.New("set target state: target name is empty")
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO target_state (target, paused, reason, paused_at, next_probe_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (target) DO UPDATE SET paused = excluded.paused, reason = excluded.reason,
			paused_at = excluded.paused_at, next_probe_at = excluded.next_probe_at`),
		st.Target, st.Paused, st.Reason, millis(st.PausedAt), millis(st.NextProbeAt))
	if err != nil {
		return fmt.Errorf("store state of target %q: %w", st.Target, err)
	}
	return nil
}

// millis is t as stored: Unix milliseconds, NULL for the zero time.
func millis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// fromMillis is the time a stored value stands for, in UTC; NULL is the zero time.
func fromMillis(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}
