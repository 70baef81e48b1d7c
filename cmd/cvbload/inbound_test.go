package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestInboundSection: the inbound benchmark's metrics become a table per
// store, rates ascending, the goal judged at 1,000/s, and the held rates.
func TestInboundSection(t *testing.T) {
	out := `BenchmarkInboundSQLite-2 1 2855 ns/op 2.5 db-1000-p50-ms 9.9 db-1000-p99-ms 0 db-1000-errors 999.7 db-1000-acks/s 1.5 db-200-p50-ms 2.5 db-200-p99-ms 0 db-200-errors 200 db-200-acks/s 0.8 bare-1000-p50-ms 1.5 bare-1000-p99-ms 0 bare-1000-errors 1000 bare-1000-acks/s 3000 bare-4500-acks/s 1000 db-held/s 3000 bare-held/s 10 step-s
BenchmarkInboundSQLite-2 1 2855 ns/op 2.7 db-1000-p50-ms 30.1 db-1000-p99-ms 0 db-1000-errors 999.7 db-1000-acks/s 1.5 db-200-p50-ms 2.5 db-200-p99-ms 0 db-200-errors 200 db-200-acks/s 200 db-held/s 1000 bare-held/s 10 step-s
BenchmarkInboundSQLite-2 1 2855 ns/op 2.6 db-1000-p50-ms 11.0 db-1000-p99-ms 0 db-1000-errors 999.7 db-1000-acks/s 1.5 db-200-p50-ms 2.5 db-200-p99-ms 0 db-200-errors 200 db-200-acks/s 1000 db-held/s 3000 bare-held/s 10 step-s
`
	res, err := parse(strings.NewReader(out))
	require.NoError(t, err)
	assert.Equal(t, []int{200, 1000, 4500}, inboundRates(res, "BenchmarkInboundSQLite"))
	text := render(res, host{cpus: 2}, time.Unix(0, 0))
	assert.NotContains(t, text, "not measured yet")
	assert.Contains(t, text, "| 1,000 | 2.6 | 11.0 | 0 | 1000 | 0.8 | 1.5 | 0 | 1000 | 3/1 | p99 ≤ 25 | yes |")
	assert.Contains(t, text, "| 200 | 1.5 | 2.5 | 0 | 200 | – | – | – | – | 3/0 |  |  |")
	assert.Contains(t, text, "Highest rate held (every request answered 200, p99 ≤ 25 ms): stored 1,000/s, bare handler 3,000/s.")
	assert.Contains(t, text, "| Inbound, SQLite: webhook ack p99 at 1,000/s, ms | 11.0 [9.9 – 30.1] | 3 | ≤ 25 | yes |")
	assert.Contains(t, text, "| Inbound, PostgreSQL: highest rate held, /s | not run | 0 |")
}
