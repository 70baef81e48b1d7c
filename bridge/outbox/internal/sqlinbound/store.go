// Package sqlinbound is the SQL of the inbound side of the outbox backends:
// the inbound_messages and oauth_tokens tables (inboundstore.MessageStore,
// MessageAdmin, TokenStore) and the erasure of personal data
// (inboundstore.PersonalData), which also reaches the results and attempts
// tables. The SQLite and PostgreSQL backends share their schema of these
// tables and embed a Store configured with what differs between them: how a
// write transaction runs, the row locks PostgreSQL takes, and the writer lock
// that serialises SQLite's writes.
//
// It follows the backends' storage conventions: every time is an integer of
// Unix milliseconds UTC (NULL for a zero time.Time), and queries are written
// with ? placeholders and passed through sqlx's Rebind.
package sqlinbound

import (
	"context"
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
	// Now is the store clock's time.
	Now func() time.Time
	// WriteLock, when set, is held around each write made outside InTx
	// (SQLite's in-process writer lock). Nil means none.
	WriteLock sync.Locker
	// RowLock is appended to a row lookup whose row the same transaction
	// then updates (" FOR UPDATE" on PostgreSQL, "" where a write
	// transaction already excludes other writers).
	RowLock string
	// ClaimLock is appended to the subquery choosing the messages a claim
	// leases (" FOR UPDATE SKIP LOCKED" on PostgreSQL, so daemons claiming
	// at once get disjoint messages).
	ClaimLock string
	// SupersedeSetup, when set, runs before a save's supersession of the
	// older requests of its pairs (order.go), which is then one statement
	// for all the pairs, an OR of one index range per pair: PostgreSQL's
	// "SET LOCAL enable_seqscan = off", so a plan made while the table was
	// small does not scan the backlog instead (every lookup there has its
	// index). Empty: one statement per pair (SQLite, in process, where a
	// statement costs no round trip).
	SupersedeSetup string
	// Scrub, when set, runs after an erasure has committed, to remove the
	// erased bytes from the backend's files (SQLite: a WAL checkpoint that
	// truncates the log, whose old frames still hold them). Nil: nothing.
	Scrub func(ctx context.Context) error
}

// Store implements inboundstore.Store and inboundstore.PersonalData on a
// backend's database. It is safe for concurrent use.
type Store struct {
	db        *sqlx.DB
	inTx      func(ctx context.Context, fn func(*sqlx.Tx) error) error
	now       func() time.Time
	writes    sync.Locker
	rowLock   string
	claimLock string
	// supersedeSetup is Config.SupersedeSetup.
	supersedeSetup string
	scrub          func(ctx context.Context) error
}

// New returns the Store c describes.
func New(c Config) *Store {
	s := &Store{db: c.DB, inTx: c.InTx, now: c.Now, writes: c.WriteLock, rowLock: c.RowLock, claimLock: c.ClaimLock,
		supersedeSetup: c.SupersedeSetup, scrub: c.Scrub}
	if s.writes == nil {
		s.writes = noLock{}
	}
	if s.scrub == nil {
		s.scrub = func(context.Context) error { return nil }
	}
	return s
}

// noLock is the sync.Locker of a backend without a writer lock.
type noLock struct{}

func (noLock) Lock()   {}
func (noLock) Unlock() {}

// q rewrites a query written with ? placeholders for the driver.
func (s *Store) q(query string) string { return s.db.Rebind(query) }
