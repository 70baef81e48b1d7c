package delivery

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// batcher records the outcomes of one step's workers through a store's
// FinishBatch, so the store commits (and fsyncs) once per batch rather than
// once per result. It gathers outcomes until one of them is waited for, or
// half its capacity is reached, or the first has waited maxLinger; the
// outcomes that arrive while a transaction commits go into the next one.
// Commits then stay large while workers send on (Settings.RecordAhead)
// and cost little CPU per result, yet a worker that needs its outcome
// (record_ahead 0, or its window full) never waits for the linger.
type batcher struct {
	store outbox.BatchFinisher
	ctx   context.Context
	reqs  chan *finishReq
	// waited receives a signal when a worker starts waiting for an
	// outcome; the outcome's own waited flag says which.
	waited chan struct{}
	// linger is how long an outcome no worker waits for is held back.
	linger time.Duration
	done   chan struct{}
}

// maxLinger is how long the batcher holds an outcome no worker waits for,
// hoping for more to share its commit. It bounds the store's commit
// latency on this machine, not a time of the outbox's schedules, so it
// runs on the wall clock whatever clock the dispatcher tells time by, as
// request timeouts do.
const maxLinger = 5 * time.Millisecond

// finishReq is one worker's outcome waiting to be recorded.
type finishReq struct {
	f      outbox.Finish
	err    chan error
	waited atomic.Bool
}

// startBatcher starts the goroutine that commits the outcomes of up to
// workers concurrent senders, holding an outcome no one waits for up to
// linger (maxLinger in the dispatcher). Its transactions run on a context
// detached from ctx, as single Finish calls after a request do.
func startBatcher(ctx context.Context, store outbox.BatchFinisher, workers int, linger time.Duration) *batcher {
	b := &batcher{store: store, ctx: context.WithoutCancel(ctx), reqs: make(chan *finishReq, workers),
		waited: make(chan struct{}, 1), linger: linger, done: make(chan struct{})}
	go b.run(workers)
	return b
}

// submit hands f to the next batch and returns a function that waits for
// its own outcome: nil, an error wrapping outbox.ErrLeaseLost or
// outbox.ErrNotFound for that row, or the error of the transaction that
// should have recorded it. The wait is bounded by that transaction's
// timeout, not by ctx, which may end before the outcome is waited for.
func (b *batcher) submit(_ context.Context, f outbox.Finish) func() error {
	r := &finishReq{f: f, err: make(chan error, 1)}
	b.reqs <- r
	return func() error {
		select {
		case err := <-r.err:
			return err
		default:
		}
		r.waited.Store(true)
		select {
		case b.waited <- struct{}{}:
		default: // a signal is pending already; the batcher checks every flag
		}
		return <-r.err
	}
}

// stop ends the goroutine once every outcome handed over is recorded.
func (b *batcher) stop() {
	close(b.reqs)
	<-b.done
}

func (b *batcher) run(limit int) {
	defer close(b.done)
	target := (limit + 1) / 2
	linger := time.NewTimer(b.linger)
	defer linger.Stop()
	batch := make([]*finishReq, 0, limit)
	fs := make([]outbox.Finish, 0, limit)
	for first := range b.reqs {
		batch = append(batch[:0], first)
		linger.Reset(b.linger)
		b.gather(&batch, limit, target, linger)
		fs = fs[:0]
		for _, r := range batch {
			fs = append(fs, r.f)
		}
		ctx, cancel := context.WithTimeout(b.ctx, storeTimeout)
		errs, err := b.store.FinishBatch(ctx, fs)
		cancel()
		if err == nil && len(errs) != len(fs) {
			err = fmt.Errorf("outbox: FinishBatch answered %d outcomes for %d results", len(errs), len(fs))
		}
		for i, r := range batch {
			if err != nil {
				r.err <- err
			} else {
				r.err <- errs[i]
			}
		}
	}
}

// gather adds outcomes to *batch until one in it is waited for, it holds
// target outcomes, the linger timer fires or no more outcomes can come,
// then takes those already handed over, up to limit.
func (b *batcher) gather(batch *[]*finishReq, limit, target int, linger *time.Timer) {
	waitedFor := func() bool {
		return slices.ContainsFunc(*batch, func(r *finishReq) bool { return r.waited.Load() })
	}
wait:
	for len(*batch) < target && !waitedFor() {
		select {
		case r, ok := <-b.reqs:
			if !ok {
				return
			}
			*batch = append(*batch, r)
		case <-b.waited:
		case <-linger.C:
			break wait
		}
	}
	for len(*batch) < limit {
		select {
		case r, ok := <-b.reqs:
			if !ok {
				return
			}
			*batch = append(*batch, r)
		default:
			return
		}
	}
}
