package delivery

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/sign"
)

// maxResponseBody is the most of a response body read; the rest is dropped
// with the connection.
const maxResponseBody = 64 << 10

// storeTimeout bounds the bookkeeping done after ctx ended (recording an
// attempt that was in flight, releasing claims), which runs on a detached context.
const storeTimeout = 30 * time.Second

// Signer computes the X-WebHook-Signature of a body; *sign.Signer is one.
type Signer interface {
	Sign(body []byte) string
}

var _ Signer = (*sign.Signer)(nil)

// TargetStore is the part of the outbox that holds a target's paused state.
type TargetStore interface {
	TargetState(ctx context.Context, target string) (outbox.TargetState, error)
	SetTargetState(ctx context.Context, s outbox.TargetState) error
}

// Store is the part of the outbox a Dispatcher uses; outbox.Store is one.
type Store interface {
	TargetStore
	Claim(ctx context.Context, target, owner string, limit int, now time.Time, lease time.Duration) ([]outbox.Item, error)
	Finish(ctx context.Context, f outbox.Finish) error
	Release(ctx context.Context, id int64, owner string, nextAttemptAt time.Time) error
	NextDue(ctx context.Context, target string) (time.Time, bool, error)
}

var _ Store = outbox.Store(nil)

// Target is one Coachview results URL and how to deliver to it.
type Target struct {
	// Name is the target's key in the configuration and the store.
	Name string
	// URL is Coachview's "URL Resultaten".
	URL string
	// Signer signs each body with the target's secret and hash.
	Signer Signer
	// Settings tune delivery; they must pass Validate.
	Settings Settings
}

// Options are a Dispatcher's collaborators. Every field is optional.
type Options struct {
	// Clock tells the time for schedules, leases and pauses (default: the wall clock).
	Clock clock.Clock
	// Jitter returns a number in [-1, 1] that moves each retry delay by up
	// to ±20%; it must be safe for concurrent use. Default: uniformly random.
	// Tests pass a constant 0 for exact schedules.
	Jitter func() float64
	// Logger receives one "delivery" line per attempt, at debug for the
	// transient failures while the target's circuit is open, and one line
	// per change of the circuit (default: slog.Default()).
	Logger *slog.Logger
	// HTTPClient replaces the default client (keep-alive transport with the
	// connect timeout and TLS verification). Redirects are never followed,
	// whatever its CheckRedirect says; the per-request timeout still applies.
	HTTPClient *http.Client
	// Owner identifies this dispatcher's leases (default: hostname, pid and a random suffix).
	Owner string
	// Version goes into the User-Agent "cvbridge/<version>" (default "dev").
	Version string
	// Observe, when set, is told the outcome of every attempt that sent a
	// request, once the store was asked to record it (metrics). It is called
	// from the sending workers, so it must be safe for concurrent use and quick.
	Observe func(Outcome)
	// Circuit, when set, is told each time the target's circuit opens
	// (open true) or closes (metrics). It is called from the sending
	// workers, so it must be safe for concurrent use and quick.
	Circuit func(target string, open bool)
}

// Dispatcher delivers one target's due results, concurrently, and applies
// Coachview's answers to the outbox. Create it with New.
type Dispatcher struct {
	target    Target
	set       Settings
	store     Store
	clock     clock.Clock
	jitter    func() float64
	log       *slog.Logger
	client    *http.Client
	owner     string
	userAgent string
	limiter   *rate.Limiter // nil when unlimited
	observe   func(Outcome) // nil when nobody observes
	onCircuit func(target string, open bool)
	circ      *circuit
	wake      chan struct{}
	step      sync.Mutex // one RunDue at a time
	// failing is the failure of Run's last step, nil once a step succeeds.
	failing atomic.Pointer[StepFailure]
}

// StepFailure is why Run's delivery steps fail, and since when: the store
// cannot be read or written (a full disk, a read-only outbox, a database
// gone), so nothing is delivered.
type StepFailure struct {
	Err   string
	Since time.Time
}

// Failing returns the failure of the last delivery step, if it failed.
func (d *Dispatcher) Failing() (StepFailure, bool) {
	if f := d.failing.Load(); f != nil {
		return *f, true
	}
	return StepFailure{}, false
}

// New returns a Dispatcher for target, recording outcomes in store.
func New(target Target, store Store, opts Options) (*Dispatcher, error) {
	if target.Name == "" {
		return nil, errors.New("delivery: the target has no name")
	}
	if err := checkURL(target.URL); err != nil {
		return nil, fmt.Errorf("delivery: target %s: url: %w", target.Name, err)
	}
	if target.Signer == nil {
		return nil, fmt.Errorf("delivery: target %s: no signer: the secret and hash must be configured", target.Name)
	}
	if err := target.Settings.Validate(); err != nil {
		return nil, fmt.Errorf("delivery: target %s: %w", target.Name, err)
	}
	if store == nil {
		return nil, fmt.Errorf("delivery: target %s: no store", target.Name)
	}
	d := &Dispatcher{
		target:    target,
		set:       target.Settings,
		store:     store,
		clock:     opts.Clock,
		jitter:    opts.Jitter,
		log:       opts.Logger,
		owner:     opts.Owner,
		userAgent: "cvbridge/" + orDefault(opts.Version, "dev"),
		observe:   opts.Observe,
		onCircuit: opts.Circuit,
		circ:      &circuit{after: target.Settings.Retry.CircuitAfter},
		wake:      make(chan struct{}, 1),
	}
	if d.clock == nil {
		d.clock = clock.System{}
	}
	if d.jitter == nil {
		d.jitter = func() float64 { return mathrand.Float64()*2 - 1 }
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.owner == "" {
		d.owner = defaultOwner()
	}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		c.CheckRedirect = noRedirects
		d.client = &c
	} else {
		d.client = newHTTPClient(d.set)
	}
	if r := d.set.RateLimit; r > 0 {
		d.limiter = rate.NewLimiter(rate.Limit(r), max(1, int(math.Ceil(r))))
	}
	return d, nil
}

func orDefault(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL with a host", raw)
	}
	return nil
}

func defaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// newHTTPClient is the default client: keep-alive connections (enough idle
// ones for every worker), the connect timeout on dial and TLS handshake,
// certificate verification on, redirects not followed.
func newHTTPClient(s Settings) *http.Client {
	dialer := &net.Dialer{Timeout: s.ConnectTimeout, KeepAlive: 30 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           dialer.DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   s.ConnectTimeout,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          max(100, s.Concurrency),
			MaxIdleConnsPerHost:   s.Concurrency,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: noRedirects,
	}
}

// Owner returns the id under which this dispatcher leases rows.
func (d *Dispatcher) Owner() string { return d.owner }

// Circuit returns the state of the target's circuit breaker.
func (d *Dispatcher) Circuit() CircuitState { return d.circ.state() }

// Wake makes Run look for due rows now (for example after new results were
// queued). It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends: a RunDue step, then a wait until Wake is
// called, the next row falls due, a paused target's or an open circuit's
// probe time comes or poll_interval passes. When ctx ends it claims nothing
// more, lets requests in flight finish within their timeout, releases what
// it claimed but did not send, and returns nil. Store errors are logged and
// retried after poll_interval.
func (d *Dispatcher) Run(ctx context.Context) error {
	defer d.client.CloseIdleConnections()
	failing := false // the last step failed (the store was unreachable, say)
	for {
		n, err := d.RunDue(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := d.set.PollInterval
		if err != nil {
			d.log.Error("delivery step failed", "target", d.target.Name, "error", err)
			since := d.clock.Now()
			if failing {
				since = d.failing.Load().Since
			}
			d.failing.Store(&StepFailure{Err: err.Error(), Since: since})
			failing = true
		} else {
			if failing {
				d.log.Info("delivery steps succeed again", "target", d.target.Name)
				d.failing.Store(nil)
				failing = false
			}
			wait = d.untilNext(ctx, n)
		}
		timer := d.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-d.wake:
			timer.Stop()
		case <-timer.Chan():
		}
	}
}

// untilNext is how long Run may wait after a step that made n attempts:
// until the next row falls due (while paused by a 403 or while the circuit
// is open, no sooner than the probe time), the rate limit has a token
// again, or poll_interval passes.
func (d *Dispatcher) untilNext(ctx context.Context, n int) time.Duration {
	now := d.clock.Now()
	wait := d.set.PollInterval
	st, err := d.store.TargetState(ctx, d.target.Name)
	if err != nil || PausedManually(st) {
		return wait
	}
	next, ok, err := d.store.NextDue(ctx, d.target.Name)
	if err != nil || !ok {
		return wait
	}
	if st.Paused && st.NextProbeAt.After(next) {
		next = st.NextProbeAt
	}
	if c := d.circ.state(); c.Open && c.NextProbe.After(next) {
		next = c.NextProbe
	}
	wait = min(wait, next.Sub(now))
	if d.limiter != nil {
		if tokens := d.limiter.TokensAt(now); tokens < 1 {
			wait = max(wait, time.Duration((1-tokens)/float64(d.limiter.Limit())*float64(time.Second)))
		}
	}
	if wait <= 0 && n == 0 {
		// Rows are due but none could be claimed (the store's clock
		// disagrees by a tick, or a probe found nothing): do not spin.
		wait = min(d.set.PollInterval, time.Second)
	}
	return max(wait, 0)
}

// RunDue is one delivery step at the clock's current time: it claims the
// rows due now (while the target is paused by a 403 or its circuit is open,
// one probe row once the probe time has come; while paused by the
// operator, none), sends them with up to concurrency requests in flight and
// within the rate limit, records each outcome, and returns how many
// attempts it made. A probe that closes the circuit is followed by the rest
// of the backlog in the same step. When ctx ends it stops sending and
// releases the rows it has not sent.
func (d *Dispatcher) RunDue(ctx context.Context) (int, error) {
	d.step.Lock()
	defer d.step.Unlock()
	now := d.clock.Now()
	st, err := d.store.TargetState(ctx, d.target.Name)
	if err != nil {
		return 0, fmt.Errorf("delivery: target %s: reading its paused state: %w", d.target.Name, err)
	}
	attempts := 0
	if st.Paused {
		if PausedManually(st) || now.Before(st.NextProbeAt) {
			return 0, nil
		}
		n, class, err := d.claimAndSend(ctx, now, 1, false)
		if err != nil || n == 0 {
			return n, err
		}
		if class == Forbidden || class == Transient {
			// The signature was refused again, or not tested at all: probe later.
			if class == Transient {
				next := st
				next.NextProbeAt = now.Add(d.set.Retry.PauseProbe)
				if _, err := d.replaceTargetState(ctx, st, next); err != nil {
					return n, fmt.Errorf("delivery: target %s: re-arming the pause probe: %w", d.target.Name, err)
				}
			}
			return n, nil
		}
		resumed, err := d.replaceTargetState(ctx, st, outbox.TargetState{Target: d.target.Name})
		if err != nil {
			return n, fmt.Errorf("delivery: target %s: resuming after a successful probe: %w", d.target.Name, err)
		}
		if !resumed {
			return n, nil // the operator paused or resumed it meanwhile: the next step follows that
		}
		d.log.Info("target resumed: Coachview accepted the signature again", "target", d.target.Name,
			"class", string(class), "paused_since", st.PausedAt)
		attempts = n
	}
	if c := d.circ.state(); c.Open {
		if now.Before(c.NextProbe) {
			return attempts, nil
		}
		n, class, err := d.claimAndSend(ctx, now, 1, false)
		attempts += n
		if err != nil || n == 0 || class == Forbidden || d.circ.isOpen() {
			return attempts, err // a 403 closed it, but paused the target
		}
		// The probe closed the circuit: the backlog drains at full speed.
	}
	n, _, err := d.claimAndSend(ctx, now, d.set.BatchSize(), true)
	return attempts + n, err
}

// claimAndSend claims up to limit due rows (fewer when the rate limit has
// fewer tokens) and sends them. With stream set, and no rate limit, it
// keeps claiming as long as whole batches come back, each claim made while
// the workers still send the batch before it, so that a backlog flows
// without the workers ever waiting for a claim. It returns the attempts
// made and, when it sent exactly one row, that row's class (for a probe).
func (d *Dispatcher) claimAndSend(ctx context.Context, now time.Time, limit int, stream bool) (int, Class, error) {
	if d.limiter != nil {
		limit = min(limit, int(d.limiter.TokensAt(now)))
		// The tokens of one claim are spent as its rows are sent, so a
		// rate-limited target claims once per step.
		stream = false
	}
	if limit <= 0 {
		return 0, "", nil
	}
	items, err := d.claim(ctx, now, limit)
	if err != nil || len(items) == 0 {
		return 0, "", err
	}
	var more func() ([]outbox.Item, error)
	if stream && len(items) == limit {
		more = func() ([]outbox.Item, error) { return d.claim(ctx, d.clock.Now(), limit) }
	}
	return d.sendAll(ctx, items, more)
}

// pausedMeanwhile reports whether the target is paused now, as the step
// streaming a backlog asks before each further claim: the step read the
// state once as it began, and a backlog takes a while to send. A state
// that cannot be read does not stop the step (the claim will tell).
func (d *Dispatcher) pausedMeanwhile(ctx context.Context) bool {
	st, err := d.store.TargetState(ctx, d.target.Name)
	return err == nil && st.Paused
}

// claim leases up to limit rows due at now.
func (d *Dispatcher) claim(ctx context.Context, now time.Time, limit int) ([]outbox.Item, error) {
	items, err := d.store.Claim(ctx, d.target.Name, d.owner, limit, now, d.set.LeaseDuration())
	if err != nil {
		return nil, fmt.Errorf("delivery: target %s: claiming due results: %w", d.target.Name, err)
	}
	return items, nil
}

// replaceTargetState writes next as the target's state if the state is
// still read, as read before a probe that may have taken up to timeout,
// and tells whether it did. A pause or resume the operator gave in the
// meantime is kept, not overwritten with what the probe's outcome implies.
// It runs on a detached context, so a probe's outcome is applied even
// when ctx ended during the request.
func (d *Dispatcher) replaceTargetState(ctx context.Context, read, next outbox.TargetState) (bool, error) {
	sctx, cancel := detached(ctx)
	defer cancel()
	current, err := d.store.TargetState(sctx, d.target.Name)
	if err != nil {
		return false, err
	}
	if !sameTargetState(current, read) {
		d.log.Info("the target's pause changed during the probe; keeping the change", "target", d.target.Name,
			"paused", current.Paused, "reason", current.Reason)
		return false, nil
	}
	return true, d.store.SetTargetState(sctx, next)
}

// sameTargetState tells whether a and b are the same stored state.
func sameTargetState(a, b outbox.TargetState) bool {
	return a.Paused == b.Paused && a.Reason == b.Reason && a.PausedAt.Equal(b.PausedAt) && a.NextProbeAt.Equal(b.NextProbeAt)
}

// detached returns a context for bookkeeping that must happen even after
// ctx ended.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
}

// release hands a claimed, unsent row back as due now.
func (d *Dispatcher) release(ctx context.Context, it outbox.Item) error {
	sctx, cancel := detached(ctx)
	defer cancel()
	err := d.store.Release(sctx, it.ID, d.owner, d.clock.Now())
	if errors.Is(err, outbox.ErrLeaseLost) {
		return nil // someone else has it now: nothing of ours to hand back
	}
	if err != nil {
		return fmt.Errorf("delivery: target %s: releasing result %d: %w", d.target.Name, it.ID, err)
	}
	return nil
}

// pauseForbidden pauses the target after a 403 with a probe due after
// pause_probe. A pause the operator set stays manual; a pause already in
// place keeps its start time.
func (d *Dispatcher) pauseForbidden(ctx context.Context) error {
	sctx, cancel := detached(ctx)
	defer cancel()
	now := d.clock.Now()
	st, err := d.store.TargetState(sctx, d.target.Name)
	if err != nil {
		return fmt.Errorf("delivery: target %s: reading its state to pause it after a 403: %w", d.target.Name, err)
	}
	if st.Paused && PausedManually(st) {
		return nil
	}
	if !st.Paused {
		st.PausedAt = now
	}
	st.Target, st.Paused, st.Reason = d.target.Name, true, ForbiddenReason
	st.NextProbeAt = now.Add(d.set.Retry.PauseProbe)
	if err := d.store.SetTargetState(sctx, st); err != nil {
		return fmt.Errorf("delivery: target %s: pausing it after a 403: %w", d.target.Name, err)
	}
	d.log.Error("target paused: "+ForbiddenReason, "target", d.target.Name, "next_probe", st.NextProbeAt)
	return nil
}

// recordFunc hands a Finish to the store and returns a function that waits
// until it is recorded and returns the store's answer.
type recordFunc func(ctx context.Context, f outbox.Finish) (wait func() error)

// finishNow records f with one Finish call before it returns.
func (d *Dispatcher) finishNow(ctx context.Context, f outbox.Finish) func() error {
	err := d.store.Finish(ctx, f)
	return func() error { return err }
}

// deliver sends one row (the open circuit's probe when probe is set),
// applies its outcome to the circuit and hands it to record. It returns the
// outcome's class at once and a function that waits until the outcome is
// recorded, logs and observes it, and returns a store failure (a lost lease
// is only logged).
func (d *Dispatcher) deliver(ctx context.Context, it outbox.Item, probe bool, record recordFunc) (Class, func() (Class, error)) {
	at := d.clock.Now()
	res := d.post(ctx, it.Body)
	class := Classify(res.status, res.err)
	now := d.clock.Now()
	var reason string // the circuit keeps the reason of a transient outcome only
	if class == Transient {
		reason = d.set.circuitReason(res)
	}
	event, circ := d.circ.observe(class, reason, probe, now, func(failed int) time.Duration {
		return d.set.probeDelay(failed, res, d.jitter())
	})
	d.circuitChanged(ctx, event, circ, class, res)
	// While the circuit is open its own lines tell of the outage, not one per result.
	quiet := class == Transient && circ.Open
	dec := d.set.decide(it, class, res, now, d.jitter())
	attempt := outbox.Attempt{
		ResultID: it.ID, At: at, Status: res.status, Class: string(class),
		Response: res.excerpt, Duration: res.duration,
	}
	if res.err != nil {
		attempt.Error = res.err.Error()
	}
	sctx, cancel := detached(ctx)
	defer cancel()
	wait := record(sctx, outbox.Finish{
		ID: it.ID, Owner: d.owner, Attempt: attempt,
		State: dec.state, NextAttemptAt: dec.next, Tries: dec.tries,
		Streak: dec.streak, StreakSince: dec.since, LastClass: string(dec.lastClass), LastError: dec.lastError,
		OutcomeUnknown: outcomeUnknown(res),
	})
	return class, func() (Class, error) {
		err := wait()
		d.logOutcome(ctx, it, class, res, dec, quiet, err)
		if d.observe != nil {
			d.observe(Outcome{
				Target: d.target.Name, Class: class, State: dec.state, Attempt: it.Tries + 1,
				Status: res.status, Duration: res.duration,
			})
		}
		switch {
		case errors.Is(err, outbox.ErrLeaseLost):
			return class, nil
		case err != nil:
			return class, fmt.Errorf("delivery: target %s: recording the outcome of result %d (%s): %w", d.target.Name, it.ID, class, err)
		}
		return class, nil
	}
}

// logOutcome writes an attempt's "delivery" line; quiet puts a retried one
// at debug level.
func (d *Dispatcher) logOutcome(ctx context.Context, it outbox.Item, class Class, res response, dec decision, quiet bool, finishErr error) {
	attrs := []slog.Attr{
		slog.String("target", d.target.Name),
		slog.Int64("result", it.ID),
		slog.String("elearningcode", it.ElearningCode),
		slog.String("person", it.PersonID),
		slog.Int("status", res.status),
		slog.String("class", string(class)),
		slog.Int("attempt", it.Tries+1),
		slog.Duration("duration", res.duration),
	}
	if finishErr == nil {
		attrs = append(attrs, slog.String("state", string(dec.state)))
	} else {
		// The outcome is not in the store: the row is still sending there,
		// and is sent again when its lease ends.
		attrs = append(attrs, slog.String("state", "unrecorded"), slog.String("outcome", string(dec.state)))
	}
	level := slog.LevelInfo
	switch dec.state {
	case outbox.StatePending:
		level = slog.LevelWarn
		if quiet {
			level = slog.LevelDebug
		}
		attrs = append(attrs, slog.Time("next", dec.next))
	case outbox.StateFailed:
		level = slog.LevelError
	case outbox.StateProbablyDelivered:
		level = slog.LevelWarn
	}
	if res.err != nil {
		// Network errors only: Coachview's text may echo personal data and
		// stays in the store, where the operator reads it.
		attrs = append(attrs, slog.String("error", res.err.Error()))
	}
	if finishErr != nil {
		level = slog.LevelError
		attrs = append(attrs, slog.String("store_error", finishErr.Error()))
	}
	d.log.LogAttrs(ctx, level, "delivery", attrs...)
}

// circuitChanged logs a change of the circuit, one line each, and tells
// Options.Circuit of an opening or a closing.
func (d *Dispatcher) circuitChanged(ctx context.Context, event circuitEvent, st CircuitState, class Class, res response) {
	switch event {
	case circuitOpened:
		d.log.LogAttrs(ctx, slog.LevelWarn, "target circuit opened: Coachview looks unreachable; one probe at a time until it answers",
			slog.String("target", d.target.Name), slog.String("reason", st.Reason), slog.Int("failures", st.Failures),
			slog.Time("next_probe", st.NextProbe))
	case circuitProbeFailed:
		d.log.LogAttrs(ctx, slog.LevelInfo, "target circuit stays open: the probe failed",
			slog.String("target", d.target.Name), slog.String("reason", st.Reason), slog.Int("probes", st.Probes),
			slog.Time("next_probe", st.NextProbe))
	case circuitClosed:
		d.log.LogAttrs(ctx, slog.LevelInfo, "target circuit closed: Coachview answers again",
			slog.String("target", d.target.Name), slog.Int("status", res.status), slog.String("class", string(class)),
			slog.Duration("open_for", d.clock.Now().Sub(st.OpenedAt).Round(time.Second)), slog.Int("probes", st.Probes))
	default:
		return
	}
	if d.onCircuit != nil && event != circuitProbeFailed {
		d.onCircuit(d.target.Name, event == circuitOpened)
	}
}

// post sends body once, bounded by the timeout even after ctx ends (a request
// in flight is allowed to finish).
func (d *Dispatcher) post(ctx context.Context, body []byte) response {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.set.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, d.target.URL, bytes.NewReader(body))
	if err != nil {
		return response{err: err}
	}
	req.Header.Set("Content-Type", d.set.ContentType)
	req.Header.Set(sign.Header, d.target.Signer.Sign(body))
	req.Header.Set("User-Agent", d.userAgent)
	var written atomic.Bool // the whole request went out: Coachview may have it
	req = req.WithContext(httptrace.WithClientTrace(rctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) { written.Store(info.Err == nil) },
	}))
	start := time.Now()
	resp, err := d.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL may carry the plugin key: keep it out of logs and the store
		}
		return response{err: err, timedOut: errors.Is(rctx.Err(), context.DeadlineExceeded), written: written.Load(),
			duration: time.Since(start)}
	}
	defer func() { _ = resp.Body.Close() }() // read only
	// A read error after the status line changes nothing: the status decides.
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	res := response{
		status:   resp.StatusCode,
		text:     clip(strings.Join(strings.Fields(strings.ToValidUTF8(string(data), "\uFFFD")), " "), outbox.MaxResponseExcerpt),
		excerpt:  clip(strings.ToValidUTF8(string(data), "\uFFFD"), outbox.MaxResponseExcerpt),
		location: resp.Header.Get("Location"),
		duration: time.Since(start),
	}
	res.retryAfter, res.hasRetry = parseRetryAfter(resp.Header.Get("Retry-After"), d.clock.Now())
	return res
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// PausedManually reports whether st is a pause the operator set (no probes
// until resumed) rather than one a 403 set (probed every pause_probe).
// Manual pauses are stored without a probe time.
func PausedManually(st outbox.TargetState) bool {
	return st.Paused && st.NextProbeAt.IsZero()
}

// Pause pauses target by the operator's hand, for `cvbridge target pause`:
// nothing is sent, not even probes, until Resume. reason may be empty.
func Pause(ctx context.Context, store TargetStore, target, reason string, now time.Time) error {
	msg := "paused by the operator"
	if reason = strings.TrimSpace(reason); reason != "" {
		msg += ": " + reason
	}
	if err := store.SetTargetState(ctx, outbox.TargetState{Target: target, Paused: true, Reason: msg, PausedAt: now}); err != nil {
		return fmt.Errorf("delivery: pausing target %s: %w", target, err)
	}
	return nil
}

// Resume ends any pause of target, manual or after a 403, for `cvbridge
// target resume`. A running dispatcher notices within its poll_interval.
func Resume(ctx context.Context, store TargetStore, target string) error {
	if err := store.SetTargetState(ctx, outbox.TargetState{Target: target}); err != nil {
		return fmt.Errorf("delivery: resuming target %s: %w", target, err)
	}
	return nil
}
