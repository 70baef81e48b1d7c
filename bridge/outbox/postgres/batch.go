package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/lib/pq"

	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
)

var _ outbox.BatchFinisher = (*Store)(nil)

// FinishBatch records the outcomes of several attempts in one statement,
// and so in one transaction with one round trip whatever the batch size;
// see outbox.BatchFinisher. The statement updates every row still leased
// to its Finish's owner (each row guarded by its own lease, as in Finish)
// that no newer completion waits for, and, in a data-modifying WITH,
// inserts the attempts of exactly the rows it updated. The few it left —
// a lost lease, a missing row, or a completion waiting for the send — go
// through sqlcore's FinishBatch, which tells them apart and settles the
// waiting completion with the finish, in one transaction. It is the one
// rule the PostgreSQL backend writes in its own SQL: one round trip
// instead of two per row.
func (s *Store) FinishBatch(ctx context.Context, fs []outbox.Finish) ([]error, error) {
	errs := make([]error, len(fs))
	b := finishColumns{excerpt: s.Excerpt}
	now := s.now()
	inStatement := make(map[int64]bool, len(fs))
	var again []int // a row named twice: its later Finishes go one by one
	for i, f := range fs {
		if err := outbox.CheckFinish(f); err != nil {
			errs[i] = err
			continue
		}
		if inStatement[f.ID] {
			again = append(again, i)
			continue
		}
		inStatement[f.ID] = true
		b.add(i, f, now)
	}
	if len(b.index) == 0 {
		return errs, nil
	}
	var updated []int64
	finish, err := s.stmts.Get(ctx, finishBatchQuery)
	if err == nil {
		err = finish.SelectContext(ctx, &updated,
			pq.Array(b.id), pq.Array(b.state), pq.Array(b.tries), pq.Array(b.streak), pq.Array(b.streakSince),
			pq.Array(b.lastClass), pq.Array(b.status), pq.Array(b.lastError), pq.Array(b.due), pq.Array(b.owner),
			now.UnixMilli(), pq.Array(b.at), pq.Array(b.class), pq.Array(b.response), pq.Array(b.errText),
			pq.Array(b.duration), pq.Array(b.unknown))
	}
	if err != nil {
		return nil, fmt.Errorf("finish %d results in one transaction: %w", len(fs), err)
	}
	if len(updated) == len(b.index) && len(again) == 0 {
		return errs, nil
	}
	done := make(map[int64]bool, len(updated))
	for _, id := range updated {
		done[id] = true
	}
	var left []outbox.Finish
	var at []int
	for _, i := range b.index {
		if !done[fs[i].ID] {
			left = append(left, fs[i])
			at = append(at, i)
		}
	}
	for _, i := range again {
		left = append(left, fs[i])
		at = append(at, i)
	}
	leftErrs, err := s.Base.FinishBatch(ctx, left)
	for j, i := range at {
		if err != nil {
			// The statement's rows are recorded; only these are not.
			errs[i] = fmt.Errorf("finish result #%d as %s: %w", fs[i].ID, fs[i].State, err)
		} else {
			errs[i] = leftErrs[j]
		}
	}
	return errs, nil
}

// finishBatchQuery applies many Finishes at once, each row guarded by its
// own lease, as sqlcore's finish statement does one, except the rows a
// newer completion waits for; records the attempts of the rows it updated
// and, as a finish counts its own transitions (migration 0011), the rows
// that left the backlog; and returns their ids. Parameters 1–10 and 12–17
// are the columns of finishColumns, 11 is now.
//
// The ids come through a scalar subquery, whose length no plan knows: a
// plan made for the bound arrays saw their length, and for batches of one
// or two rows (a trickle, or a drain that records each outcome at once) it
// always looked cheaper than the generic plan, which assumes ten rows, so
// the server planned the statement anew at every call. Now a plan for
// bound values assumes at least ten rows as well, and the server keeps its
// generic plan (see refreshStatistics for when that plan is renewed).
const finishBatchQuery = `WITH v AS (
		SELECT * FROM unnest((SELECT $1::bigint[]), $2::text[], $3::integer[], $4::integer[], $5::bigint[], $6::text[],
			$7::integer[], $8::text[], $9::bigint[], $10::text[], $12::bigint[], $13::text[], $14::text[],
			$15::text[], $16::bigint[], $17::boolean[])
		AS v(id, state, tries, streak, streak_since, last_class, last_status, last_error, next_attempt_at, owner,
			at, class, response, error, duration_ns, outcome_unknown)),
	u AS (
		UPDATE results r SET
			state = v.state, tries = v.tries, streak = v.streak, streak_since = v.streak_since,
			last_class = v.last_class, last_status = v.last_status, last_error = v.last_error,
			next_attempt_at = v.next_attempt_at, lease_owner = '', lease_until = NULL,
			delivered_at = CASE WHEN v.state = 'delivered' THEN $11::bigint END, updated_at = $11::bigint,
			outcome_unknown = (r.outcome_unknown OR v.outcome_unknown)
		FROM v
		WHERE r.id = v.id AND r.state = 'sending' AND r.lease_owner = v.owner AND r.waiting_id IS NULL
		RETURNING r.id, r.target, r.state),
	a AS (
		INSERT INTO attempts (result_id, at, status, class, response, error, duration_ns)
		SELECT v.id, v.at, v.last_status, v.class, v.response, v.error, v.duration_ns FROM v JOIN u ON u.id = v.id),
	c AS (
		INSERT INTO result_changes (target, state, hour, entered, left_n)
		SELECT target, state, $11::bigint / 3600000, COUNT(*), 0 FROM u WHERE state <> 'pending' GROUP BY target, state
		UNION ALL
		SELECT target, 'queued', $11::bigint / 3600000, 0, COUNT(*) FROM u WHERE state <> 'pending' GROUP BY target)
	SELECT id FROM u`

// finishColumns are the valid Finishes of a batch, with their attempts, as
// column arrays; index maps each entry back to its position in the batch.
type finishColumns struct {
	excerpt     func(string) string // the store's response excerpt
	index       []int
	id          []int64
	state       []string
	tries       []int64
	streak      []int64
	streakSince []sql.NullInt64
	lastClass   []string
	status      []int64
	lastError   []string
	due         []sql.NullInt64
	owner       []string
	at          []int64
	class       []string
	response    []string
	errText     []string
	duration    []int64
	unknown     []bool
}

// add appends fs[i] = f; an attempt without a time is taken as made at now.
func (c *finishColumns) add(i int, f outbox.Finish, now time.Time) {
	var due sql.NullInt64
	if f.State == outbox.StatePending {
		due = sqlcore.Millis(f.NextAttemptAt)
	}
	at := f.Attempt.At
	if at.IsZero() {
		at = now
	}
	c.index = append(c.index, i)
	c.id = append(c.id, f.ID)
	c.state = append(c.state, string(f.State))
	c.tries = append(c.tries, int64(f.Tries))
	c.streak = append(c.streak, int64(f.Streak))
	c.streakSince = append(c.streakSince, sqlcore.Millis(f.StreakSince))
	c.lastClass = append(c.lastClass, validText(f.LastClass))
	c.status = append(c.status, int64(f.Attempt.Status))
	c.lastError = append(c.lastError, validText(f.LastError))
	c.due = append(c.due, due)
	c.owner = append(c.owner, f.Owner)
	c.at = append(c.at, at.UnixMilli())
	c.class = append(c.class, validText(f.Attempt.Class))
	c.response = append(c.response, c.excerpt(f.Attempt.Response))
	c.errText = append(c.errText, validText(f.Attempt.Error))
	c.duration = append(c.duration, int64(f.Attempt.Duration))
	c.unknown = append(c.unknown, f.OutcomeUnknown)
}
