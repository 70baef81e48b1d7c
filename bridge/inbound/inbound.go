// Package inbound owns the processing of enrolments Coachview sends to the
// bridge: a Processor that carries one stored inbound message out through
// the enroller of the LMS connection its e-learning code routes to, and a
// Worker that claims due messages from the store (with leases, so several
// daemons may run one each) and retries transient LMS errors with
// exponential backoff for a bounded time.
//
// The messages themselves arrive through the sub-packages: webhook
// (Coachview API webhooks, verified by signature or token), link (the
// enrolment link, authorised by the OAuth 2.0 server in package oauth) and
// are stored through inboundstore.Store, implemented by the outbox backends.
// Package listen builds the public HTTP server they are mounted on.
//
// Every enrolment and unenrolment the bridge carries out is kept in the
// enrolment list (connection, person id, e-learning code, active or
// unenrolled; inboundstore.EnrolmentList), which adapters that cannot list
// completions (Moodle's web-service mode) read to know whom to poll, and
// which `cvbridge enrolments` shows.
//
// Personal data: a stored message holds the person's id, names and e-mail
// address (in its columns and in its raw body) in the inbound_messages
// table of the outbox database while it is processed, and for a retention
// after that (ErasePersonalData; default 30 days); then the names, e-mail
// address and body are erased. Finished messages are deleted after
// inbound.keep_messages (PurgeMessages; default 90 days). The enrolment
// list holds ids only. docs/privacy.md describes it all.
package inbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"time"

	"github.com/sethvargo/go-retry"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// ErrNoRoute is returned by a Router for an e-learning code no LMS
// connection owns.
var ErrNoRoute = errors.New("no LMS connection owns this e-learning code")

// Route is where the enrolments of one e-learning code go.
type Route struct {
	Connection string          // the LMS connection's name
	Enroller   source.Enroller // its enroller
}

// Router picks the LMS connection for an e-learning code.
type Router interface {
	// Route returns the route of code, or an error wrapping ErrNoRoute.
	Route(code string) (Route, error)
}

// CodeRule says that an LMS connection owns the e-learning codes matching
// any of Patterns (path.Match syntax, e.g. "MOO-*"; a plain code matches
// itself).
type CodeRule struct {
	Connection string
	Patterns   []string
	Enroller   source.Enroller
}

// CodeRouter routes codes by CodeRules, first match wins, and sends codes
// no rule matches to the default connection, if one is set.
type CodeRouter struct {
	rules []CodeRule
	def   *Route
}

// NewCodeRouter checks rules and builds a router. defaultConnection names
// the rule whose connection takes unmatched codes ("" for none).
func NewCodeRouter(rules []CodeRule, defaultConnection string) (*CodeRouter, error) {
	r := &CodeRouter{rules: rules}
	for _, rule := range rules {
		if rule.Connection == "" || rule.Enroller == nil {
			return nil, fmt.Errorf("e-learning code routing: a rule needs a connection and an enroller (connection %q)", rule.Connection)
		}
		for _, p := range rule.Patterns {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("e-learning code routing: connection %q: pattern %q: %w", rule.Connection, p, err)
			}
		}
		if rule.Connection == defaultConnection {
			r.def = &Route{Connection: rule.Connection, Enroller: rule.Enroller}
		}
	}
	if defaultConnection != "" && r.def == nil {
		return nil, fmt.Errorf("e-learning code routing: default connection %q has no enroller", defaultConnection)
	}
	return r, nil
}

// Route returns the route of code; see Router.
func (r *CodeRouter) Route(code string) (Route, error) {
	for _, rule := range r.rules {
		for _, p := range rule.Patterns {
			if ok, _ := path.Match(p, code); ok {
				return Route{Connection: rule.Connection, Enroller: rule.Enroller}, nil
			}
		}
	}
	if r.def != nil {
		return *r.def, nil
	}
	return Route{}, fmt.Errorf("e-learning code %q: %w", code, ErrNoRoute)
}

// RetryPolicy says how transient LMS errors are retried.
type RetryPolicy struct {
	// Base is the first retry's delay; each further one doubles (default 1m).
	Base time.Duration `yaml:"retry_base"`
	// Max caps one delay (default 1h).
	Max time.Duration `yaml:"retry_max"`
	// GiveUpAfter is how long after its receipt a message is retried
	// before it is marked failed (default 72h).
	GiveUpAfter time.Duration `yaml:"give_up_after"`
}

// withDefaults fills the zero fields of p.
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Base <= 0 {
		p.Base = time.Minute
	}
	if p.Max <= 0 {
		p.Max = time.Hour
	}
	if p.GiveUpAfter <= 0 {
		p.GiveUpAfter = 72 * time.Hour
	}
	return p
}

// Delay is the wait before retry number attempt (1 for the first retry).
func (p RetryPolicy) Delay(attempt int) time.Duration {
	p = p.withDefaults()
	b := retry.WithCappedDuration(p.Max, retry.NewExponential(p.Base))
	var d time.Duration
	for range max(attempt, 1) {
		d, _ = b.Next()
	}
	return d
}

// Outcome is the result of processing one message.
type Outcome struct {
	State         inboundstore.State // done, failed, or pending (will be retried)
	Connection    string             // the LMS connection it went to, if routed
	Reason        string             // why it failed or will be retried
	NextAttemptAt time.Time          // for pending
}

// Processor carries out leased inbound messages. It is safe for concurrent use.
type Processor struct {
	store  inboundstore.MessageStore
	router Router
	clock  clock.Clock
	log    *slog.Logger
	policy RetryPolicy
}

// ProcessorOption changes a Processor.
type ProcessorOption func(*Processor)

// WithClock makes the processor read the time from c.
func WithClock(c clock.Clock) ProcessorOption { return func(p *Processor) { p.clock = c } }

// WithLogger makes the processor log to l.
func WithLogger(l *slog.Logger) ProcessorOption { return func(p *Processor) { p.log = l } }

// WithRetryPolicy sets the retry policy (zero fields take their defaults).
func WithRetryPolicy(rp RetryPolicy) ProcessorOption {
	return func(p *Processor) { p.policy = rp.withDefaults() }
}

// NewProcessor returns a processor recording outcomes in store and sending
// each message to the enroller router picks for its e-learning code.
func NewProcessor(store inboundstore.MessageStore, router Router, opts ...ProcessorOption) *Processor {
	p := &Processor{store: store, router: router, clock: clock.System{}, log: slog.Default(), policy: RetryPolicy{}.withDefaults()}
	for _, o := range opts {
		o(p)
	}
	return p
}

// finishTimeout bounds recording an outcome, which runs even when the
// caller's context was cancelled (the LMS may have acted).
const finishTimeout = 10 * time.Second

// Process carries out m, which owner must hold the lease of, within ctx,
// and records the outcome: done when the LMS did it, failed with the reason
// on a permanent refusal, an unroutable code or when retries ran out,
// pending with the next attempt time on a transient error. A done
// enrolment or unenrolment also updates the enrolment list of the
// connection it went to (inboundstore.EnrolmentList), atomically with its
// state. The returned error is only about storing the outcome.
func (p *Processor) Process(ctx context.Context, m inboundstore.Message, owner string) (Outcome, error) {
	out := p.run(ctx, m)
	log := p.log.With(slog.Int64("inbound_id", m.ID), slog.String("source", m.Source),
		slog.String("action", string(m.Action)), slog.String("elearningcode", m.ElearningCode),
		slog.String("person", m.PersonID), slog.String("connection", out.Connection),
		slog.Int("attempt", m.Attempts+1), slog.String("state", string(out.State)))
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	// With the connection, a done enrolment or unenrolment lands in the
	// enrolment list in the same transaction as its done state.
	err := p.store.FinishMessage(fctx, inboundstore.Finish{
		ID: m.ID, Owner: owner, State: out.State, NextAttemptAt: out.NextAttemptAt, Error: out.Reason, At: p.clock.Now(),
		Connection: out.Connection,
	})
	if err != nil {
		log.Error("inbound enrolment: outcome not recorded", slog.String("error", err.Error()))
		return out, fmt.Errorf("inbound message %d: record outcome %s: %w", m.ID, out.State, err)
	}
	switch out.State {
	case inboundstore.StateDone:
		log.Info("inbound enrolment done")
	case inboundstore.StateFailed:
		log.Warn("inbound enrolment failed", slog.String("reason", out.Reason))
	default:
		log.Warn("inbound enrolment will be retried", slog.String("reason", out.Reason), slog.Time("next_attempt_at", out.NextAttemptAt))
	}
	return out, nil
}

// run carries m out and decides its outcome, storing nothing.
func (p *Processor) run(ctx context.Context, m inboundstore.Message) Outcome {
	if m.Action != inboundstore.ActionEnrol && m.Action != inboundstore.ActionUnenrol {
		return Outcome{State: inboundstore.StateFailed, Reason: fmt.Sprintf("action %q cannot be carried out", m.Action)}
	}
	route, err := p.router.Route(m.ElearningCode)
	if err != nil {
		return Outcome{State: inboundstore.StateFailed, Reason: fmt.Sprintf("e-learning code %q is not linked to any LMS connection in the bridge's configuration", m.ElearningCode)}
	}
	if m.Action == inboundstore.ActionEnrol {
		err = route.Enroller.Enrol(ctx, source.Enrolment{
			PersonID: m.PersonID, FirstName: m.FirstName, Infix: m.Infix, LastName: m.LastName,
			Email: m.Email, ElearningCode: m.ElearningCode,
		})
	} else {
		err = route.Enroller.Unenrol(ctx, m.PersonID, m.ElearningCode)
	}
	out := Outcome{Connection: route.Connection}
	now := p.clock.Now()
	switch {
	case err == nil:
		out.State = inboundstore.StateDone
	case source.IsPermanent(err):
		out.State = inboundstore.StateFailed
		var pe *source.PermanentError
		errors.As(err, &pe)
		out.Reason = fmt.Sprintf("LMS connection %q refused: %v", route.Connection, pe.Err)
	case now.Sub(m.ReceivedAt) >= p.policy.GiveUpAfter:
		out.State = inboundstore.StateFailed
		out.Reason = fmt.Sprintf("LMS connection %q still failing after %s, gave up: %v", route.Connection, p.policy.GiveUpAfter, err)
	default:
		out.State = inboundstore.StatePending
		out.Reason = fmt.Sprintf("LMS connection %q: %v", route.Connection, err)
		out.NextAttemptAt = now.Add(p.policy.Delay(m.Attempts + 1))
	}
	return out
}
