package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/result/xsdschema"
	"github.com/cvbridge/cvbridge/bridge/sign"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// benchConcurrency is the requests in flight for both the drain and the
// limit it is compared with.
const benchConcurrency = 4

// BenchmarkDrainSQLite drains a backlog of queued results from a SQLite
// outbox to the simulator, next to the limit measured in the same run.
func BenchmarkDrainSQLite(b *testing.B) {
	benchDrain(b, false, func(tb testing.TB) outbox.Store {
		s, err := sqlite.Open(context.Background(), tb.TempDir()+"/outbox.db")
		require.NoError(tb, err)
		return s
	})
}

// BenchmarkDrainPostgres is BenchmarkDrainSQLite on a fresh PostgreSQL
// database of the shared server.
func BenchmarkDrainPostgres(b *testing.B) {
	benchDrain(b, true, func(tb testing.TB) outbox.Store {
		s, err := postgres.Open(context.Background(), testdb.Postgres(tb))
		require.NoError(tb, err)
		return s
	})
}

// benchDrain measures, per iteration: the limit (a plain client loop with
// benchConcurrency workers posting N signed bodies to the simulator, no
// store), the drain of N results queued in a fresh store by a Dispatcher
// with the same concurrency to the same simulator, as shipped (record_ahead
// at its default) and strict (record_ahead 0), then the limit again. The
// limit it reports, and each ratio is taken against, is the mean of the
// two, so that a change in the machine's load during the iteration weighs
// on both sides alike. It also reports the shipped drain's enqueue→200
// latency, and the CPU time per result of the first limit run and of the
// shipped drain: this process's, the simulator's and, with pg set, the
// local PostgreSQL server's.
func benchDrain(b *testing.B, pg bool, open func(testing.TB) outbox.Store) {
	n := benchN(b, 5000)
	bin := buildBinary(b)
	url, sim := simProcess(b, bin)
	cpu := cpuMeter{tb: b, sim: sim.Process.Pid, postgres: pg}
	bt := newBodyTemplate(b)
	signer, err := sign.NewSigner(sign.SHA512, []byte(e2eSecret))
	require.NoError(b, err)
	shipped := delivery.DefaultSettings().RecordAhead
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		used := cpu.read()
		before := limitRate(b, url, signer, bt, persons(fmt.Sprintf("L%d-", i), n))
		cpu.report(b, "limit-", used, n)
		store := open(b)
		enqueueAll(b, store, "coachview", bt, persons(fmt.Sprintf("D%d-", i), n))
		used = cpu.read()
		b.StartTimer()
		drained, p50, p99 := drain(b, store, url, signer, n, shipped)
		b.StopTimer()
		cpu.report(b, "", used, n)
		require.NoError(b, store.Close())
		store = open(b)
		enqueueAll(b, store, "coachview", bt, persons(fmt.Sprintf("S%d-", i), n))
		strict, _, _ := drain(b, store, url, signer, n, 0)
		require.NoError(b, store.Close())
		after := limitRate(b, url, signer, bt, persons(fmt.Sprintf("M%d-", i), n))
		limit := (before + after) / 2
		b.ReportMetric(limit, "limit-results/s")
		b.ReportMetric(drained, "results/s")
		b.ReportMetric(drained/limit, "ratio")
		b.ReportMetric(ms(p50), "p50-ms")
		b.ReportMetric(ms(p99), "p99-ms")
		b.ReportMetric(strict, "strict-results/s")
		b.ReportMetric(strict/limit, "strict-ratio")
		b.ReportMetric(float64(n), "results")
		b.StartTimer()
	}
}

// limitRate posts one signed body per person with benchConcurrency
// keep-alive workers and returns the rate of 200 answers.
func limitRate(tb testing.TB, url string, signer *sign.Signer, bt bodyTemplate, ps []string) float64 {
	tb.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency}}
	defer client.CloseIdleConnections()
	jobs := make(chan string)
	var ok atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range benchConcurrency {
		wg.Go(func() {
			for p := range jobs {
				body := bt.body(p)
				req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				if err != nil {
					continue
				}
				req.Header.Set("Content-Type", delivery.DefaultContentType)
				req.Header.Set(sign.Header, signer.Sign(body))
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				}
			}
		})
	}
	for _, p := range ps {
		jobs <- p
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	require.Equal(tb, int64(len(ps)), ok.Load(), "every limit request answered 200")
	return float64(len(ps)) / elapsed.Seconds()
}

// drain runs a Dispatcher (with record_ahead set to ahead) until the n
// queued results are delivered and returns the rate and the
// enqueue→delivered latency percentiles read from the store.
func drain(tb testing.TB, store outbox.Store, url string, signer *sign.Signer, n, ahead int) (float64, time.Duration, time.Duration) {
	tb.Helper()
	set := delivery.DefaultSettings()
	set.Concurrency = benchConcurrency
	set.PollInterval = 100 * time.Millisecond
	set.Batch = 256
	set.RecordAhead = ahead
	var delivered atomic.Int64
	done := make(chan struct{})
	d, err := delivery.New(delivery.Target{Name: "coachview", URL: url, Signer: signer, Settings: set}, store, delivery.Options{
		Logger: slog.New(slog.DiscardHandler),
		Observe: func(o delivery.Outcome) {
			if o.State == outbox.StateDelivered && delivered.Add(1) == int64(n) {
				close(done)
			}
		},
	})
	require.NoError(tb, err)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	start := time.Now()
	go func() { stopped <- d.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(time.Hour):
		tb.Fatalf("drain of %d results did not finish within an hour (%d delivered)", n, delivered.Load())
	}
	elapsed := time.Since(start)
	cancel()
	require.NoError(tb, <-stopped)

	counts, err := store.Counts(context.Background(), "coachview")
	require.NoError(tb, err)
	require.Equal(tb, n, counts[outbox.StateDelivered], "every queued result delivered")
	lat := make([]time.Duration, 0, n)
	var before int64 // List pages newest first; AfterID means older than
	for {
		page, err := store.List(context.Background(), outbox.Filter{State: outbox.StateDelivered, Limit: 5000, AfterID: before})
		require.NoError(tb, err)
		if len(page) == 0 {
			break
		}
		for _, it := range page {
			lat = append(lat, it.DeliveredAt.Sub(it.CreatedAt))
			before = it.ID
		}
		if len(page) < 5000 {
			break
		}
	}
	return float64(n) / elapsed.Seconds(), percentile(lat, 50), percentile(lat, 99)
}

// BenchmarkRender is one result through render, business checks, XSD
// validation and signing, the work intake and delivery do per result.
func BenchmarkRender(b *testing.B) {
	schema, err := xsdschema.Bundled()
	require.NoError(b, err)
	defer schema.Close()
	r, err := result.NewRenderer(result.DefaultOptions(), schema)
	require.NoError(b, err)
	signer, err := sign.NewSigner(sign.SHA512, []byte(e2eSecret))
	require.NoError(b, err)
	c := benchCompletion("P0000001")
	b.ReportAllocs()
	for b.Loop() {
		doc, err := r.Render(c)
		if err != nil {
			b.Fatal(err)
		}
		_ = signer.Sign(doc)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "results/s")
}
