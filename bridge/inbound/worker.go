package inbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
)

// WorkerConfig tunes a Worker. Zero fields take their defaults.
type WorkerConfig struct {
	// Owner names this worker in leases; it must differ between daemons
	// sharing a database (e.g. host name and process id). Required.
	Owner string
	// Interval is how often the store is polled for due messages (default 10s).
	Interval time.Duration
	// Batch is how many messages one poll claims (default 10).
	Batch int
	// AttemptTimeout bounds one call to an enroller (default 1m).
	AttemptTimeout time.Duration
	// EraseAtOnce, when set, is where every poll erases the personal data
	// of the messages processed so far: personal_data_retention 0 means
	// erased as soon as processed, not at the next hourly purge.
	EraseAtOnce inboundstore.PersonalData
}

// Worker processes due inbound messages until stopped.
type Worker struct {
	store inboundstore.MessageStore
	proc  *Processor
	cfg   WorkerConfig
	clock clock.Clock
	log   *slog.Logger
	wake  chan struct{}
}

// NewWorker returns a worker claiming from store and processing with proc;
// it uses proc's clock and logger.
func NewWorker(store inboundstore.MessageStore, proc *Processor, cfg WorkerConfig) (*Worker, error) {
	if cfg.Owner == "" {
		return nil, errors.New("inbound worker: owner is empty")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 10
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = time.Minute
	}
	return &Worker{store: store, proc: proc, cfg: cfg, clock: proc.clock, log: proc.log, wake: make(chan struct{}, 1)}, nil
}

// lease is how long a claimed message stays leased: one attempt per message
// of the batch, plus time to record the outcomes.
func (w *Worker) lease() time.Duration {
	return time.Duration(w.cfg.Batch)*w.cfg.AttemptTimeout + finishTimeout
}

// Wake asks the worker to poll now instead of at its next interval (the
// webhook receiver calls it after storing a new message). It never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run processes due messages until ctx ends, then returns nil. Store errors
// are logged and retried at the next interval.
func (w *Worker) Run(ctx context.Context) error {
	t := w.clock.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		for {
			n, err := w.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				w.log.Error("inbound worker: poll failed", slog.String("error", err.Error()))
			}
			if err != nil || n < w.cfg.Batch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.Chan():
		case <-w.wake:
		}
	}
}

// RunOnce claims one batch of due messages, processes them one after the
// other and returns how many it claimed.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	ms, err := w.store.ClaimMessages(ctx, w.cfg.Owner, w.cfg.Batch, w.clock.Now(), w.lease())
	if err != nil {
		return 0, fmt.Errorf("inbound worker: %w", err)
	}
	var errs []error
	for _, m := range ms {
		if ctx.Err() != nil {
			break // the rest stay leased and fall due when their lease ends
		}
		actx, cancel := context.WithTimeout(ctx, w.cfg.AttemptTimeout)
		_, err := w.proc.Process(actx, m, w.cfg.Owner)
		cancel()
		if err != nil {
			errs = append(errs, err)
		}
	}
	if w.cfg.EraseAtOnce != nil {
		// Messages the enrolment link carried out itself are erased here too,
		// within one interval. The cutoff is a millisecond on, as the store
		// keeps times in milliseconds and erases what finished before it.
		if _, err := ErasePersonalData(ctx, w.cfg.EraseAtOnce, w.clock.Now().Add(time.Millisecond), 0, w.log); err != nil {
			errs = append(errs, err)
		}
	}
	return len(ms), errors.Join(errs...)
}
