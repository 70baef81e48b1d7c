package postgres

import (
	"database/sql"
	"strings"
	"time"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// resultCols are the results columns an Item is read from, in resultRow's order.
const resultCols = `id, target, connection, elearningcode, person_id, source_ref, completed_at, body, state,
	tries, streak, streak_since, last_class, last_status, last_error, next_attempt_at,
	lease_owner, lease_until, created_at, updated_at, delivered_at`

// qualified returns cols (a comma-separated column list) with each column
// prefixed by alias, for statements that join results to something else.
func qualified(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// activeStates is the SQL list of the states that take part in the
// one-row-per-pair rule; it must match the results_active_pair index.
const activeStates = `('pending', 'sending', 'delivered', 'failed')`

// resultRow is a results row as stored.
type resultRow struct {
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
}

// item converts r to the outbox's Item.
func (r resultRow) item() outbox.Item {
	return outbox.Item{
		ID:            r.ID,
		Target:        r.Target,
		Connection:    r.Connection,
		ElearningCode: r.ElearningCode,
		PersonID:      r.PersonID,
		SourceRef:     r.SourceRef,
		CompletedAt:   fromMillis(r.CompletedAt),
		Body:          r.Body,
		State:         outbox.State(r.State),
		Tries:         r.Tries,
		Streak:        r.Streak,
		StreakSince:   fromMillis(r.StreakSince),
		LastClass:     r.LastClass,
		LastStatus:    r.LastStatus,
		LastError:     r.LastError,
		NextAttemptAt: fromMillis(r.NextAttemptAt),
		LeaseOwner:    r.LeaseOwner,
		LeaseUntil:    fromMillis(r.LeaseUntil),
		CreatedAt:     time.UnixMilli(r.CreatedAt).UTC(),
		UpdatedAt:     time.UnixMilli(r.UpdatedAt).UTC(),
		DeliveredAt:   fromMillis(r.DeliveredAt),
	}
}

// items converts rows to Items.
func items(rows []resultRow) []outbox.Item {
	out := make([]outbox.Item, len(rows))
	for i, r := range rows {
		out[i] = r.item()
	}
	return out
}

// attemptRow is an attempts row as stored.
type attemptRow struct {
	ID         int64  `db:"id"`
	ResultID   int64  `db:"result_id"`
	At         int64  `db:"at"`
	Status     int    `db:"status"`
	Class      string `db:"class"`
	Response   string `db:"response"`
	Error      string `db:"error"`
	DurationNS int64  `db:"duration_ns"`
}

// attempt converts a to the outbox's Attempt.
func (a attemptRow) attempt() outbox.Attempt {
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
