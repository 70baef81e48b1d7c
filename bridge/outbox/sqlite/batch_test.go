package sqlite_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxtest"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
)

func TestBatchConformance(t *testing.T) {
	t.Parallel()
	outboxtest.RunBatch(t, func(t *testing.T, clk clock.Clock) outbox.Store {
		return open(t, filepath.Join(t.TempDir(), "outbox.db"), clk)
	})
}

// BenchmarkFinishBatch records the outcomes of size claimed rows in one
// transaction, next to size single Finish calls.
func BenchmarkFinishBatch(b *testing.B) {
	for _, size := range []int{1, 4, 16, 64} {
		for _, batched := range []bool{false, true} {
			name := fmt.Sprintf("size=%d/single", size)
			if batched {
				name = fmt.Sprintf("size=%d/batch", size)
			}
			b.Run(name, func(b *testing.B) {
				s := open(b, filepath.Join(b.TempDir(), "outbox.db"), clock.System{})
				ctx := b.Context()
				rows := 0
				for b.Loop() {
					b.StopTimer()
					fs := claimRows(b, s, rows, size)
					rows += size
					b.StartTimer()
					if batched {
						errs, err := s.FinishBatch(ctx, fs)
						require.NoError(b, err)
						for _, e := range errs {
							require.NoError(b, e)
						}
						continue
					}
					for _, f := range fs {
						require.NoError(b, s.Finish(ctx, f))
					}
				}
				b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

// claimRows queues and claims n rows and returns their delivered Finishes.
func claimRows(b *testing.B, s *sqlite.Store, from, n int) []outbox.Finish {
	b.Helper()
	ctx := b.Context()
	require.NoError(b, s.InTx(ctx, func(tx outbox.Tx) error {
		for i := range n {
			p := fmt.Sprintf("p%d", from+i)
			if _, err := tx.Enqueue(ctx, outbox.NewResult{Target: "cv", ElearningCode: "e1", PersonID: p, Body: []byte("<x/>" + p)}, outbox.EnqueuePolicy{}); err != nil {
				return err
			}
		}
		return nil
	}))
	items, err := s.Claim(ctx, "cv", "w", n, time.Now(), time.Minute)
	require.NoError(b, err)
	require.Len(b, items, n)
	fs := make([]outbox.Finish, n)
	for i, it := range items {
		fs[i] = outbox.Finish{ID: it.ID, Owner: "w", State: outbox.StateDelivered, Tries: 1, Streak: 1,
			Attempt: outbox.Attempt{Status: 200, Class: "delivered", Duration: time.Millisecond}}
	}
	return fs
}
