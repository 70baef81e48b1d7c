// Package intake runs LMS sources on their schedules and commits what they
// yield to the outbox: each completion is rendered and checked, then
// enqueued in the same transaction that moves the connection's cursor.
//
// It owns no storage and no delivery; it knows sources only through the
// bridge/source contract.
package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"unicode/utf8"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// Renderer turns a completion into the exact XML body to send.
type Renderer interface {
	Render(c result.Completion) ([]byte, error)
}

// Sink is the core's source.Sink for one LMS connection.
type Sink struct {
	store      outbox.Store
	renderer   Renderer
	connection string
	target     string
	policy     outbox.EnqueuePolicy
	log        *slog.Logger
	queued     func()
	committed  func(connection string, sum source.Summary)
	enrolments inboundstore.EnrolmentList // nil when the store keeps none
}

var _ source.Sink = (*Sink)(nil)

// SinkConfig configures a Sink.
type SinkConfig struct {
	Connection string
	Target     string
	Policy     outbox.EnqueuePolicy
	Logger     *slog.Logger
	// Queued, when set, is called after a commit queued something new, to
	// wake the target's dispatcher.
	Queued func()
	// Committed, when set, is called after every successful commit with
	// what it did (metrics). It must be quick and safe for concurrent use.
	Committed func(connection string, sum source.Summary)
}

// NewSink returns a sink that commits into store.
func NewSink(store outbox.Store, renderer Renderer, cfg SinkConfig) *Sink {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	enrolments, _ := store.(inboundstore.EnrolmentList)
	return &Sink{
		store: store, renderer: renderer, connection: cfg.Connection, target: cfg.Target,
		policy: cfg.Policy, log: log.With("connection", cfg.Connection, "target", cfg.Target), queued: cfg.Queued,
		committed: cfg.Committed, enrolments: enrolments,
	}
}

// Enrolments returns the connection's enrolment list from the store (none
// when the store keeps no list); see source.Sink.
func (s *Sink) Enrolments(ctx context.Context) ([]source.Enrolled, error) {
	return Enrolments(ctx, s.enrolments, s.connection)
}

// ReportProblems does nothing here: the Runner, which polls each job
// through its own wrapper of this sink, keeps the account of a job's
// problems for the dashboard and /metrics.
func (s *Sink) ReportProblems(source.Problems) {}

// DryRun is false: this sink stores what it is given.
func (s *Sink) DryRun() bool { return false }

// Enrolments reads connection's enrolment list from list as a source sees
// it (source.Sink's Enrolments); a nil list holds none. The daemon's sink and
// the dry run of cvbridge render both offer it.
func Enrolments(ctx context.Context, list inboundstore.EnrolmentList, connection string) ([]source.Enrolled, error) {
	if list == nil {
		return nil, nil
	}
	es, err := list.ListEnrolments(ctx, inboundstore.EnrolmentFilter{Connection: connection})
	if err != nil {
		return nil, fmt.Errorf("connection %s: %w", connection, err)
	}
	out := make([]source.Enrolled, len(es))
	for i, e := range es {
		out[i] = source.Enrolled{PersonID: e.PersonID, ElearningCode: e.ElearningCode,
			Active: e.State == inboundstore.EnrolmentActive, Ref: e.MessageID}
	}
	return out, nil
}

// Cursor returns the connection's stored cursor.
func (s *Sink) Cursor(ctx context.Context) ([]byte, error) {
	return s.store.Cursor(ctx, s.connection)
}

// Seen reports whether the connection committed mark before.
func (s *Sink) Seen(ctx context.Context, mark string) (bool, error) {
	return s.store.Marked(ctx, s.connection, mark)
}

// Commit renders and enqueues every completion fill adds and stores the
// checkpoint, all in one transaction.
func (s *Sink) Commit(ctx context.Context, cp source.Checkpoint, fill func(add func(result.Completion) error) error) (source.Summary, error) {
	var sum source.Summary
	err := s.store.InTx(ctx, func(tx outbox.Tx) error {
		sum = source.Summary{}
		if err := fill(func(c result.Completion) error {
			r, err := s.newResult(c)
			if err != nil {
				return err
			}
			outcome, err := tx.Enqueue(ctx, r, s.policy)
			if err != nil {
				return err
			}
			count(&sum, outcome)
			if outcome == outbox.Rejected && cp.Rejected != nil {
				return cp.Rejected(c.SourceRef, r.RejectReason)
			}
			return nil
		}); err != nil {
			return err
		}
		if cp.Cursor != nil {
			if err := tx.SaveCursor(ctx, s.connection, cp.Cursor); err != nil {
				return err
			}
		}
		for _, m := range cp.Marks {
			if err := tx.Mark(ctx, s.connection, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return source.Summary{}, fmt.Errorf("connection %s: commit: %w", s.connection, err)
	}
	if sum.Total() > 0 {
		s.log.Info("committed", "queued", sum.Queued, "replaced", sum.Replaced, "waiting", sum.Waiting, "unchanged", sum.Unchanged,
			"ignored", sum.Ignored, "rejected", sum.Rejected)
	}
	if s.committed != nil {
		s.committed(s.connection, sum)
	}
	if sum.Queued+sum.Replaced > 0 && s.queued != nil {
		s.queued()
	}
	return sum, nil
}

// newResult renders c; a completion that fails the checks becomes a
// rejected row carrying the reason, so the operator sees it. A fault of the
// renderer itself (the XSD validator failing, not refusing the document)
// says nothing about the result: it is returned as an error, which fails the
// commit, so the poll reports it and the next poll tries again, instead of
// parking the learner's result for good.
func (s *Sink) newResult(c result.Completion) (outbox.NewResult, error) {
	r := outbox.NewResult{
		Target:        s.target,
		Connection:    s.connection,
		ElearningCode: storable(strings.TrimSpace(c.ElearningCode)),
		PersonID:      storable(strings.TrimSpace(c.PersonID)),
		SourceRef:     storable(c.SourceRef),
		CompletedAt:   c.CompletedAt,
	}
	body, err := s.renderer.Render(c)
	var ce *result.CheckError
	switch {
	case errors.As(err, &ce):
		r.RejectReason = storable(err.Error())
		// The reason may quote a value (a remark); the operator reads it in
		// the outbox, the log names only the field and the source row.
		s.log.Warn("result rejected", "source_ref", c.SourceRef, "field", ce.Field)
		return r, nil
	case err != nil:
		return outbox.NewResult{}, fmt.Errorf("%w: %s: %w", ErrRenderFault, storable(c.SourceRef), err)
	}
	r.Body = body
	return r, nil
}

// ErrRenderFault marks a commit that failed because the renderer failed
// (the validator, not the result): nothing of the batch is stored and the
// next poll reads it again.
var ErrRenderFault = errors.New("the bridge could not render a result (a fault of the bridge, not of the result; the next poll retries)")

// storable returns s as every store can keep it in a text column: valid
// UTF-8 without NUL bytes (PostgreSQL's TEXT refuses both, and one such row
// would fail the whole commit again at every poll). Each invalid byte and
// each NUL becomes a \xNN escape, so a rejected row still shows the
// operator what the source held. Text the renderer accepts is valid
// already, so the values of a result that is sent never change.
func storable(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == 0 || r == utf8.RuneError && size == 1 {
			fmt.Fprintf(&b, `\x%02X`, s[i])
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func count(sum *source.Summary, o outbox.EnqueueOutcome) {
	switch o {
	case outbox.Queued:
		sum.Queued++
	case outbox.Replaced:
		sum.Replaced++
	case outbox.Waiting:
		sum.Waiting++
	case outbox.Unchanged:
		sum.Unchanged++
	case outbox.Ignored:
		sum.Ignored++
	case outbox.Rejected:
		sum.Rejected++
	}
}
