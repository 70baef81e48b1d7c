// Package sqlite is the embedded SQLite backend of the outbox Store: one
// database file holding the results, their delivery attempts, each LMS
// connection's cursor and marks, and each target's paused state. It owns the
// schema of that file (embedded, numbered migrations applied at Open) and
// nothing else: delivery policy belongs to the delivery package.
//
// Storage conventions, shared with the PostgreSQL backend so most SQL carries
// over unchanged: every time is an INTEGER of Unix milliseconds UTC (NULL for
// a zero time.Time), so times read back are in UTC and truncated to the
// millisecond; queries are written with ? placeholders and passed through
// sqlx's Rebind; the one-row-per-pair rule is a partial unique index.
//
// The database runs in WAL mode with synchronous=FULL: each commit is fsynced
// before it returns, so a delivered state recorded after Coachview's 200 survives
// a power cut. (synchronous=NORMAL in WAL mode may lose the last commits on
// power loss, and a forgotten 200 would send the result again.) The cost, one
// fsync per transaction, is small at the volumes an LMS produces. Write
// transactions begin IMMEDIATE, so concurrent writers queue on the busy
// timeout instead of failing with SQLITE_BUSY when a read lock would have to
// be upgraded.
package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlinbound"
)

// busyTimeout is how long a statement waits for another connection's write
// lock before failing with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// maxConns bounds the connection pool. SQLite serialises writers anyway; a
// few connections let readers (the operator's list, NextDue) run beside them.
const maxConns = 8

var (
	_ outbox.Store  = (*Store)(nil)
	_ outbox.Leaser = (*Store)(nil)
)

// Store is the SQLite outbox. It is safe for concurrent use.
type Store struct {
	db    *sqlx.DB
	clock clock.Clock
	// checkOnly: Open checks the schema version instead of migrating.
	checkOnly bool
	// stmts holds the hot statements, prepared once per Store.
	stmts *sqlcore.Statements
	// writeMu serialises this process's write transactions. SQLite has one
	// writer at a time anyway; queueing writers here instead of in SQLite's
	// busy handler keeps a loaded machine from running into busy_timeout,
	// which then only guards against other processes (the CLI beside a
	// running daemon).
	writeMu sync.Mutex
	// Base holds the results' shared SQL: the operator's queries, the
	// cursors and marks, the targets' state. Its writes outside a
	// transaction are serialised by writeMu too.
	*sqlcore.Base
	// Store holds the inbound messages and OAuth tokens, its writes
	// outside a transaction serialised by writeMu too.
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
	return func(s *Store) { s.checkOnly = true }
}

// Open opens (creating it and its parent directory if needed) the outbox
// database at path and, unless WithoutMigrations is given, migrates it to
// the newest schema this build knows. It refuses a database written by a
// newer cvbridge.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	s := &Store{clock: clock.System{}}
	for _, o := range opts {
		o(s)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("outbox database %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("outbox database %s: create directory: %w", abs, err)
	}
	if err := createPrivate(abs); err != nil {
		return nil, fmt.Errorf("outbox database %s: %w", abs, err)
	}

	db, err := sqlx.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("outbox database %s: %w", abs, err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("outbox database %s: open: %w", abs, err)
	}
	migrateOrCheck := migrate
	if s.checkOnly {
		migrateOrCheck = checkSchema
	}
	if err := migrateOrCheck(ctx, db, s.clock.Now().UnixMilli()); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("outbox database %s: %w", abs, err)
	}
	s.db = db
	s.stmts = sqlcore.NewStatements(db)
	s.Base = sqlcore.New(sqlcore.Config{DB: db, InTx: s.inTx, WriteLock: &s.writeMu, Stmts: s.stmts, Now: s.now,
		FinishCounts: &finishCounts})
	s.Store = sqlinbound.New(sqlinbound.Config{DB: db, InTx: s.inTx, Now: s.now, WriteLock: &s.writeMu, Scrub: s.Scrub})
	return s, nil
}

// createPrivate creates the database file at abs, readable by the service
// user only (it holds person ids), unless it exists. An existing file is
// never opened here: closing any descriptor of a file drops every POSIX lock
// the process holds on it, so opening and closing the file beside a live
// connection would leave that connection unlocked, and another SQLite
// client could then checkpoint and delete the live WAL.
func createPrivate(abs string) error {
	if _, err := os.Stat(abs); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil // created by someone else meanwhile: SQLite opens it
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// dsn builds the driver's connection string for the file at abs: a file: URI
// (so any character in the path is escaped) carrying the connection settings
// every pooled connection applies when it opens.
func dsn(abs string) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_foreign_keys", "1")
	q.Set("_txlock", "immediate")
	// Deleted and overwritten content is zeroed, so erased personal data
	// does not linger in free pages (docs/privacy.md).
	q.Set("_pragma", "secure_delete(1)")
	// Temporary data stays in memory. The largest is a statement's
	// journal: a write that fires a trigger (the counters') keeps the
	// pages it changes there, so that a failure undoes the statement
	// alone, and a journal of more than 64 KiB (a claim of a few hundred
	// rows) would otherwise move to a temporary file for the rest of the
	// transaction, each later statement writing its pages to it. The
	// journals last one statement and VACUUM INTO needs no temporary
	// database, so the memory is a statement's pages, briefly.
	q.Add("_pragma", "temp_store(MEMORY)")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// Close closes the database.
func (s *Store) Close() error {
	s.stmts.Close()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close outbox database: %w", err)
	}
	return nil
}

// now is the store clock's time.
func (s *Store) now() time.Time { return s.clock.Now() }

// inTx runs fn in one write transaction (BEGIN IMMEDIATE), committed when fn
// returns nil and rolled back otherwise, fn's error returned as it is.
func (s *Store) inTx(ctx context.Context, fn func(*sqlx.Tx) error) (err error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
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
		if rbErr := tx.Rollback(); rbErr != nil {
			return errors.Join(err, fmt.Errorf("roll back outbox transaction: %w", rbErr))
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit outbox transaction: %w", err)
	}
	return nil
}

// scrubWait bounds how long Scrub waits for readers of older snapshots:
// the checkpoint holds up this process's writers meanwhile.
const scrubWait = time.Second

// Scrub moves every commit from the write-ahead log into the database file
// and truncates the log (PRAGMA wal_checkpoint(TRUNCATE)): the log's old
// frames still hold what secure_delete has since zeroed in the file, such as
// the personal data an erasure removed. It runs as this process's one
// writer, on a connection that waits at most a second for readers of older
// snapshots (another process reading the file), and reports an error if
// the log could not be truncated; the data then leaves it at the next
// checkpoint.
func (s *Store) Scrub(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("checkpoint the outbox's write-ahead log: %w", err)
	}
	defer func() { _ = conn.Close() }() // hands the connection back to the pool
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA busy_timeout = %d`, scrubWait.Milliseconds())); err != nil {
		return fmt.Errorf("checkpoint the outbox's write-ahead log: %w", err)
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf(`PRAGMA busy_timeout = %d`, busyTimeout.Milliseconds()))
	}()
	var r struct {
		Busy         int `db:"busy"`
		Log          int `db:"log"`
		Checkpointed int `db:"checkpointed"`
	}
	if err := conn.GetContext(ctx, &r, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("checkpoint the outbox's write-ahead log: %w", err)
	}
	if r.Busy != 0 {
		return errors.New("checkpoint the outbox's write-ahead log: another reader kept it busy")
	}
	return nil
}
