package sqlcore

import (
	"database/sql"
	"time"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// ResultCols are the results columns an Item is read from, in ResultRow's order.
const ResultCols = `id, target, connection, elearningcode, person_id, source_ref, completed_at, body, state,
	tries, streak, streak_since, last_class, last_status, last_error, next_attempt_at,
	lease_owner, lease_until, created_at, updated_at, delivered_at, outcome_unknown, waiting_id`

// AttemptCols are the attempts columns an Attempt is read from, in AttemptRow's order.
const AttemptCols = `id, result_id, at, status, class, response, error, duration_ns`

// ResultRow is a results row as stored.
type ResultRow struct {
	ID            int64         `db:"id"`
	Target        string        `db:"target"`
	Connection    string        `db:"connection"`
	ElearningCode string        `db:"elearningcode"`
	PersonID      string        `db:"person_id"`
	SourceRef     string        `db:"source_ref"`
	CompletedAt   sql.NullInt64 `db:"completed_at"`
	Body          []byte        `db:"body"`
	State         string        `db:"state"`
	Tries         int           `db:"tries"`
	Streak        int           `db:"streak"`
	StreakSince   sql.NullInt64 `db:"streak_since"`
	LastClass     string        `db:"last_class"`
	LastStatus    int           `db:"last_status"`
	LastError     string        `db:"last_error"`
	NextAttemptAt sql.NullInt64 `db:"next_attempt_at"`
	LeaseOwner    string        `db:"lease_owner"`
	LeaseUntil    sql.NullInt64 `db:"lease_until"`
	CreatedAt     int64         `db:"created_at"`
	UpdatedAt     int64         `db:"updated_at"`
	DeliveredAt   sql.NullInt64 `db:"delivered_at"`
	// OutcomeUnknown is a BOOLEAN on PostgreSQL and a 0/1 INTEGER on
	// SQLite; both scan into a bool.
	OutcomeUnknown bool          `db:"outcome_unknown"`
	WaitingID      sql.NullInt64 `db:"waiting_id"`
}

// Item converts r to the outbox's Item.
func (r ResultRow) Item() outbox.Item {
	return outbox.Item{
		ID:             r.ID,
		Target:         r.Target,
		Connection:     r.Connection,
		ElearningCode:  r.ElearningCode,
		PersonID:       r.PersonID,
		SourceRef:      r.SourceRef,
		CompletedAt:    FromMillis(r.CompletedAt),
		Body:           r.Body,
		State:          outbox.State(r.State),
		Tries:          r.Tries,
		Streak:         r.Streak,
		StreakSince:    FromMillis(r.StreakSince),
		LastClass:      r.LastClass,
		LastStatus:     r.LastStatus,
		LastError:      r.LastError,
		NextAttemptAt:  FromMillis(r.NextAttemptAt),
		LeaseOwner:     r.LeaseOwner,
		LeaseUntil:     FromMillis(r.LeaseUntil),
		CreatedAt:      time.UnixMilli(r.CreatedAt).UTC(),
		UpdatedAt:      time.UnixMilli(r.UpdatedAt).UTC(),
		DeliveredAt:    FromMillis(r.DeliveredAt),
		OutcomeUnknown: r.OutcomeUnknown,
		WaitingID:      r.WaitingID.Int64,
	}
}

// Items converts rows to Items.
func Items(rows []ResultRow) []outbox.Item {
	out := make([]outbox.Item, len(rows))
	for i, r := range rows {
		out[i] = r.Item()
	}
	return out
}

// AttemptRow is an attempts row as stored.
type AttemptRow struct {
	ID         int64  `db:"id"`
	ResultID   int64  `db:"result_id"`
	At         int64  `db:"at"`
	Status     int    `db:"status"`
	Class      string `db:"class"`
	Response   string `db:"response"`
	Error      string `db:"error"`
	DurationNS int64  `db:"duration_ns"`
}

// Attempt converts a to the outbox's Attempt.
func (a AttemptRow) Attempt() outbox.Attempt {
	return outbox.Attempt{
		ID:       a.ID,
		ResultID: a.ResultID,
		At:       time.UnixMilli(a.At).UTC(),
		Status:   a.Status,
		Class:    a.Class,
		Response: a.Response,
		Error:    a.Error,
		Duration: time.Duration(a.DurationNS),
	}
}

// TargetStateCols are the target_state columns a TargetState is read from,
// in TargetStateRow's order.
const TargetStateCols = `target, paused, reason, paused_at, next_probe_at`

// TargetStateRow is a target_state row as stored. Paused is a BOOLEAN on
// PostgreSQL and a 0/1 INTEGER on SQLite; both scan into a bool.
type TargetStateRow struct {
	Target      string        `db:"target"`
	Paused      bool          `db:"paused"`
	Reason      string        `db:"reason"`
	PausedAt    sql.NullInt64 `db:"paused_at"`
	NextProbeAt sql.NullInt64 `db:"next_probe_at"`
}

// State converts r to the outbox's TargetState.
func (r TargetStateRow) State() outbox.TargetState {
	return outbox.TargetState{
		Target:      r.Target,
		Paused:      r.Paused,
		Reason:      r.Reason,
		PausedAt:    FromMillis(r.PausedAt),
		NextProbeAt: FromMillis(r.NextProbeAt),
	}
}
