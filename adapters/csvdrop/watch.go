package csvdrop

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

const (
	// wakeDelay gathers a burst of events (an export written in many
	// chunks) into one poll.
	wakeDelay = 100 * time.Millisecond
	// settleMargin is added to Settle before a recheck, so the file has
	// surely been still for Settle when the poll runs.
	settleMargin = 50 * time.Millisecond
)

// Watch wakes a poll when a candidate file is created, written, renamed or
// has its mode changed in the drop folder, Settle after a writer closed one,
// and again when a poll left a file still changing or incomplete. On Linux
// it also tracks which files writers hold open, so Poll leaves those alone.
// Missed events are harmless: the scheduler also polls on its own schedule.
// Watch returns nil when ctx ends, and an error when the folder cannot be
// watched.
//
// The timers here run on the wall clock, as they only decide when to look;
// whether a file has settled is decided by Poll with the injected clock.
func (f *Folder) Watch(ctx context.Context, wake func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("csvdrop: start watching the drop folder: %w", err)
	}
	defer func() { _ = w.Close() }() // only stops the watching
	if err := w.Add(f.folder); err != nil {
		return fmt.Errorf("csvdrop: watch drop folder %s: %w", f.folder, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	trackDone := make(chan error, 1)
	tracking := trackDone // nil once the tracker ended
	defer func() {
		cancel()
		if tracking != nil {
			<-trackDone
		}
	}()
	go func() {
		trackDone <- f.writers.run(ctx, f.folder, func(name string) {
			if f.candidate(name) {
				f.wantRecheck(f.settings.Settle)
			}
		})
	}()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var due time.Time // when the armed timer fires; zero when not armed
	arm := func(d time.Duration) {
		at := time.Now().Add(d)
		if !due.IsZero() && !at.Before(due) {
			return // an earlier wake is already due
		}
		due = at
		timer.Reset(d)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("csvdrop: drop folder watcher closed")
			}
			if ev.Has(fsnotify.Create|fsnotify.Write|fsnotify.Rename|fsnotify.Chmod) && f.candidate(filepath.Base(ev.Name)) {
				arm(wakeDelay)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("csvdrop: drop folder watcher closed")
			}
			f.log.Warn("drop folder watch reported an error; polling to catch up", "error", err)
			arm(wakeDelay)
		case err := <-tracking:
			tracking = nil
			if err != nil {
				f.log.Warn("cannot track writers in the drop folder; settle and line endings alone decide when a file is whole", "error", err)
			}
		case d := <-f.recheck:
			arm(max(d, 0) + settleMargin)
		case <-timer.C:
			due = time.Time{}
			wake()
		}
	}
}
