package clock_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// fired reports whether c holds a time, and which.
func fired(c <-chan time.Time) (time.Time, bool) {
	select {
	case at := <-c:
		return at, true
	default:
		return time.Time{}, false
	}
}

func TestFakeTimerFiresWhenAdvancedToItsTime(t *testing.T) {
	f := clock.NewFake(t0)
	tm := f.NewTimer(time.Minute)
	assert.Equal(t, 1, f.Timers())
	f.Advance(59 * time.Second)
	_, ok := fired(tm.Chan())
	assert.False(t, ok, "before its time")
	f.Advance(time.Second)
	at, ok := fired(tm.Chan())
	require.True(t, ok, "at its time")
	assert.Equal(t, t0.Add(time.Minute), at)
	assert.Zero(t, f.Timers())
	f.Advance(time.Hour)
	_, ok = fired(tm.Chan())
	assert.False(t, ok, "a timer fires once")
}

func TestFakeTimerSetFiresWhatFellDue(t *testing.T) {
	f := clock.NewFake(t0)
	early, late := f.NewTimer(time.Minute), f.NewTimer(time.Hour)
	f.Set(t0.Add(30 * time.Minute))
	_, ok := fired(early.Chan())
	assert.True(t, ok)
	_, ok = fired(late.Chan())
	assert.False(t, ok)
	f.Set(t0) // backwards: nothing fires
	_, ok = fired(late.Chan())
	assert.False(t, ok)
}

func TestFakeTimerWithoutDurationFiresAtOnce(t *testing.T) {
	f := clock.NewFake(t0)
	for _, d := range []time.Duration{0, -time.Second} {
		at, ok := fired(f.NewTimer(d).Chan())
		require.True(t, ok, "duration %v", d)
		assert.Equal(t, t0, at)
	}
	assert.Zero(t, f.Timers())
}

func TestFakeTimerStopAndReset(t *testing.T) {
	f := clock.NewFake(t0)
	tm := f.NewTimer(time.Minute)
	assert.True(t, tm.Stop(), "stopped while waiting")
	assert.False(t, tm.Stop(), "stopped twice")
	f.Advance(time.Hour)
	_, ok := fired(tm.Chan())
	assert.False(t, ok, "a stopped timer does not fire")

	assert.False(t, tm.Reset(time.Minute), "reset after it was stopped")
	f.Advance(time.Minute)
	assert.True(t, tm.Reset(time.Minute), "a fired but unreceived time counts as waiting, and is dropped")
	_, ok = fired(tm.Chan())
	assert.False(t, ok, "no time from before the reset")
	f.Advance(time.Minute)
	at, ok := fired(tm.Chan())
	require.True(t, ok)
	assert.Equal(t, t0.Add(time.Hour+2*time.Minute), at)
}

func TestFakeTickerFiresEachPeriodAndDropsMissedTicks(t *testing.T) {
	f := clock.NewFake(t0)
	tk := f.NewTicker(time.Minute)
	f.Advance(30 * time.Second)
	_, ok := fired(tk.Chan())
	assert.False(t, ok)
	f.Advance(30 * time.Second)
	at, ok := fired(tk.Chan())
	require.True(t, ok)
	assert.Equal(t, t0.Add(time.Minute), at)

	f.Advance(5 * time.Minute) // one tick is kept for a slow reader, the rest dropped
	_, ok = fired(tk.Chan())
	assert.True(t, ok)
	_, ok = fired(tk.Chan())
	assert.False(t, ok)
	f.Advance(59 * time.Second) // the ticks keep their cadence: next at t0+7m
	_, ok = fired(tk.Chan())
	assert.False(t, ok)
	f.Advance(time.Second)
	_, ok = fired(tk.Chan())
	assert.True(t, ok)

	tk.Stop()
	assert.Zero(t, f.Timers())
	f.Advance(time.Hour)
	_, ok = fired(tk.Chan())
	assert.False(t, ok)
}

func TestSkewedAndAdjustedWaitOnTheirBase(t *testing.T) {
	f := clock.NewFake(t0)
	adj := &clock.Adjusted{Base: f}
	adj.SetOffset(time.Hour)
	for name, c := range map[string]clock.Clock{"skewed": clock.Skewed{Base: f, By: -time.Hour}, "adjusted": adj} {
		tm, tk := c.NewTimer(time.Minute), c.NewTicker(time.Minute)
		f.Advance(time.Minute)
		_, ok := fired(tm.Chan())
		assert.True(t, ok, name)
		_, ok = fired(tk.Chan())
		assert.True(t, ok, name)
		tk.Stop()
	}
}

func TestSystemTimerAndTicker(t *testing.T) {
	c := clock.System{}
	tm := c.NewTimer(time.Millisecond)
	<-tm.Chan()
	assert.False(t, tm.Stop(), "it fired")
	assert.False(t, tm.Reset(time.Hour))
	assert.True(t, tm.Stop())
	tk := c.NewTicker(time.Millisecond)
	<-tk.Chan()
	tk.Stop()
}
