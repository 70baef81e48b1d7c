// Package clock makes time injectable, so retry schedules, leases, pauses
// and the loops that wait for them can be tested without sleeping: a
// Clock tells the time and makes the timers and tickers that wait on it.
package clock

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Clock tells the current time and waits on it. Code that waits for a time
// it computed from Now must wait with the same clock's timers, so a test on
// a Fake clock waits for the fake time, not the wall clock's.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that sends the time on its channel once d
	// has passed on this clock (at once when d <= 0).
	NewTimer(d time.Duration) Timer
	// NewTicker returns a ticker that sends the time on its channel every
	// d on this clock, dropping ticks a slow reader misses; d must be > 0.
	NewTicker(d time.Duration) Ticker
}

// Timer is a single event on a Clock, like time.Timer: after Stop or Reset
// returns, no time from before the call is received.
type Timer interface {
	// Chan is the channel the time is sent on.
	Chan() <-chan time.Time
	// Stop cancels the timer; it reports whether the timer was still waiting.
	Stop() bool
	// Reset makes the timer fire once d has passed from now; it reports
	// whether the timer was still waiting.
	Reset(d time.Duration) bool
}

// Ticker is a periodic event on a Clock, like time.Ticker.
type Ticker interface {
	// Chan is the channel the ticks are sent on.
	Chan() <-chan time.Time
	// Stop turns the ticker off.
	Stop()
}

// System is the wall clock.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (System) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

// NewTicker returns a time.Ticker.
func (System) NewTicker(d time.Duration) Ticker { return systemTicker{time.NewTicker(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) Chan() <-chan time.Time     { return t.t.C }
func (t systemTimer) Stop() bool                 { return t.t.Stop() }
func (t systemTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

type systemTicker struct{ t *time.Ticker }

func (t systemTicker) Chan() <-chan time.Time { return t.t.C }
func (t systemTicker) Stop()                  { t.t.Stop() }

// Fake is a manually advanced clock for tests: its timers and tickers fire
// when Advance or Set moves it to or past their time, never by themselves.
// The zero value is not usable; create one with NewFake.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiting []*fakeTimer // armed timers and tickers
}

// NewFake returns a fake clock standing at t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the fake's current time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the fake clock forward by d and fires the timers and
// tickers whose time has come.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.moveTo(f.now.Add(d))
}

// Set moves the fake clock to t and fires the timers and tickers whose time
// has come.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.moveTo(t)
}

// moveTo sets now and fires what fell due; f.mu is held.
func (f *Fake) moveTo(t time.Time) {
	f.now = t
	f.waiting = slices.DeleteFunc(f.waiting, func(w *fakeTimer) bool {
		if w.at.After(t) {
			return false
		}
		w.send(t)
		if w.period <= 0 {
			return true
		}
		for !w.at.After(t) { // ticks a jump skips are dropped, as a slow reader's are
			w.at = w.at.Add(w.period)
		}
		return false
	})
}

// NewTimer returns a timer that fires when the fake clock reaches now+d.
func (f *Fake) NewTimer(d time.Duration) Timer {
	t := &fakeTimer{f: f, c: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// NewTicker returns a ticker that fires each time the fake clock passes
// another d from now.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{f: f, c: make(chan time.Time, 1), at: f.now.Add(d), period: d}
	f.waiting = append(f.waiting, t)
	return fakeTicker{t}
}

// Timers returns how many timers and tickers wait on the fake clock, so a
// test can advance it once the code under test waits.
func (f *Fake) Timers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiting)
}

// fakeTimer is a Fake's timer, or its ticker when period is set.
type fakeTimer struct {
	f      *Fake
	c      chan time.Time // one deep: a tick nobody read yet is kept, later ones dropped
	at     time.Time      // when it fires next; guarded by f.mu
	period time.Duration
}

func (t *fakeTimer) Chan() <-chan time.Time { return t.c }

func (t *fakeTimer) send(now time.Time) {
	select {
	case t.c <- now:
	default:
	}
}

// disarm removes t from the waiting timers and drops a time sent but not
// received; it reports whether t was waiting or its time unreceived, as
// time.Timer's Stop does. f.mu is held.
func (t *fakeTimer) disarm() bool {
	n := len(t.f.waiting)
	t.f.waiting = slices.DeleteFunc(t.f.waiting, func(w *fakeTimer) bool { return w == t })
	select {
	case <-t.c:
		return true
	default:
		return len(t.f.waiting) < n
	}
}

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	return t.disarm()
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.disarm()
	if d <= 0 {
		t.send(t.f.now)
		return was
	}
	t.at = t.f.now.Add(d)
	t.f.waiting = append(t.f.waiting, t)
	return was
}

type fakeTicker struct{ t *fakeTimer }

func (k fakeTicker) Chan() <-chan time.Time { return k.t.c }
func (k fakeTicker) Stop()                  { k.t.Stop() }

// Skewed is Base's time moved by By: a machine whose clock is off, for
// testing what several daemons with unequal clocks do to a shared store.
// Its timers and tickers are Base's: a duration is the same on both.
type Skewed struct {
	Base Clock
	By   time.Duration
}

// Now returns Base's time plus By.
func (s Skewed) Now() time.Time { return s.Base.Now().Add(s.By) }

// NewTimer returns Base's timer.
func (s Skewed) NewTimer(d time.Duration) Timer { return s.Base.NewTimer(d) }

// NewTicker returns Base's ticker.
func (s Skewed) NewTicker(d time.Duration) Ticker { return s.Base.NewTicker(d) }

// Adjusted is Base's time moved by an offset that may change while it is in
// use: a daemon sharing a database with daemons on other machines keeps its
// time on the database server's clock by setting the offset to the
// difference it measures. The zero offset is Base's time. Its timers and
// tickers are Base's. It is safe for concurrent use.
type Adjusted struct {
	Base   Clock
	offset atomic.Int64 // nanoseconds
}

// Now returns Base's time plus the offset.
func (a *Adjusted) Now() time.Time { return a.Base.Now().Add(a.Offset()) }

// NewTimer returns Base's timer.
func (a *Adjusted) NewTimer(d time.Duration) Timer { return a.Base.NewTimer(d) }

// NewTicker returns Base's ticker.
func (a *Adjusted) NewTicker(d time.Duration) Ticker { return a.Base.NewTicker(d) }

// Offset returns the current offset.
func (a *Adjusted) Offset() time.Duration { return time.Duration(a.offset.Load()) }

// SetOffset makes Now return Base's time plus d.
func (a *Adjusted) SetOffset(d time.Duration) { a.offset.Store(int64(d)) }
