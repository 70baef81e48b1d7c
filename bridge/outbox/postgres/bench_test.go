package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// BenchmarkClaimFinish measures the delivery loop's store work: claim a
// batch of 10 and finish each as delivered, one transaction per call.
func BenchmarkClaimFinish(b *testing.B) {
	const claimBatch, refill = 10, 5_000
	ctx := b.Context()
	s := open(b, testdb.Postgres(b))
	refills, done := 0, 0
	for b.Loop() {
		items, err := s.Claim(ctx, "cv", "bench", claimBatch, time.Now(), time.Minute)
		require.NoError(b, err)
		if len(items) == 0 {
			b.StopTimer()
			enqueueN(b, s, "cv", fmt.Sprintf("r%d", refills), refill)
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

// BenchmarkClaimWithMillionDelivered measures one Claim of 10 rows while a
// million delivered rows of the same target are retained. Each round claims
// at a time past the previous round's leases, so the same 10 rows are due
// again and only Claim is timed.
func BenchmarkClaimWithMillionDelivered(b *testing.B) {
	const delivered, due, lease = 1_000_000, 10, time.Minute
	ctx := b.Context()
	dsn := testdb.Postgres(b)
	s := open(b, dsn, postgres.WithClock(clock.System{}))
	fillDelivered(b, raw(b, dsn), "cv", delivered)
	enqueueN(b, s, "cv", "due", due)
	now := time.Now()
	for b.Loop() {
		items, err := s.Claim(ctx, "cv", "bench", due, now, lease)
		require.NoError(b, err)
		require.Len(b, items, due)
		now = now.Add(lease)
	}
}
