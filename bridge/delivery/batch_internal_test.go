package delivery

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// batchLog is an outbox.BatchFinisher that records the size of each batch
// it is given and reports it on sizes.
type batchLog struct {
	mu    sync.Mutex
	all   []int
	sizes chan int
}

func newBatchLog() *batchLog { return &batchLog{sizes: make(chan int, 100)} }

func (l *batchLog) FinishBatch(_ context.Context, fs []outbox.Finish) ([]error, error) {
	l.mu.Lock()
	l.all = append(l.all, len(fs))
	l.mu.Unlock()
	l.sizes <- len(fs)
	return make([]error, len(fs)), nil
}

// next is the size of the next batch committed; it fails t if none comes
// (a hung batcher) within a generous bound.
func (l *batchLog) next(t *testing.T) int {
	t.Helper()
	select {
	case n := <-l.sizes:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no batch was committed")
		return 0
	}
}

// waitAll calls each wait function and checks that it reports success.
func waitAll(t *testing.T, waits []func() error) {
	t.Helper()
	for _, w := range waits {
		require.NoError(t, w())
	}
}

func submitN(b *batcher, n int) []func() error {
	waits := make([]func() error, n)
	for i := range waits {
		waits[i] = b.submit(context.Background(), outbox.Finish{ID: int64(i + 1)})
	}
	return waits
}

// A lone outcome is committed at once when its worker waits for it, however
// long the linger, and when the linger runs out when no one waits.
func TestBatcherCommitsALoneOutcome(t *testing.T) {
	t.Parallel()
	for _, waited := range []bool{true, false} {
		t.Run(fmt.Sprintf("waited=%t", waited), func(t *testing.T) {
			t.Parallel()
			log := newBatchLog()
			linger := time.Millisecond
			if waited {
				linger = time.Hour
			}
			b := startBatcher(t.Context(), log, 8, linger)
			defer b.stop()
			waits := submitN(b, 1)
			if waited {
				waitAll(t, waits)
			}
			assert.Equal(t, 1, log.next(t))
			if !waited {
				waitAll(t, waits)
			}
		})
	}
}

// Outcomes no one waits for are gathered until half the capacity is
// reached and then share one commit.
func TestBatcherGathersHalfItsCapacity(t *testing.T) {
	t.Parallel()
	log := newBatchLog()
	b := startBatcher(t.Context(), log, 8, time.Hour)
	defer b.stop()
	first := submitN(b, 4)
	assert.Equal(t, 4, log.next(t), "the batch is committed when it holds half of 8")
	waitAll(t, first)
	second := submitN(b, 3)
	waitAll(t, second[2:]) // waiting for the last of three commits all three
	assert.Equal(t, 3, log.next(t))
	waitAll(t, second[:2])
}

// stop records every outcome handed over before it returns.
func TestBatcherStopRecordsEverything(t *testing.T) {
	t.Parallel()
	log := newBatchLog()
	b := startBatcher(t.Context(), log, 8, time.Hour)
	waits := submitN(b, 3)
	b.stop()
	waitAll(t, waits)
	log.mu.Lock()
	defer log.mu.Unlock()
	total := 0
	for _, n := range log.all {
		total += n
	}
	assert.Equal(t, 3, total)
}
