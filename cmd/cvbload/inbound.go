package main

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// inboundGoalMS is the goal: ack p99 at most 25 ms at inboundGoalRate.
const (
	inboundGoalMS   = 25
	inboundGoalRate = 1000
)

// inboundStores are the inbound benchmarks, one per store.
var inboundStores = []struct{ name, bench string }{
	{"SQLite", "BenchmarkInboundSQLite"},
	{"PostgreSQL", "BenchmarkInboundPostgres"},
}

// inboundRateUnit matches the per-rate metrics of the inbound benchmarks,
// e.g. "db-1000-p99-ms" and "bare-3000-acks/s".
var inboundRateUnit = regexp.MustCompile(`^(?:db|bare)-(\d+)-`)

// inboundRates are the rates bench's runs measured, ascending.
func inboundRates(r *results, bench string) []int {
	var rates []int
	for _, m := range r.runs[bench] {
		for unit := range m {
			if sub := inboundRateUnit.FindStringSubmatch(unit); sub != nil {
				if rate, err := strconv.Atoi(sub[1]); err == nil && !slices.Contains(rates, rate) {
					rates = append(rates, rate)
				}
			}
		}
	}
	slices.Sort(rates)
	return rates
}

// inboundSection writes the inbound benchmarks' tables: per store and rate,
// the daemon's ack latency, errors and achieved rate beside the bare
// handler's, and the highest rate each held.
func inboundSection(b *strings.Builder, r *results) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## Inbound webhooks\n\n")
	ran := false
	for _, st := range inboundStores {
		rates := inboundRates(r, st.bench)
		if len(rates) == 0 {
			continue
		}
		ran = true
		step, _ := r.median(st.bench, "step-s")
		p("**%s** store, beside the bare handler; %.0f s per rate, median over the runs that reached the rate.\n\n", st.name, step)
		p("| Rate /s | Stored: p50 ms | p99 ms | errors | acks/s | Bare: p50 ms | p99 ms | errors | acks/s | Runs (stored/bare) | Goal | Met |\n")
		p("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, rate := range rates {
			cell := func(who, metric, format string) (string, int) {
				v, n := r.median(st.bench, fmt.Sprintf("%s-%d-%s", who, rate, metric))
				if n == 0 {
					return "–", 0
				}
				return fmt.Sprintf(format, v), n
			}
			dbP50, dbRuns := cell("db", "p50-ms", "%.1f")
			dbP99, _ := cell("db", "p99-ms", "%.1f")
			dbErr, _ := cell("db", "errors", "%.0f")
			dbAcks, _ := cell("db", "acks/s", "%.0f")
			bareP50, bareRuns := cell("bare", "p50-ms", "%.1f")
			bareP99, _ := cell("bare", "p99-ms", "%.1f")
			bareErr, _ := cell("bare", "errors", "%.0f")
			bareAcks, _ := cell("bare", "acks/s", "%.0f")
			goal, met := "", ""
			if rate == inboundGoalRate && dbRuns > 0 {
				goal = fmt.Sprintf("p99 ≤ %d", inboundGoalMS)
				v, _ := r.median(st.bench, fmt.Sprintf("db-%d-p99-ms", rate))
				met = "no"
				if v <= inboundGoalMS {
					met = "yes"
				}
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d/%d | %s | %s |\n", round(float64(rate)),
				dbP50, dbP99, dbErr, dbAcks, bareP50, bareP99, bareErr, bareAcks, dbRuns, bareRuns, goal, met)
		}
		held, _ := r.median(st.bench, "db-held/s")
		bare, _ := r.median(st.bench, "bare-held/s")
		p("\nHighest rate held (every request answered 200, p99 ≤ %d ms): stored %s, bare handler %s.\n\n",
			inboundGoalMS, heldRate(held), heldRate(bare))
	}
	if !ran {
		p("Not run.\n\n")
	}
}

// heldRate writes a held rate; 0 means no rate was held.
func heldRate(v float64) string {
	if v <= 0 {
		return "none"
	}
	return round(v) + "/s"
}
