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
func (d *Daemon) openInbound(cfg *config.Config, sources map[string]source.Built) error {
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
	wcfg := inbound.WorkerConfig{Owner: d.owner}
	if pd, ok := d.store.(inboundstore.PersonalData); ok && cfg.Inbound.Retention() == 0 {
		wcfg.EraseAtOnce = pd
	}
	if d.worker, err = inbound.NewWorker(store, proc, wcfg); err != nil {
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

// newRouter routes e-learning codes to the connections whose sources were
// declared able to enrol, by the codes each LMS file lists (enrol_codes);
// the rest go to the connection with enrol_default, or to the only
// enrolling connection.
func newRouter(cfg *config.Config, sources map[string]source.Built) (*inbound.CodeRouter, error) {
	var rules []inbound.CodeRule
	def := ""
	for _, conn := range cfg.Connections {
		e := sources[conn.Name].Enroller()
		if e == nil {
			if err := CheckEnrol(conn, sources[conn.Name].Caps); err != nil {
				return nil, err
			}
			continue
		}
		rules = append(rules, inbound.CodeRule{Connection: conn.Name, Patterns: conn.EnrolCodes, Enroller: e})
		if conn.EnrolDefault {
			def = conn.Name
		}
	}
	if len(rules) == 0 {
		return nil, errors.New("no LMS connection can enrol: configure one whose adapter has an enroller (e.g. moodle with url and token_file)")
	}
	if def == "" && len(rules) == 1 {
		def = rules[0].Connection
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
			At: m.ReceivedAt, Source: m.Source, Action: string(m.Action), PersonID: m.PersonID,
			ElearningCode: m.ElearningCode, Verdict: string(m.State), Error: m.LastError,
		})
	}
	return out, nil
}

// CheckEnrol refuses enrol_codes and enrol_default on a connection whose
// adapter or settings cannot enrol (caps, as its adapter declared them),
// naming the LMS file and the key's line.
func CheckEnrol(conn *config.Connection, caps source.Capabilities) error {
	if caps.Enrol {
		return nil
	}
	const why = "connection %q cannot enrol: its adapter or settings offer no enroller (moodle: set url and token_file; csvdrop: enrol_export; scorm: enrol_sql)"
	switch {
	case len(conn.EnrolCodes) > 0:
		return conn.Errorf("enrol_codes", why, conn.Name)
	case conn.EnrolDefault:
		return conn.Errorf("enrol_default", why, conn.Name)
	}
	return nil
}

// Owners records what the connections built so far own (source.Owner), to
// refuse a second connection that owns the same, such as a copy of an LMS
// file left beside it.
type Owners map[string]*config.Connection

// Claim adds what built owns for conn, or names the connection that owns
// it already.
func (o Owners) Claim(conn *config.Connection, built source.Built) error {
	owner, ok := built.Source.(source.Owner)
	if !ok {
		return nil
	}
	for _, what := range owner.Owns() {
		if other := o[what]; other != nil && other != conn {
			return conn.Errorf("settings", "%s is also used by connection %q (%s): two connections would each take part of its input, under each other's settings; remove one (a copy of an LMS file is read as a connection too)",
				what, other.Name, other.File)
		}
		o[what] = conn
	}
	return nil
}
