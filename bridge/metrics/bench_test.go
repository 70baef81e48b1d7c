package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/metrics"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/postgres"
	"github.com/cvbridge/cvbridge/bridge/outbox/sqlite"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// scrapeRows is the large outbox of the scrape benchmarks: a Moodle site's
// history (CVBRIDGE_BENCH_SCRAPE_ROWS, default 1,000,000); the small one
// has 10,000 rows.
func scrapeRows(b *testing.B) (small, large int) {
	large = 1_000_000
	if v := os.Getenv("CVBRIDGE_BENCH_SCRAPE_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(b, err, "CVBRIDGE_BENCH_SCRAPE_ROWS")
		large = n
	}
	return 10_000, large
}

// scrapes is how many scrapes each size's median is taken over.
const scrapes = 15

// BenchmarkScrapeSQLite measures one /metrics scrape of an SQLite outbox
// of 10,000 and of 1,000,000 results (two targets, mostly delivered
// history), and the COUNT(*) per state the scrape ran before the
// counters, on the large outbox. Run with -benchtime=1x: each run fills
// both outboxes and reports medians; the ratio large/small says whether
// the scrape's cost grows with the outbox.
func BenchmarkScrapeSQLite(b *testing.B) {
	benchScrape(b, func(b *testing.B, rows int) (outbox.Store, *sqlx.DB) {
		path := filepath.Join(b.TempDir(), "outbox.db")
		s, err := sqlite.Open(b.Context(), path)
		require.NoError(b, err)
		b.Cleanup(func() { _ = s.Close() })
		db, err := sqlx.Open("sqlite", path)
		require.NoError(b, err)
		b.Cleanup(func() { _ = db.Close() })
		_, err = db.ExecContext(b.Context(), `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			INSERT INTO results (target, connection, elearningcode, person_id, person_key, body, body_hash, state, active,
				next_attempt_at, created_at, updated_at, delivered_at)
			SELECT CASE WHEN i % 4 = 0 THEN 'beta' ELSE 'acme' END, 'moodle', 'E' || (i % 50), 'p' || i, 'p' || i,
				zeroblob(200), randomblob(32), `+stateOf+`, `+stateOf+` IN ('pending', 'sending', 'delivered', 'failed'),
				?, ?, ?, ? FROM n`, rows, benchMillis, benchMillis, benchMillis, benchMillis)
		require.NoError(b, err)
		return s, db
	})
}

// BenchmarkScrapePostgres is BenchmarkScrapeSQLite on PostgreSQL.
func BenchmarkScrapePostgres(b *testing.B) {
	benchScrape(b, func(b *testing.B, rows int) (outbox.Store, *sqlx.DB) {
		dsn := testdb.Postgres(b)
		s, err := postgres.Open(b.Context(), dsn)
		require.NoError(b, err)
		b.Cleanup(func() { _ = s.Close() })
		db, err := sqlx.Open("postgres", dsn)
		require.NoError(b, err)
		b.Cleanup(func() { _ = db.Close() })
		_, err = db.ExecContext(b.Context(), `INSERT INTO results (target, connection, elearningcode, person_id, person_key,
				body, body_hash, state, active, next_attempt_at, created_at, updated_at, delivered_at)
			SELECT CASE WHEN i % 4 = 0 THEN 'beta' ELSE 'acme' END, 'moodle', 'E' || (i % 50), 'p' || i, 'p' || i,
				convert_to(repeat('x', 200), 'UTF8'), sha256(int8send(i)), `+stateOf+`,
				`+stateOf+` IN ('pending', 'sending', 'delivered', 'failed'), $2, $2, $2, $2
			FROM generate_series(1, $1::bigint) AS i`, rows, benchMillis)
		require.NoError(b, err)
		_, err = db.ExecContext(b.Context(), `VACUUM ANALYZE results`)
		require.NoError(b, err)
		require.NoError(b, s.Compact(b.Context()))
		return s, db
	})
}

// stateOf gives the generated rows their states: whatever the size, 200
// waiting and 20 parked, the rest delivered history, so the two outboxes
// differ in history only.
const stateOf = `(CASE WHEN i <= 200 THEN 'pending' WHEN i <= 220 THEN 'failed' ELSE 'delivered' END)`

var benchMillis = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()

// benchScrape fills a small and a large outbox with fill and reports the
// median scrape time of each, their ratio, and the median COUNT(*) per
// state on the large one.
func benchScrape(b *testing.B, fill func(b *testing.B, rows int) (outbox.Store, *sqlx.DB)) {
	small, large := scrapeRows(b)
	type outboxDB struct {
		store outbox.Store
		db    *sqlx.DB
	}
	var dbs []outboxDB
	for _, n := range []int{small, large} {
		s, db := fill(b, n)
		dbs = append(dbs, outboxDB{s, db})
	}
	b.ResetTimer()
	for range b.N {
		var med []float64
		for _, o := range dbs {
			m := metrics.New(metrics.Options{Queue: o.store, Targets: func() []string { return []string{"acme", "beta"} }})
			h := m.Handler()
			med = append(med, median(b, func() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
				require.Equal(b, http.StatusOK, rec.Code)
			}))
		}
		count := median(b, func() {
			var n []int
			require.NoError(b, dbs[1].db.SelectContext(context.Background(), &n,
				`SELECT COUNT(*) FROM results WHERE target = 'acme' GROUP BY state`))
		})
		b.ReportMetric(med[0], "scrape-small-ms")
		b.ReportMetric(med[1], "scrape-large-ms")
		b.ReportMetric(med[1]/med[0], "large/small")
		b.ReportMetric(count, "countstar-large-ms")
		b.ReportMetric(float64(large), "rows")
	}
}

// median runs fn scrapes times and returns its median duration in ms.
func median(b *testing.B, fn func()) float64 {
	b.Helper()
	ds := make([]float64, scrapes)
	for i := range ds {
		start := time.Now()
		fn()
		ds[i] = float64(time.Since(start)) / float64(time.Millisecond)
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}
