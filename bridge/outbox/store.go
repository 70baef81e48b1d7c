// Package outbox owns the persistent store of results waiting for, or done
// with, delivery to Coachview: one row per (target, Elearningcode,
// PersoonExterneId) pair, every delivery attempt, each LMS connection's
// cursor and marks, and each target's paused/active state.
//
// The Store interface is implemented by the SQLite backend (package sqlite,
// the embedded default) and by the PostgreSQL backend (package postgres);
// the rules they share are written once, in internal/sqlcore. Package
// outboxtest is the contract's conformance suite; package outboxcopy moves a
// whole outbox from SQLite to PostgreSQL. Policy (when to retry, when to
// park) belongs to the delivery package; the store only records what it is told,
// atomically.
package outbox

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"
)

// State is where a result row stands.
type State string

// The states of a result row. Only pending, sending, delivered, failed and
// probably-delivered rows take part in the one-row-per-pair rule; the others
// are waiting corrections or history kept for the operator.
const (
	StatePending   State = "pending"   // waiting for its next attempt at NextAttemptAt
	StateSending   State = "sending"   // claimed by a worker holding a lease
	StateDelivered State = "delivered" // Coachview answered 200: never sent again
	StateFailed    State = "failed"    // parked: no more automatic attempts; operator may retry or cancel
	// StateProbablyDelivered: an attempt's outcome was unknown (a timeout, a
	// connection cut after the body was written, a lease that ran out
	// mid-send) and a later attempt was answered 404, which is what
	// Coachview answers once the enrolment left 'ingepland' because it
	// registered the result. Not retried; the operator confirms or retries.
	StateProbablyDelivered State = "probably-delivered"
	StateRejected          State = "rejected"  // failed business or XSD checks: never sent
	StateIgnored           State = "ignored"   // a later completion for a pair Coachview accepted: never sent
	StateCancelled         State = "cancelled" // cancelled by the operator
	// StateWaiting: a newer completion for a pair whose result is being sent
	// at the moment. It is sent next unless Coachview accepts the one in
	// flight, in which case it becomes ignored.
	StateWaiting State = "waiting"
	// StateSuperseded: a result a newer completion replaced before
	// Coachview accepted it; kept, with its attempts, as history.
	StateSuperseded State = "superseded"
)

// States lists every state, in the order the operator sees them.
var States = []State{StatePending, StateSending, StateDelivered, StateFailed, StateProbablyDelivered,
	StateWaiting, StateRejected, StateIgnored, StateSuperseded, StateCancelled}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	for _, k := range States {
		if s == k {
			return true
		}
	}
	return false
}

// Active reports whether s takes part in the one-row-per-pair rule: a
// pair (target, Elearningcode, person) has at most one row in an active
// state (pending, sending, delivered, failed, probably-delivered) at a time.
func (s State) Active() bool {
	switch s {
	case StatePending, StateSending, StateDelivered, StateFailed, StateProbablyDelivered:
		return true
	}
	return false
}

// Errors callers branch on.
var (
	ErrNotFound  = errors.New("outbox: no such result")
	ErrLeaseLost = errors.New("outbox: lease lost: the row was claimed by another worker after this lease expired")
	ErrState     = errors.New("outbox: the result is not in a state that allows this")
)

// NewResult is a rendered (or rejected) result to enqueue.
type NewResult struct {
	Target        string
	Connection    string // the LMS connection it came from
	ElearningCode string
	PersonID      string // as the LMS gave it; the pair key compares it case-insensitively
	SourceRef     string
	CompletedAt   time.Time // zero if unknown
	Body          []byte    // the exact XML to send; nil when rejected
	RejectReason  string    // non-empty: store as rejected, never send
}

// RejectionHash identifies a rejected result for deduplication: the same
// reason for the same source row of the same pair is recorded once, however
// often a source with a lookback window reads it again. Backends store it in
// place of the body hash of rejected rows.
func RejectionHash(r NewResult) []byte {
	h := sha256.New()
	h.Write([]byte(r.RejectReason))
	h.Write([]byte{0})
	h.Write([]byte(r.SourceRef))
	return h.Sum(nil)
}

// EnqueueOutcome says what Enqueue did.
type EnqueueOutcome string

// The outcomes of Enqueue.
const (
	Queued    EnqueueOutcome = "queued"    // a new pending row
	Replaced  EnqueueOutcome = "replaced"  // a pending or failed row got the new body and is pending again
	Unchanged EnqueueOutcome = "unchanged" // the same body was already queued, sending, delivered or failed: nothing written
	Ignored   EnqueueOutcome = "ignored"   // the pair was delivered (or replace_pending is off): stored as ignored
	Rejected  EnqueueOutcome = "rejected"  // stored as rejected
	Waiting   EnqueueOutcome = "waiting"   // the pair is being sent: stored as waiting, sent next unless that send is accepted
	// An identical ignored or rejected row of the pair is Unchanged too:
	// sources that re-read a window do not pile up history rows.
)

// EnqueuePolicy tunes Enqueue.
type EnqueuePolicy struct {
	// ReplacePending lets a newer, different completion replace the body of a
	// pending (not yet delivered) row, or wait for the send in flight and
	// replace it unless Coachview accepts that send. When false such a
	// completion is stored as ignored.
	ReplacePending bool
}

// Item is one result row.
type Item struct {
	ID            int64
	Target        string
	Connection    string
	ElearningCode string
	PersonID      string
	SourceRef     string
	CompletedAt   time.Time
	Body          []byte
	State         State
	// Tries counts the delivery attempts that count against the retry
	// schedule of the current payload (a 403 probe does not count).
	Tries int
	// Streak counts consecutive attempts that ended in the same outcome
	// class (LastClass), and StreakSince is when that run began; the
	// delivery package bounds 404 and 500 retries with them.
	Streak        int
	StreakSince   time.Time
	LastClass     string
	LastStatus    int    // last HTTP status, 0 for a connection error or none yet
	LastError     string // why it is failed, rejected or ignored, or the last attempt's error
	NextAttemptAt time.Time
	LeaseOwner    string
	LeaseUntil    time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
	DeliveredAt   time.Time
	// OutcomeUnknown: an attempt for this pair may have reached Coachview
	// without its answer reaching us (a timeout or a connection cut after
	// the request was written, a 502 or 504 from a gateway, a lease that
	// ran out mid-send). It stays until the operator retries a
	// probably-delivered row.
	OutcomeUnknown bool
	// WaitingID, on a sending row, is the waiting row holding a newer
	// completion of the pair; 0 when there is none.
	WaitingID int64
}

// Attempt is one delivery attempt, kept for the operator.
type Attempt struct {
	ID       int64
	ResultID int64
	At       time.Time
	Status   int           // HTTP status, 0 when no response
	Class    string        // outcome class decided by delivery (e.g. "delivered", "transient", "not_found")
	Response string        // response body excerpt, at most MaxResponseExcerpt bytes
	Error    string        // connection error text, if any
	Duration time.Duration // request duration
}

// MaxResponseExcerpt is the most of a response body an Attempt keeps.
const MaxResponseExcerpt = 2048

// Finish is the outcome of a claimed row's attempt, applied atomically.
type Finish struct {
	ID      int64
	Owner   string // must still hold the lease, else ErrLeaseLost
	Attempt Attempt
	// State is the row's new state: delivered, pending (retry at
	// NextAttemptAt), failed or probably-delivered.
	State         State
	NextAttemptAt time.Time
	Tries         int
	Streak        int
	StreakSince   time.Time
	LastClass     string
	LastError     string
	// OutcomeUnknown says the attempt may have reached Coachview although no
	// answer of Coachview's came back; the row keeps the mark (Item).
	OutcomeUnknown bool
}

// Filter selects rows for the operator. Zero fields do not filter.
type Filter struct {
	Target        string
	Connection    string
	State         State
	PersonID      string // compared case-insensitively
	ElearningCode string
	Limit         int // 0 means a default of 100
	AfterID       int64
}

// TargetState is a target's persisted state.
type TargetState struct {
	Target      string
	Paused      bool
	Reason      string
	PausedAt    time.Time
	NextProbeAt time.Time // while paused: when one row may be sent to test whether the fault is fixed
}

// Hour is one hour of a target's delivery history, for the dashboard's charts.
type Hour struct {
	Start     time.Time // the hour's beginning, in UTC
	Delivered int       // results that became delivered in the hour
	Failed    int       // results parked (failed) in the hour
	// Backlog is how many results waited (pending or sending) at the
	// hour's end; for the current hour, now.
	Backlog int
}

// Tx is the unit of work of one source batch: everything in it commits or
// nothing does.
type Tx interface {
	Enqueue(ctx context.Context, r NewResult, p EnqueuePolicy) (EnqueueOutcome, error)
	SaveCursor(ctx context.Context, connection string, cursor []byte) error
	Mark(ctx context.Context, connection, mark string) error
}

// Store is the persistent outbox.
type Store interface {
	// InTx runs fn in one transaction, committed when fn returns nil.
	InTx(ctx context.Context, fn func(Tx) error) error
	// Cursor returns a connection's stored cursor, nil if none.
	Cursor(ctx context.Context, connection string) ([]byte, error)
	// Marked reports whether a connection recorded mark.
	Marked(ctx context.Context, connection, mark string) (bool, error)

	// Claim leases up to limit rows of target that are due at now: pending
	// rows whose NextAttemptAt has come, and sending rows whose lease ran out.
	// Claimed rows become sending, owned by owner until now+lease.
	Claim(ctx context.Context, target, owner string, limit int, now time.Time, lease time.Duration) ([]Item, error)
	// Finish records an attempt and the row's new state, if owner still holds the lease.
	Finish(ctx context.Context, f Finish) error
	// Release returns a claimed row to pending without recording an attempt
	// (used on shutdown and when a paused target hands back its claims).
	Release(ctx context.Context, id int64, owner string, nextAttemptAt time.Time) error
	// NextDue returns the earliest NextAttemptAt of target's pending rows
	// (or lease end of its sending rows); ok is false when there are none.
	NextDue(ctx context.Context, target string) (t time.Time, ok bool, err error)

	// TargetState returns target's state (active when never set).
	TargetState(ctx context.Context, target string) (TargetState, error)
	// SetTargetState stores target's state.
	SetTargetState(ctx context.Context, s TargetState) error

	// List returns rows matching f, newest first.
	List(ctx context.Context, f Filter) ([]Item, error)
	// Get returns one row with its attempts, oldest first.
	Get(ctx context.Context, id int64) (Item, []Attempt, error)
	// OldestPending returns the earliest CreatedAt of target's pending and
	// sending rows, in one query; ok is false when none waits.
	OldestPending(ctx context.Context, target string) (t time.Time, ok bool, err error)
	// Counts returns the number of rows per state for target ("" = all
	// targets). It reads counters the store keeps as rows change, so its
	// cost does not grow with the outbox.
	Counts(ctx context.Context, target string) (map[State]int, error)
	// Unfinished returns, for each target that has any, how many of its
	// results are not done (pending, sending, waiting, failed or probably
	// delivered): the daemon names targets no longer configured whose
	// results would otherwise wait unseen.
	Unfinished(ctx context.Context) (map[string]int, error)
	// Hours returns target's delivery history, one Hour for each hour from
	// the one holding since to the one holding now, oldest first.
	Hours(ctx context.Context, target string, since, now time.Time) ([]Hour, error)
	// Retry makes a failed, probably-delivered, cancelled or pending row due
	// at now with a fresh retry schedule (Tries and Streak reset).
	Retry(ctx context.Context, id int64, now time.Time) error
	// Cancel cancels a pending, failed, probably-delivered or waiting row.
	Cancel(ctx context.Context, id int64, now time.Time) error
	// Confirm records a probably-delivered row as delivered, on the
	// operator's word that Coachview has the result.
	Confirm(ctx context.Context, id int64, now time.Time) error
	// Purge deletes up to limit rows in a HistoryState (with their
	// attempts) and erases up to limit delivered rows (their bodies and
	// Coachview's responses; the rows stay, as the record that Coachview
	// accepted their pairs), all last updated before cutoff, and returns
	// how many rows it deleted or erased.
	Purge(ctx context.Context, cutoff time.Time, limit int) (int, error)
	// BatchFinisher records many outcomes in one transaction (one commit,
	// one fsync on SQLite).
	BatchFinisher
	// Leaser hands out the named leases that keep each LMS connection's
	// polls on one daemon at a time.
	Leaser

	Close() error
}
