package sqlcore

import (
	"context"
	"fmt"
	"sync"

	"github.com/jmoiron/sqlx"
)

// Statements prepares each of a store's hot queries (claim, finish,
// enqueue) once and keeps it for the store's lifetime, so the delivery loop
// does not parse and plan the same SQL again in every transaction. A
// statement is prepared on each pooled connection the first time it runs
// there; database/sql keeps those preparations and prepares again on a
// connection that replaced a broken one. It is safe for concurrent use.
type Statements struct {
	db      *sqlx.DB
	mu      sync.Mutex
	byQuery map[string]*sqlx.Stmt
}

// NewStatements returns an empty set of statements of db.
func NewStatements(db *sqlx.DB) *Statements {
	return &Statements{db: db, byQuery: make(map[string]*sqlx.Stmt)}
}

// Get returns query, already in the driver's placeholder syntax, prepared
// on the pool: run it outside a transaction. Preparing takes a connection
// from the pool; the lock is not held meanwhile, so a statement already
// prepared is never kept waiting behind one being prepared.
func (s *Statements) Get(ctx context.Context, query string) (*sqlx.Stmt, error) {
	if st := s.cached(query); st != nil {
		return st, nil
	}
	st, err := s.db.PreparexContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare statement: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if kept, ok := s.byQuery[query]; ok { // prepared meanwhile by another caller
		_ = st.Close()
		return kept, nil
	}
	s.byQuery[query] = st
	return st, nil
}

// cached returns query's statement if it has been prepared, else nil.
func (s *Statements) cached(query string) *sqlx.Stmt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byQuery[query]
}

// InTx returns query's statement bound to tx. It reuses the preparation on
// tx's connection when there is one; the returned statement ends with tx.
//
// A query not yet prepared on the pool is prepared there only while the
// pool has a connection to spare: tx holds one, and when every connection
// is held by a transaction waiting for another, none would ever come
// (found with a pool of one connection: the first enqueue hung). With the
// pool full, the query is prepared on tx's connection for this
// transaction only, and on the pool at a later call that finds one free.
func (s *Statements) InTx(ctx context.Context, tx *sqlx.Tx, query string) (*sqlx.Stmt, error) {
	st := s.cached(query)
	if st == nil {
		if pool := s.db.Stats(); pool.MaxOpenConnections > 0 && pool.InUse >= pool.MaxOpenConnections {
			own, err := tx.PreparexContext(ctx, query)
			if err != nil {
				return nil, fmt.Errorf("prepare statement: %w", err)
			}
			return own, nil
		}
		var err error
		if st, err = s.Get(ctx, query); err != nil {
			return nil, err
		}
	}
	return tx.StmtxContext(ctx, st), nil
}

// Close releases every statement; call it before closing the database.
// It reports no error: a statement on a connection that died with its
// server cannot be closed there, and needs not be.
func (s *Statements) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for q, st := range s.byQuery {
		_ = st.Close()
		delete(s.byQuery, q)
	}
}
