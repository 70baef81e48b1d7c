package delivery

import (
	"context"
	"fmt"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// batcher records the outcomes of one step's workers through a store's
// FinishBatch: the outcomes that arrive while a transaction commits go
// into the next one together, so the store commits (and fsyncs) once per
// batch rather than once per result. A worker waits for its outcome before
// its next request, or (Options.RecordAhead) sends on while a few of its
// outcomes are committed.
type batcher struct {
	store outbox.BatchFinisher
	ctx   context.Context
	reqs  chan finishReq
	done  chan struct{}
}

// finishReq is one worker's outcome waiting to be recorded.
type finishReq struct {
	f   outbox.Finish
	err chan error
}

// startBatcher starts the goroutine that commits the outcomes of up to
// workers concurrent senders. Its transactions run on a context detached
// from ctx, as single Finish calls after a request do.
func startBatcher(ctx context.Context, store outbox.BatchFinisher, workers int) *batcher {
	b := &batcher{store: store, ctx: context.WithoutCancel(ctx), reqs: make(chan finishReq, workers), done: make(chan struct{})}
	go b.run(workers)
	return b
}

// submit hands f to the next batch and returns a function that waits for
// its own outcome: nil, an error wrapping outbox.ErrLeaseLost or
// outbox.ErrNotFound for that row, or the error of the transaction that
// should have recorded it. The wait is bounded by that transaction's
// timeout, not by ctx, which may end before the outcome is waited for.
func (b *batcher) submit(_ context.Context, f outbox.Finish) func() error {
	r := finishReq{f: f, err: make(chan error, 1)}
	b.reqs <- r
	return func() error { return <-r.err }
}

// stop ends the goroutine once every outcome handed over is recorded.
func (b *batcher) stop() {
	close(b.reqs)
	<-b.done
}

func (b *batcher) run(limit int) {
	defer close(b.done)
	batch := make([]finishReq, 0, limit)
	fs := make([]outbox.Finish, 0, limit)
	for first := range b.reqs {
		batch, fs = append(batch[:0], first), append(fs[:0], first.f)
	gather:
		for len(batch) < limit {
			select {
			case r, ok := <-b.reqs:
				if !ok {
					break gather
				}
				batch, fs = append(batch, r), append(fs, r.f)
			default:
				break gather
			}
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
