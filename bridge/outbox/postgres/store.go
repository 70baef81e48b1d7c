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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq" // also registers the "postgres" database/sql driver

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/dsn"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlinbound"
)

// Pool defaults. A daemon's delivery workers and intake share the pool; ten
// connections serve both without starving the server of connection slots
// when several daemons share it.
const (
	defaultMaxConns    = 10
	defaultConnMaxLife = 30 * time.Minute
)

// serverNow is the database server's clock in Unix milliseconds. Leases
// shared by daemons on several machines are decided on it.
const serverNow = `(extract(epoch from clock_timestamp()) * 1000)::bigint`

// skipLocked makes a subquery choosing rows to lock pass over rows other
// transactions hold.
const skipLocked = ` FOR UPDATE SKIP LOCKED`

// analyzeEvery is how many enqueued results pass between two looks at
// whether the planner's statistics still describe the results table
// (refreshStatistics).
const analyzeEvery = 1000

// noSeqScan turns sequential scans off for the rest of a transaction whose
// statements each have an index that answers them, so none runs on a plan
// made while the tables were small.
const noSeqScan = `SET LOCAL enable_seqscan = off`

var (
	_ outbox.Store         = (*Store)(nil)
	_ outbox.Leaser        = (*Store)(nil)
	_ outbox.SchemaChecker = (*Store)(nil)
)

// Store is the PostgreSQL outbox. It is safe for concurrent use, and several
// Stores (in several daemons) may share one database.
type Store struct {
	db    *sqlx.DB
	clock clock.Clock
	// stmts holds the hot statements, prepared once per connection.
	stmts    *sqlcore.Statements
	migrate  bool
	maxConns int
	// claimQuery is Claim's statement, on the lease clock chosen.
	claimQuery string
	// storeClockLeases: leases are decided on the store's clock, not the
	// server's (WithLeasesOnStoreClock).
	storeClockLeases bool
	// compacted is when compact last folded result_changes in (Unix ns).
	compacted atomic.Int64
	// enqueuedSinceAnalyze counts the results committed batches offered
	// since this store last analysed the results table (refreshStatistics).
	enqueuedSinceAnalyze atomic.Int64
	// analyzing is held while refreshStatistics looks and analyses.
	analyzing sync.Mutex
	// Base holds the results' shared SQL: the operator's queries, the
	// cursors and marks, the targets' state.
	*sqlcore.Base
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

// WithLeasesOnStoreClock makes the store decide leases (a claimed row's, a
// poll's) on its own clock, as the SQLite backend does, instead of on the
// database server's. It is for tests that drive time with a fake clock;
// daemons on several machines need the server's clock.
func WithLeasesOnStoreClock() Option {
	return func(s *Store) { s.storeClockLeases = true }
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

// Open connects to the PostgreSQL database dataSource (a lib/pq URL or
// key=value DSN, under package dsn's rules: a server on another machine is
// reached with its certificate verified unless the DSN sets sslmode) and,
// unless WithoutMigrations is given, migrates it to the newest schema this
// build knows. It refuses a database written by a newer cvbridge. Errors
// never contain the DSN, which may hold a password.
func Open(ctx context.Context, dataSource string, opts ...Option) (*Store, error) {
	s := &Store{clock: clock.System{}, migrate: true, maxConns: defaultMaxConns}
	for _, o := range opts {
		o(s)
	}
	cfg, err := dsn.Postgres(dataSource)
	if err != nil {
		return nil, fmt.Errorf("outbox database (postgres): %w", err)
	}
	connector, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("outbox database (postgres): %w", dsn.Scrub(err, cfg.Password))
	}
	db := sqlx.NewDb(sql.OpenDB(connector), "postgres")
	db.SetMaxOpenConns(s.maxConns)
	db.SetMaxIdleConns(s.maxConns)
	db.SetConnMaxLifetime(defaultConnMaxLife)
	s.db = db
	s.stmts = sqlcore.NewStatements(db)
	leaseClock := serverNow
	if s.storeClockLeases {
		leaseClock = ""
	}
	s.claimQuery = claimQuery(leaseClock)
	s.Base = sqlcore.New(sqlcore.Config{DB: db, InTx: s.inTx, ReadIsolation: sql.LevelRepeatableRead,
		RowLock: ` FOR UPDATE`, SkipLocked: skipLocked, ActivePairConflict: isActivePairConflict,
		Stmts: s.stmts, Now: s.now, Text: validText, ServerNow: leaseClock,
		BatchSetup: noSeqScan, AfterIntake: s.refreshStatistics, Counters: counters, HoursFrom: hoursFrom, Compact: s.compact,
		FinishCounts: &finishCounts})
	s.Store = sqlinbound.New(sqlinbound.Config{DB: db, InTx: s.inTx, Now: s.now,
		RowLock: ` FOR UPDATE`, ClaimLock: skipLocked, SupersedeSetup: noSeqScan})
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("outbox database (postgres): connect: %w", dsn.Explain(dsn.Scrub(err, cfg.Password)))
	}
	if s.migrate {
		err = s.Migrate(ctx)
	} else {
		err = s.CheckSchema(ctx)
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the connection pool.
//
// A pooled connection the server dropped (it restarted) cannot be closed
// politely: saying goodbye on it fails with a broken pipe or a reset. That
// is not reported, as nothing is left open.
func (s *Store) Close() error {
	s.stmts.Close()
	err := s.db.Close()
	if err == nil || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return nil
	}
	return fmt.Errorf("close outbox database (postgres): %w", err)
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

// isActivePairConflict reports whether err is a write breaking the
// one-active-row-per-pair index, which a concurrent transaction's row got
// first.
func isActivePairConflict(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "23505" && pqErr.Constraint == "results_active_pair"
}

// ClockSkew returns how far this machine's clock (the store's) is from the
// database server's: positive when this machine is ahead. Half the round
// trip is allowed for.
func (s *Store) ClockSkew(ctx context.Context) (time.Duration, error) {
	before := s.now()
	var server int64
	if err := s.db.GetContext(ctx, &server, `SELECT `+serverNow); err != nil {
		return 0, fmt.Errorf("read the database server's clock: %w", err)
	}
	after := s.now()
	mid := before.Add(after.Sub(before) / 2)
	return mid.Sub(time.UnixMilli(server)), nil
}

// refreshStatistics analyses the results table once the results enqueued
// since this store last did outnumber the rows the planner's statistics
// describe, looking every analyzeEvery results. A prepared statement's
// generic plan is kept until the statistics of its tables change: made
// while the table was small (a new installation, a trickle of results),
// the batch finish joined by a sequential scan, and after an intake of
// thousands of rows it read the whole table for every batch it recorded
// (20,000 results took 25 s to drain, 325 million rows read) until
// autovacuum came by. ANALYZE renews the statistics and with them every
// cached plan on them, in every daemon.
//
// It is an optimisation only, so it never holds up the caller for long and
// never fails it (the batch is committed; autovacuum analyses later, and a
// failing database shows itself at the next statement): one call analyses
// at a time, the others go on; ANALYZE skips the table rather than wait for
// a lock (a manual VACUUM, say); and a role that does not own the table,
// which ANALYZE would skip with a mere warning, does not try.
func (s *Store) refreshStatistics(ctx context.Context, enqueued int) {
	total := s.enqueuedSinceAnalyze.Add(int64(enqueued))
	if total/analyzeEvery == (total-int64(enqueued))/analyzeEvery || !s.analyzing.TryLock() {
		return
	}
	defer s.analyzing.Unlock()
	total = s.enqueuedSinceAnalyze.Load()
	var table struct {
		Known float64 `db:"reltuples"` // -1: never analysed
		Owned bool    `db:"owned"`
	}
	err := s.db.GetContext(ctx, &table, `SELECT reltuples, pg_has_role(relowner, 'MEMBER') AS owned
		FROM pg_class WHERE oid = 'results'::regclass`)
	if err != nil || !table.Owned || float64(total) <= table.Known {
		return // at most doubled since: its plans still fit
	}
	if _, err := s.db.ExecContext(ctx, `ANALYZE (SKIP_LOCKED) results`); err == nil {
		s.enqueuedSinceAnalyze.Add(-total)
	}
}
