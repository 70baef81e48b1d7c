package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/cvbridge/cvbridge/bridge/admin"
	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/inbound"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/inbound/link"
	"github.com/cvbridge/cvbridge/bridge/inbound/oauth"
	"github.com/cvbridge/cvbridge/bridge/inbound/webhook"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// openInbound assembles enrolments from Coachview: the router from
// e-learning codes to the LMS connections that enrol them, the worker that
// carries stored messages out, and the public handlers (OAuth, enrolment
// link, webhooks).
func (d *Daemon) openInbound(cfg *config.Config, sources map[string]source.Source) error {
	store, ok := d.store.(inboundstore.Store)
	if !ok {
		return fmt.Errorf("the %s outbox keeps no inbound enrolments", cfg.Storage.Driver)
	}
	router, err := newRouter(cfg, sources)
	if err != nil {
		return fmt.Errorf("%s: inbound: %w", cfg.File, err)
	}
	proc := inbound.NewProcessor(store, router, inbound.WithClock(d.clock), inbound.WithLogger(d.log),
		inbound.WithRetryPolicy(cfg.Inbound.RetryPolicy))
	if d.worker, err = inbound.NewWorker(store, proc, inbound.WorkerConfig{Owner: d.owner}); err != nil {
		return err
	}
	mux := http.NewServeMux()
	if len(cfg.Inbound.OAuth.Clients) > 0 {
		srv, err := oauth.New(cfg.Inbound.OAuth, store, d.clock, d.log)
		if err != nil {
			return fmt.Errorf("%s: inbound.oauth: %w", cfg.File, err)
		}
		mux.Handle("/oauth/authorize", srv.AuthorizeHandler())
		mux.Handle("/oauth/token", srv.TokenHandler())
		lc := cfg.Inbound.EnrolmentLink.Config
		lc.Owner = d.owner
		h, err := link.New(lc, store, proc, srv, d.clock, d.log)
		if err != nil {
			return fmt.Errorf("%s: inbound.enrolment_link: %w", cfg.File, err)
		}
		mux.Handle(cfg.Inbound.EnrolmentLink.Path, h)
	}
	for i, wc := range cfg.Inbound.Webhooks {
		r, err := webhook.New(wc, store, d.worker.Wake, d.log)
		if err != nil {
			return fmt.Errorf("%s: inbound.webhooks[%d]: %w", cfg.File, i, err)
		}
		mux.Handle(r.Path(), r)
	}
	d.public = countVerdicts(mux, d.metrics.Inbound)
	d.enrolments = recentEnrolments{store}
	return nil
}

// countVerdicts reports each answer of h to count, as a verdict from its
// status: done (200), accepted (202, to be retried), unauthorized
// (401/403), invalid (other 4xx), error (5xx).
func countVerdicts(h http.Handler, count func(verdict string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		count(verdict(sw.status))
	})
}

func verdict(status int) string {
	switch {
	case status == http.StatusAccepted:
		return "accepted"
	case status < 300:
		return "done"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "unauthorized"
	case status < 500:
		return "invalid"
	default:
		return "error"
	}
}

// statusWriter remembers the status an answer was given.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// newRouter routes e-learning codes to the connections whose sources can
// enrol: by the configured routes, and the rest to the default connection
// (the only enrolling one when none is named).
func newRouter(cfg *config.Config, sources map[string]source.Source) (*inbound.CodeRouter, error) {
	enrollers := map[string]source.Enroller{}
	var names []string
	for _, conn := range cfg.Connections {
		if e, ok := sources[conn.Name].(source.Enroller); ok {
			enrollers[conn.Name] = e
			names = append(names, conn.Name)
		}
	}
	def := cfg.Inbound.DefaultConnection
	if def == "" && len(names) == 1 {
		def = names[0]
	}
	var rules []inbound.CodeRule
	seen := map[string]bool{}
	for _, r := range cfg.Inbound.Routes {
		e, ok := enrollers[r.Connection]
		if !ok {
			return nil, fmt.Errorf("routes: connection %q cannot enrol (its adapter or settings offer no enroller)", r.Connection)
		}
		rules = append(rules, inbound.CodeRule{Connection: r.Connection, Patterns: r.Codes, Enroller: e})
		seen[r.Connection] = true
	}
	if def != "" && !seen[def] {
		e, ok := enrollers[def]
		if !ok {
			return nil, fmt.Errorf("default_connection %q cannot enrol (its adapter or settings offer no enroller)", def)
		}
		rules = append(rules, inbound.CodeRule{Connection: def, Enroller: e})
	}
	if len(rules) == 0 {
		return nil, errors.New("no LMS connection can enrol: configure one with an enroller (e.g. moodle with url and token), and routes or default_connection")
	}
	return inbound.NewCodeRouter(rules, def)
}

// recentEnrolments feeds the dashboard from the inbound store.
type recentEnrolments struct{ store inboundstore.MessageStore }

func (r recentEnrolments) RecentEnrolments(ctx context.Context, limit int) ([]admin.Enrolment, error) {
	msgs, err := r.store.ListMessages(ctx, inboundstore.MessageFilter{Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]admin.Enrolment, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, admin.Enrolment{
			At: m.ReceivedAt, Connection: m.Source, Action: string(m.Action), PersonID: m.PersonID,
			ElearningCode: m.ElearningCode, Verdict: string(m.State), Error: m.LastError,
		})
	}
	return out, nil
}
