// Package fakes holds the test doubles of the inbound packages' tests: an
// Enroller standing in for an LMS (which is outside the bridge), and a
// helper opening a real SQLite store.
package fakes

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// Call is one recorded enroller call.
type Call struct {
	Action    string // "enrol" or "unenrol"
	Enrolment source.Enrolment
}

// Enroller records calls and answers each with the next of its scripted
// errors (nil once they run out). When Gate is set, every call first waits
// for a value from it (or its context's end).
type Enroller struct {
	mu     sync.Mutex
	calls  []Call
	errs   []error
	Gate   chan struct{}
	Called chan struct{} // if set, receives a value as each call starts
}

// Fail scripts the next calls' errors.
func (e *Enroller) Fail(errs ...error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, errs...)
}

// Calls returns the calls made so far.
func (e *Enroller) Calls() []Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Call(nil), e.calls...)
}

func (e *Enroller) call(ctx context.Context, c Call) error {
	if e.Called != nil {
		e.Called <- struct{}{}
	}
	if e.Gate != nil {
		select {
		case <-e.Gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, c)
	if len(e.errs) == 0 {
		return nil
	}
	err := e.errs[0]
	e.errs = e.errs[1:]
	return err
}

// Enrol records an enrol call.
func (e *Enroller) Enrol(ctx context.Context, en source.Enrolment) error {
	return e.call(ctx, Call{Action: "enrol", Enrolment: en})
}

// Unenrol records an unenrol call.
func (e *Enroller) Unenrol(ctx context.Context, personID, code string) error {
	return e.call(ctx, Call{Action: "unenrol", Enrolment: source.Enrolment{PersonID: personID, ElearningCode: code}})
}

var _ source.Enroller = (*Enroller)(nil)

// Store opens a fresh SQLite store in t's temporary directory, closed when
// t ends.
func Store(t testing.TB, clk clock.Clock) *sqlite.Store {
	t.Helper()
	if clk == nil {
		clk = clock.System{}
	}
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "bridge.db"), sqlite.WithClock(clk))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}
