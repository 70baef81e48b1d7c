// Package admin owns the admin listener's HTTP handler: /healthz (the
// process is alive), /readyz (the store answers, no target is paused or
// has its circuit open, no LMS connection keeps failing), /circuits (each
// target's circuit breaker, as JSON, for `cvbridge target status`),
// /metrics (served from the handler it is given) and a server-rendered HTML
// dashboard of targets, LMS connections (with the input their sources could
// not use), the outbox, each target's last 24 hours as small charts, recent
// failures and parked results, with Retry and Cancel buttons on results and
// Pause and Resume buttons on targets.
//
// The dashboard needs no JavaScript and loads no external assets. Its
// buttons are POST forms protected against cross-site request forgery (a
// signed double-submit token and Go's cross-origin check), and it may ask for
// a password (HTTP basic auth against a bcrypt hash). It shows results by
// the person's external id only, never by name.
//
// The package owns no storage: it reads and changes the outbox only through
// the Store it is given.
package admin

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/delivery"
	"github.com/cvbridge/cvbridge/bridge/intake"
	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// Store is the part of the outbox the admin handler reads and changes;
// outbox.Store is one.
type Store interface {
	Counts(ctx context.Context, target string) (map[outbox.State]int, error)
	List(ctx context.Context, f outbox.Filter) ([]outbox.Item, error)
	Get(ctx context.Context, id int64) (outbox.Item, []outbox.Attempt, error)
	TargetState(ctx context.Context, target string) (outbox.TargetState, error)
	SetTargetState(ctx context.Context, s outbox.TargetState) error
	Hours(ctx context.Context, target string, since, now time.Time) ([]outbox.Hour, error)
	OldestPending(ctx context.Context, target string) (time.Time, bool, error)
	Retry(ctx context.Context, id int64, now time.Time) error
	Cancel(ctx context.Context, id int64, now time.Time) error
	Confirm(ctx context.Context, id int64, now time.Time) error
}

var _ Store = outbox.Store(nil)

// Enrolment is one enrolment request Coachview sent to the bridge, as the
// dashboard shows it.
type Enrolment struct {
	At            time.Time
	Source        string // where it came from: "link" (the enrolment link) or "webhook:<subscription>"
	Action        string // for example "enrol" or "unenrol"
	PersonID      string // Coachview's external id of the person; never a name
	ElearningCode string
	Verdict       string // what became of it, for example "applied" or "refused"
	Error         string // why it was refused or failed, if it was
}

// Enrolments lists recent inbound enrolments, newest first. The inbound
// enrolment code implements it; without one the dashboard says the feature
// is not enabled.
type Enrolments interface {
	RecentEnrolments(ctx context.Context, limit int) ([]Enrolment, error)
}

// Options are the handler's collaborators. Store and Targets are required.
type Options struct {
	// Store is the outbox.
	Store Store
	// Targets returns the configured target names, in display order. It is
	// called per request, so a reloaded configuration shows at once.
	Targets func() []string
	// Connections returns each LMS connection's status (intake.Runner's
	// Statuses); nil shows none.
	Connections func() []intake.Status
	// Circuit returns a target's circuit breaker (its dispatcher's
	// Circuit), false for a target this process does not deliver to; nil
	// reports every circuit closed.
	Circuit func(target string) (delivery.CircuitState, bool)
	// Failing returns why a target's delivery steps fail (its dispatcher's
	// Failing), false while they succeed; nil reports none failing.
	Failing func(target string) (delivery.StepFailure, bool)
	// Enrolments feeds the inbound enrolments section; nil says it is not enabled.
	Enrolments Enrolments
	// Metrics serves /metrics (metrics.Metrics' Handler); nil answers 404.
	Metrics http.Handler
	// Requeued, when set, is called with a result's target after the
	// operator retried it, and with a target the operator resumed, to
	// wake that target's dispatcher.
	Requeued func(target string)
	// Clock tells the time for retries, cancels and ages (default: the wall clock).
	Clock clock.Clock
	// Location is the time zone the dashboard shows times in: the
	// configuration's, in which completion dates are sent (default: the
	// server's).
	Location *time.Location
	// User and PasswordHash (a bcrypt hash, Settings.PasswordHash) protect
	// the dashboard and its buttons with HTTP basic auth; with no hash the
	// dashboard asks for no password. /healthz, /readyz, /circuits and
	// /metrics never do.
	User         string
	PasswordHash []byte
	// Logger receives one line per operator action and refused login
	// (default: slog.Default()).
	Logger *slog.Logger
	// Version is shown in the dashboard's header.
	Version string
}

// Handler is the admin listener's http.Handler. Create it with New.
type Handler struct {
	opts Options
	log  *slog.Logger
	auth *authenticator // nil when no password is set
	csrf csrfKey
	mux  *http.ServeMux
}

var _ http.Handler = (*Handler)(nil)

// maxFormBytes bounds a POSTed form: a token and nothing else.
const maxFormBytes = 4 << 10

// storeTimeout bounds the store queries of one request.
const storeTimeout = 10 * time.Second

// New returns the admin handler.
func New(opts Options) (*Handler, error) {
	if opts.Store == nil {
		return nil, errors.New("admin: no store")
	}
	if opts.Targets == nil {
		return nil, errors.New("admin: no target list")
	}
	if opts.Connections == nil {
		opts.Connections = func() []intake.Status { return nil }
	}
	if opts.Circuit == nil {
		opts.Circuit = func(string) (delivery.CircuitState, bool) { return delivery.CircuitState{}, false }
	}
	if opts.Clock == nil {
		opts.Clock = clock.System{}
	}
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.User == "" {
		opts.User = DefaultUser
	}
	h := &Handler{opts: opts, log: opts.Logger, mux: http.NewServeMux()}
	if len(opts.PasswordHash) > 0 {
		if err := checkHash(opts.PasswordHash); err != nil {
			return nil, fmt.Errorf("admin: password hash: %w", err)
		}
		h.auth = newAuthenticator(opts.User, opts.PasswordHash, opts.Logger, opts.Clock)
	}
	_, _ = rand.Read(h.csrf[:]) // crypto/rand.Read never fails
	cop := http.NewCrossOriginProtection()
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.HandleFunc("GET /readyz", h.readyz)
	h.mux.HandleFunc("GET /circuits", h.circuits)
	if opts.Metrics != nil {
		h.mux.Handle("GET /metrics", opts.Metrics)
	}
	h.mux.Handle("GET /{$}", h.protect(http.HandlerFunc(h.dashboard)))
	h.mux.Handle("POST /results/{id}/{action}", h.protect(cop.Handler(http.HandlerFunc(h.action))))
	h.mux.Handle("POST /targets/{name}/{action}", h.protect(cop.Handler(http.HandlerFunc(h.targetAction))))
	return h, nil
}

// ServeHTTP sets the security headers and routes the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

// protect asks for the password, when one is set.
func (h *Handler) protect(next http.Handler) http.Handler {
	if h.auth == nil {
		return next
	}
	return h.auth.wrap(next)
}

// healthz answers 200 while the process serves HTTP at all.
func (h *Handler) healthz(w http.ResponseWriter, _ *http.Request) {
	text(w, http.StatusOK, "ok\n")
}

// unreadyFailedPolls is how many polls of an LMS connection in a row must
// fail before /readyz says so: one failed poll may be a blip the next poll
// does not see.
const unreadyFailedPolls = 2

// readyz answers 200 when the store answers, no target is paused, no
// target's delivery steps fail (a store that answers reads may refuse
// writes), no target's circuit is open and no LMS connection's last
// unreadyFailedPolls polls failed, else 503 with every reason, one per
// line: each means results are not being delivered, or not collected.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	var reasons []string
	targets := h.opts.Targets()
	if len(targets) == 0 {
		if _, err := h.opts.Store.List(ctx, outbox.Filter{Limit: 1}); err != nil {
			reasons = append(reasons, "the outbox store does not answer: "+err.Error())
		}
	}
	for _, t := range targets {
		st, err := h.opts.Store.TargetState(ctx, t)
		if err != nil {
			reasons = append(reasons, "the outbox store does not answer: "+err.Error())
			break
		}
		if st.Paused {
			reasons = append(reasons, fmt.Sprintf("target %s is paused: %s", t, st.Reason))
		}
	}
	for _, t := range targets {
		if h.opts.Failing == nil {
			break
		}
		if f, ok := h.opts.Failing(t); ok {
			reasons = append(reasons, fmt.Sprintf("target %s: delivery steps fail since %s (the outbox cannot be read or written: disk full, read-only, database gone?): %s",
				t, f.Since.Format(time.RFC3339), f.Err))
		}
	}
	for _, t := range targets {
		if c, ok := h.opts.Circuit(t); ok && c.Open {
			reasons = append(reasons, fmt.Sprintf("target %s: circuit open since %s after %d transient failures in a row (%s); next probe at %s",
				t, c.OpenedAt.Format(time.RFC3339), c.Failures, c.Reason, c.NextProbe.Format(time.RFC3339)))
		}
	}
	for _, c := range h.opts.Connections() {
		if c.Failures >= unreadyFailedPolls {
			reasons = append(reasons, fmt.Sprintf("connection %s: its last %d polls failed (since %s): %s",
				c.Name, c.Failures, c.FailingSince.Format(time.RFC3339), c.LastError))
		}
	}
	if len(reasons) > 0 {
		text(w, http.StatusServiceUnavailable, "not ready\n"+strings.Join(reasons, "\n")+"\n")
		return
	}
	text(w, http.StatusOK, "ready\n")
}

// circuits answers each configured target's circuit breaker as a JSON
// object keyed by target name; a target this process does not deliver to
// is left out.
func (h *Handler) circuits(w http.ResponseWriter, _ *http.Request) {
	out := map[string]delivery.CircuitState{}
	for _, t := range h.opts.Targets() {
		if c, ok := h.opts.Circuit(t); ok {
			out[t] = c
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out) // a write error means the client went away
}

// actions are the buttons on a result, each with the store call it makes
// and the word for what it did.
var actions = map[string]struct {
	apply func(s Store, ctx context.Context, id int64, now time.Time) error
	done  string
}{
	"retry":   {Store.Retry, "retried"},
	"cancel":  {Store.Cancel, "cancelled"},
	"confirm": {Store.Confirm, "confirmed"},
}

// action applies a Retry, Cancel or Confirm button to one result.
func (h *Handler) action(w http.ResponseWriter, r *http.Request) {
	action := r.PathValue("action")
	act, ok := actions[action]
	if !ok {
		http.NotFound(w, r)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		http.NotFound(w, r)
		return
	}
	if !h.validForm(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	now := h.opts.Clock.Now()
	item, _, err := h.opts.Store.Get(ctx, id)
	if err == nil {
		err = act.apply(h.opts.Store, ctx, id, now)
	}
	switch {
	case errors.Is(err, outbox.ErrNotFound):
		h.message(w, http.StatusNotFound, fmt.Sprintf("Result #%d does not exist (it may have been purged).", id))
		return
	case errors.Is(err, outbox.ErrState):
		h.message(w, http.StatusConflict, fmt.Sprintf("Result #%d was not changed: %v.", id, err))
		return
	case err != nil:
		h.log.Error("admin: "+action+" failed", "result", id, "error", err)
		h.message(w, http.StatusInternalServerError, fmt.Sprintf("Result #%d could not be changed: %v.", id, err))
		return
	}
	done := act.done
	h.log.Info("admin: result "+done+" by the operator", "result", id, "target", item.Target, "remote", r.RemoteAddr)
	if action == "retry" && h.opts.Requeued != nil {
		h.opts.Requeued(item.Target)
	}
	http.Redirect(w, r, fmt.Sprintf("/?done=%s&result=%d", done, id), http.StatusSeeOther)
}

// validForm reads a button's POSTed form, capped at maxFormBytes, and
// checks its CSRF token; when either fails it answers the request and
// returns false.
func (h *Handler) validForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		h.message(w, http.StatusBadRequest, "The form could not be read: "+err.Error())
		return false
	}
	if !h.csrf.valid(r) {
		h.log.Warn("admin: refused a form without a valid CSRF token", "path", r.URL.Path, "remote", r.RemoteAddr)
		h.message(w, http.StatusForbidden, "The form's security token is missing or stale. Reload the dashboard and press the button again.")
		return false
	}
	return true
}

// pauseReason is what a pause from the dashboard records.
const pauseReason = "from the dashboard"

// targetAction applies a Pause or Resume button to one configured target.
// A pause is the operator's (delivery.Pause: no probes until resumed); a
// resume ends any pause, the operator's or a 403's, as `cvbridge target
// resume` does, and wakes the target's dispatcher.
func (h *Handler) targetAction(w http.ResponseWriter, r *http.Request) {
	action, name := r.PathValue("action"), r.PathValue("name")
	if !slices.Contains(h.opts.Targets(), name) || (action != "pause" && action != "resume") {
		http.NotFound(w, r)
		return
	}
	if !h.validForm(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeTimeout)
	defer cancel()
	var err error
	done := "paused"
	if action == "pause" {
		err = delivery.Pause(ctx, h.opts.Store, name, pauseReason, h.opts.Clock.Now())
	} else {
		done = "resumed"
		err = delivery.Resume(ctx, h.opts.Store, name)
	}
	if err != nil {
		h.log.Error("admin: "+action+" failed", "target", name, "error", err)
		h.message(w, http.StatusInternalServerError, fmt.Sprintf("Target %s could not be changed: %v.", name, err))
		return
	}
	h.log.Info("admin: target "+done+" by the operator", "target", name, "remote", r.RemoteAddr)
	if action == "resume" && h.opts.Requeued != nil {
		h.opts.Requeued(name)
	}
	http.Redirect(w, r, "/?"+url.Values{"done": {done}, "target": {name}}.Encode(), http.StatusSeeOther)
}

// text writes a plain-text answer.
func text(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body)) // a write error means the client went away
}
