// Package clock makes time injectable, so retry schedules, leases and
// pauses can be tested without sleeping.
package clock

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock tells the current time.
type Clock interface {
	Now() time.Time
}

// System is the wall clock.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// Fake is a manually advanced clock for tests. The zero value is not
// usable; create one with NewFake.
type Fake struct {
	mu  sync.Mutex
	now time.Time
}

// NewFake returns a fake clock standing at t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the fake's current time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the fake clock forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// Set moves the fake clock to t.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = t
}

// Skewed is Base's time moved by By: a machine whose clock is off, for
// testing what several daemons with unequal clocks do to a shared store.
type Skewed struct {
	Base Clock
	By   time.Duration
}

// Now returns Base's time plus By.
func (s Skewed) Now() time.Time { return s.Base.Now().Add(s.By) }

// Adjusted is Base's time moved by an offset that may change while it is in
// use: a daemon sharing a database with daemons on other machines keeps its
// time on the database server's clock by setting the offset to the
// difference it measures. The zero offset is Base's time. It is safe for
// concurrent use.
type Adjusted struct {
	Base   Clock
	offset atomic.Int64 // nanoseconds
}

// Now returns Base's time plus the offset.
func (a *Adjusted) Now() time.Time { return a.Base.Now().Add(a.Offset()) }

// Offset returns the current offset.
func (a *Adjusted) Offset() time.Duration { return time.Duration(a.offset.Load()) }

// SetOffset makes Now return Base's time plus d.
func (a *Adjusted) SetOffset(d time.Duration) { a.offset.Store(int64(d)) }
