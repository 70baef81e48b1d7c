package sqlite

import (
	"fmt"

	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
)

// finishCounts adds a finish's own transitions to the counters, as the
// row trigger would have for each row before migration 0010: out of
// 'queued', into each state entered, and into the hour's history.
var finishCounts = sqlcore.FinishCounts{
	MovedIDs: `SELECT value FROM json_each(?)`,
	Add:      addFinished,
}

// The statements of addFinished.
const (
	countEnteredQuery = `INSERT INTO result_counts (target, state, n) VALUES (?, ?, ?)
		ON CONFLICT (target, state) DO UPDATE SET n = result_counts.n + excluded.n`
	countLeftBacklogQuery = `UPDATE result_counts SET n = n - ? WHERE target = ? AND state = 'queued'`
	countHourQuery        = `INSERT INTO result_hours (target, hour, delivered, failed, backlog) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (target, hour) DO UPDATE SET delivered = result_hours.delivered + excluded.delivered,
			failed = result_hours.failed + excluded.failed, backlog = result_hours.backlog + excluded.backlog`
)

// addFinished is finishCounts' Add: one statement per state entered, two
// per target.
func addFinished(exec sqlcore.Exec, moved []sqlcore.Moved, hour int64) error {
	type hourCounts struct{ delivered, failed, left int }
	hours := map[string]*hourCounts{}
	var targets []string // in the order first seen, so statements run in a fixed order
	for _, m := range moved {
		if err := exec(countEnteredQuery, m.Target, string(m.State), m.N); err != nil {
			return fmt.Errorf("%d results of target %q %s: %w", m.N, m.Target, m.State, err)
		}
		h := hours[m.Target]
		if h == nil {
			h = &hourCounts{}
			hours[m.Target] = h
			targets = append(targets, m.Target)
		}
		h.left += m.N
		switch m.State {
		case outbox.StateDelivered:
			h.delivered += m.N
		case outbox.StateFailed:
			h.failed += m.N
		}
	}
	for _, target := range targets {
		h := hours[target]
		if err := exec(countLeftBacklogQuery, h.left, target); err != nil {
			return fmt.Errorf("%d results of target %q out of the backlog: %w", h.left, target, err)
		}
		if err := exec(countHourQuery, target, hour, h.delivered, h.failed, -h.left); err != nil {
			return fmt.Errorf("%d results of target %q in the hour's history: %w", h.left, target, err)
		}
	}
	return nil
}
