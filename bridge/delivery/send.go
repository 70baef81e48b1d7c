package delivery

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// sendAll sends items, and the further batches more claims (more may be
// nil), with up to concurrency workers. A feeder hands the rows to the
// workers through a queue one batch deep and claims the next batch while
// the workers send the current one; it stops claiming after a short batch,
// a 403, the circuit opening, a store failure, a row handed back, or once
// ctx ends. After a 403 or the circuit opening, once ctx ends, or when too
// little of a row's lease is left for a whole request, the rows not yet
// sent are released instead, their attempts and schedules untouched. When
// the circuit is open as the step starts, items is its one probe.
func (d *Dispatcher) sendAll(ctx context.Context, items []outbox.Item, more func() ([]outbox.Item, error)) (int, Class, error) {
	s := &sendRun{d: d, probe: d.circ.isOpen()}
	// Outcomes are recorded one Finish at a time, each before the worker
	// sends its next row. When the store can record a batch in one
	// transaction, workers hand their outcomes to a batcher instead, so the
	// outcomes of all workers share commits, and each worker goes on
	// sending while up to record_ahead of its outcomes are being recorded.
	// Either way a store failure stops a worker as soon as it learns of it.
	s.record, s.window = d.finishNow, 0
	if bf, ok := d.store.(outbox.BatchFinisher); ok {
		b := startBatcher(ctx, bf, d.set.Concurrency*(d.set.RecordAhead+1), maxLinger)
		defer b.stop()
		s.record, s.window = b.submit, d.set.RecordAhead
	}
	jobs := make(chan outbox.Item, len(items))
	go s.feed(ctx, jobs, items, more)
	var wg sync.WaitGroup
	for range min(d.set.Concurrency, len(items)) {
		wg.Go(func() { s.work(ctx, jobs) })
	}
	wg.Wait()
	return int(s.attempts.Load()), s.last, errors.Join(s.errs...)
}

// sendRun is what one sendAll's feeder and workers share.
type sendRun struct {
	d *Dispatcher
	// probe: the circuit is open, so this step sends its probe.
	probe bool
	// record hands an outcome to the store; a worker goes on sending while
	// up to window of its outcomes are being recorded.
	record recordFunc
	window int

	attempts atomic.Int64
	paused   atomic.Bool
	// storeDown is set when an outcome could not be recorded: the store is
	// unreachable, so every further 200 could not be recorded either and
	// would be sent again later. The rest of the batch waits.
	storeDown atomic.Bool
	// handedBack is set when a row was released: it is due again at once,
	// and claiming it again in this step could go round in a loop.
	handedBack atomic.Bool
	pauseOnce  sync.Once

	mu   sync.Mutex
	errs []error
	last Class
}

// recording waits until one sent row's outcome is recorded and returns its
// class and the store's failure (deliver's second result).
type recording func() (Class, error)

// feed hands items to the workers through jobs, then the batches more
// claims, until a batch comes back short or empty, claimingStops, or the
// target was paused meanwhile (the operator's pause, or another daemon's
// 403): then the rows not yet sent are handed back. It closes jobs when
// done.
func (s *sendRun) feed(ctx context.Context, jobs chan<- outbox.Item, items []outbox.Item, more func() ([]outbox.Item, error)) {
	defer close(jobs)
	for batch := items; ; {
		for _, it := range batch {
			jobs <- it
		}
		if more == nil || s.claimingStops(ctx) {
			return
		}
		next, err := more()
		if err != nil {
			s.fail(err)
			return
		}
		// Asked after the claim, so the claim comes as soon as the batch
		// before it is handed out, as it did before this check existed.
		if len(next) > 0 && s.d.pausedMeanwhile(ctx) {
			s.paused.Store(true) // every row not yet sent, these too, is handed back
			for _, it := range next {
				jobs <- it
			}
			return
		}
		if len(next) < len(batch) {
			more = nil // nothing more was due: the step ends with this batch
		}
		if batch = next; len(batch) == 0 {
			return
		}
	}
}

// work sends the rows from jobs one after the other, hands back those it
// must not send, and returns once every outcome it made is recorded.
func (s *sendRun) work(ctx context.Context, jobs <-chan outbox.Item) {
	var pending []recording // outcomes being recorded, oldest first
	for it := range jobs {
		if s.mustHandBack(ctx, it) {
			s.handBack(ctx, it)
			continue
		}
		class, wait := s.send(ctx, it)
		pending = s.settle(append(pending, wait), s.window)
		if class == Forbidden {
			s.pauseForbidden(ctx)
		}
	}
	s.settle(pending, 0)
}

// sendingStops tells whether the step must send no further row: ctx ended,
// a 403 paused the target, the circuit opened or the store failed.
func (s *sendRun) sendingStops(ctx context.Context) bool {
	return ctx.Err() != nil || s.paused.Load() || s.tripped() || s.storeDown.Load()
}

// claimingStops tells whether the feeder must claim no further batch:
// sendingStops, or a row was handed back.
func (s *sendRun) claimingStops(ctx context.Context) bool {
	return s.sendingStops(ctx) || s.handedBack.Load()
}

// mustHandBack tells whether it must be released unsent: sendingStops, or
// its lease could run out during the request, or before its outcome is
// recorded, which would risk a second sender.
func (s *sendRun) mustHandBack(ctx context.Context, it outbox.Item) bool {
	return s.sendingStops(ctx) ||
		s.d.clock.Now().Add(s.d.set.minLeaseToSend()).After(it.LeaseUntil)
}

// tripped reports whether the circuit opened during this step.
func (s *sendRun) tripped() bool { return !s.probe && s.d.circ.isOpen() }

// handBack releases it unsent, as due now.
func (s *sendRun) handBack(ctx context.Context, it outbox.Item) {
	s.handedBack.Store(true)
	if err := s.d.release(ctx, it); err != nil {
		s.fail(err)
	}
}

// send sends it within the rate limit and hands its outcome to record.
func (s *sendRun) send(ctx context.Context, it outbox.Item) (Class, recording) {
	if s.d.limiter != nil {
		// claimAndSend claimed no more rows than there were tokens.
		s.d.limiter.AllowN(s.d.clock.Now(), 1)
	}
	return s.d.deliver(ctx, it, s.probe, s.record)
}

// settle waits for the oldest of pending until at most keep are left,
// counting each as an attempt, and returns the rest. A store failure stops
// the step's sending.
func (s *sendRun) settle(pending []recording, keep int) []recording {
	for len(pending) > keep {
		class, err := pending[0]()
		pending = pending[1:]
		s.attempts.Add(1)
		s.mu.Lock()
		s.last = class
		s.mu.Unlock()
		if err != nil {
			s.storeDown.Store(true)
			s.fail(err)
		}
	}
	return pending
}

// pauseForbidden stops the step's sending after a 403 and pauses the
// target, once however many workers met one.
func (s *sendRun) pauseForbidden(ctx context.Context) {
	s.paused.Store(true)
	s.pauseOnce.Do(func() {
		if err := s.d.pauseForbidden(ctx); err != nil {
			s.fail(err)
		}
	})
}

// fail adds err to the step's errors.
func (s *sendRun) fail(err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}
