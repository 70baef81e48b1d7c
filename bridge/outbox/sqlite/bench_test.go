package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
)

// enqueueBatch enqueues n new results for target in one transaction.
func enqueueBatch(ctx context.Context, b *testing.B, s *sqlite.Store, target, prefix string, n int) {
	b.Helper()
	require.NoError(b, s.InTx(ctx, func(tx outbox.Tx) error {
		for j := range n {
			person := fmt.Sprintf("%s-%d", prefix, j)
			r := outbox.NewResult{
				Target: target, Connection: "moodle", ElearningCode: "e12345", PersonID: person, SourceRef: person,
				Body: fmt.Appendf(nil, `<CoachviewResultaat Elearningcode="e12345" PersoonExterneId=%q><Geslaagd>true</Geslaagd></CoachviewResultaat>`, person),
			}
			if _, err := tx.Enqueue(ctx, r, outbox.EnqueuePolicy{}); err != nil {
				return err
			}
		}
		return nil
	}))
}

// BenchmarkEnqueueTx10k measures one source batch of 10,000 new results
// committed in one transaction.
func BenchmarkEnqueueTx10k(b *testing.B) {
	const batch = 10_000
	ctx := b.Context()
	s := open(b, filepath.Join(b.TempDir(), "outbox.db"), clock.System{})
	batches := 0
	for b.Loop() {
		enqueueBatch(ctx, b, s, "cv", fmt.Sprintf("b%d", batches), batch)
		batches++
	}
	b.ReportMetric(float64(batches*batch)/b.Elapsed().Seconds(), "results/s")
}

// BenchmarkClaimFinish measures the delivery loop's store work: claim a
// batch of 10 and finish each as delivered, one transaction per call, on a
// synchronous=FULL database.
func BenchmarkClaimFinish(b *testing.B) {
	const claimBatch, refill = 10, 5_000
	ctx := b.Context()
	s := open(b, filepath.Join(b.TempDir(), "outbox.db"), clock.System{})
	refills, done := 0, 0
	for b.Loop() {
		items, err := s.Claim(ctx, "cv", "bench", claimBatch, time.Now(), time.Minute)
		require.NoError(b, err)
		if len(items) == 0 {
			b.StopTimer()
			enqueueBatch(ctx, b, s, "cv", fmt.Sprintf("r%d", refills), refill)
			refills++
			b.StartTimer()
			continue
		}
		for _, it := range items {
			require.NoError(b, s.Finish(ctx, outbox.Finish{
				ID: it.ID, Owner: "bench", State: outbox.StateDelivered,
				Attempt: outbox.Attempt{At: time.Now(), Status: 200, Class: "delivered", Response: "OK", Duration: 40 * time.Millisecond},
			}))
		}
		done += len(items)
	}
	b.ReportMetric(float64(done)/b.Elapsed().Seconds(), "results/s")
}
