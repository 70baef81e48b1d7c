// Package link serves Coachview's enrolment link: POST with a JSON body
// enrols a person, DELETE (or a body-less POST) with the PersoonExterneId
// and Elearningcode query parameters unenrols. Each request is stored
// durably and then carried out at once within a short deadline: 200 when the
// LMS did it, 422 with a message Coachview's user can act on when the LMS
// refused, 202 when the LMS could not be reached and the bridge will retry.
// Requests must be authorised (package oauth's bearer tokens).
//
// The last request for a (person, e-learning code) pair decides (see
// inboundstore's ordering rule): a repeated request whose outcome is still
// the pair's state is answered 200 from it without being carried out again;
// a repeat after a later request changed the pair is carried out again; a
// request for a pair whose earlier request is being carried out waits for it
// (202).
package link

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
)

// Config tunes the enrolment endpoint. Zero fields take their defaults.
type Config struct {
	// MaxBody caps the request body in bytes (default 64 KiB).
	MaxBody int64 `yaml:"max_body"`
	// SyncTimeout bounds carrying a request out before answering (default
	// 15s); a request not done by then is answered 202 and retried.
	SyncTimeout time.Duration `yaml:"sync_timeout"`
	// Owner names this daemon in leases (the worker's owner will do). Each
	// request leases its message under Owner plus a number of its own, so
	// neither the worker nor a repeat of the request carries out a message
	// a request of this daemon is carrying out.
	Owner string `yaml:"-"`
}

// Authorizer lets an authorised request through: it returns true, or
// answers the request itself (401) and returns false.
type Authorizer interface {
	Authorize(w http.ResponseWriter, r *http.Request) bool
}

// Handler is the enrolment endpoint.
type Handler struct {
	cfg   Config
	store inboundstore.MessageStore
	proc  *inbound.Processor
	auth  Authorizer
	clock clock.Clock
	log   *slog.Logger
	// requests numbers the requests, for their lease owners.
	requests atomic.Int64
}

// New returns the enrolment endpoint storing in store, carrying requests out
// with proc and letting through only requests auth authorises.
func New(cfg Config, store inboundstore.MessageStore, proc *inbound.Processor, auth Authorizer, clk clock.Clock, log *slog.Logger) (*Handler, error) {
	if auth == nil || store == nil || proc == nil {
		return nil, errors.New("enrolment link: store, processor and authorizer are required")
	}
	if cfg.Owner == "" {
		return nil, errors.New("enrolment link: owner is empty")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 10
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = 15 * time.Second
	}
	if clk == nil {
		clk = clock.System{}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Handler{cfg: cfg, store: store, proc: proc, auth: auth, clock: clk, log: log}, nil
}

// Request is one parsed enrolment-link request.
type Request struct {
	Action        inboundstore.Action
	PersonID      string `json:"PersoonExterneId"`
	FirstName     string `json:"PersoonVoornaam"`
	Infix         string `json:"PersoonTussenvoegsels"`
	LastName      string `json:"PersoonAchternaam"`
	Email         string `json:"PersoonEmailadres"`
	ElearningCode string `json:"Elearningcode"`
}

// FieldError is a request field that is missing or wrong; its message
// names the field. It is the one inbound.FieldError of both inbound paths.
type FieldError = inbound.FieldError

// ParseEnrol parses an enrol request's JSON body. Unknown fields are
// ignored; the required fields must be non-empty strings, and all fields
// pass inbound.Fields.Check, as a webhook's do.
func ParseEnrol(body []byte) (Request, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return Request{}, &FieldError{Field: "body", Problem: "not a JSON object: " + err.Error()}
	}
	r := Request{Action: inboundstore.ActionEnrol}
	fields := []struct {
		name     string
		dst      *string
		required bool
	}{
		{inbound.FieldPersonID, &r.PersonID, true},
		{inbound.FieldCode, &r.ElearningCode, true},
		{inbound.FieldFirstName, &r.FirstName, true},
		{inbound.FieldInfix, &r.Infix, false},
		{inbound.FieldLastName, &r.LastName, true},
		{inbound.FieldEmail, &r.Email, true},
	}
	for _, f := range fields {
		v, ok := raw[f.name]
		if !ok || string(v) == "null" {
			if f.required {
				return Request{}, &FieldError{Field: f.name, Problem: "missing"}
			}
			continue
		}
		if err := json.Unmarshal(v, f.dst); err != nil {
			return Request{}, &FieldError{Field: f.name, Problem: "must be a string"}
		}
		*f.dst = strings.TrimSpace(*f.dst)
		if f.required && *f.dst == "" {
			return Request{}, &FieldError{Field: f.name, Problem: "missing"}
		}
	}
	if err := r.fields().Check(); err != nil {
		return Request{}, err
	}
	return r, nil
}

// fields are r's values for inbound.Fields.Check.
func (r Request) fields() inbound.Fields {
	return inbound.Fields{PersonID: r.PersonID, ElearningCode: r.ElearningCode, FirstName: r.FirstName,
		Infix: r.Infix, LastName: r.LastName, Email: r.Email}
}

// ParseUnenrol parses an unenrol request's query parameters.
func ParseUnenrol(q map[string][]string) (Request, error) {
	r := Request{Action: inboundstore.ActionUnenrol}
	for _, f := range []struct {
		name string
		dst  *string
	}{{inbound.FieldPersonID, &r.PersonID}, {inbound.FieldCode, &r.ElearningCode}} {
		vs := q[f.name]
		if len(vs) == 0 {
			return Request{}, &FieldError{Field: f.name, Problem: "missing"}
		}
		if len(vs) > 1 {
			return Request{}, &FieldError{Field: f.name, Problem: "given more than once"}
		}
		*f.dst = strings.TrimSpace(vs[0])
	}
	if err := r.fields().Check(); err != nil {
		return Request{}, err
	}
	return r, nil
}

// dedupeKey identifies a request by its content, so a repeat is the same
// stored message.
func (r Request) dedupeKey() string {
	h := sha256.New()
	for _, v := range []string{string(r.Action), r.PersonID, r.ElearningCode, r.FirstName, r.Infix, r.LastName, r.Email} {
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// reply writes a plain-text answer Coachview shows its user.
func reply(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

// ServeHTTP handles one enrolment-link request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.auth.Authorize(w, r) {
		return
	}
	req, body, status, err := h.parse(w, r)
	if err != nil {
		reply(w, status, err.Error())
		return
	}
	ctx := r.Context()
	m := inboundstore.Message{
		Source: inboundstore.SourceLink, DedupeKey: req.dedupeKey(), Verified: inboundstore.VerifiedBearer, Body: body,
		Action: req.Action, PersonID: req.PersonID, ElearningCode: req.ElearningCode, FirstName: req.FirstName,
		Infix: req.Infix, LastName: req.LastName, Email: req.Email, State: inboundstore.StatePending,
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	stored, saved, err := h.store.SaveMessage(sctx, m, inboundstore.Rearm)
	if err != nil {
		h.log.Error("enrolment link: request not stored", slog.String("error", err.Error()))
		reply(w, http.StatusServiceUnavailable, "The bridge could not store the request; please try again later.")
		return
	}
	if saved == inboundstore.Existed && stored.State == inboundstore.StateDone {
		// The same request was carried out before and is still what the
		// pair last became: answered from that outcome, not carried out again.
		reply(w, http.StatusOK, "OK")
		return
	}
	owner := fmt.Sprintf("%s/link-%d", h.cfg.Owner, h.requests.Add(1))
	claimed, ok, err := h.store.ClaimMessage(sctx, stored.ID, owner, h.clock.Now(), h.cfg.SyncTimeout+time.Minute)
	if err != nil || !ok {
		if err != nil {
			h.log.Error("enrolment link: request not claimed", slog.Int64("inbound_id", stored.ID), slog.String("error", err.Error()))
		}
		reply(w, http.StatusAccepted, fmt.Sprintf("Accepted: the request (number %d) is stored; it, or an earlier request for this person and e-learning part, is being carried out now, and it will be retried if needed.", stored.ID))
		return
	}
	pctx, pcancel := context.WithTimeout(ctx, h.cfg.SyncTimeout)
	defer pcancel()
	out, err := h.proc.Process(pctx, claimed, owner)
	switch {
	case err != nil:
		reply(w, http.StatusAccepted, fmt.Sprintf("Accepted: the request (number %d) is stored and will be retried.", stored.ID))
	case out.State == inboundstore.StateDone:
		reply(w, http.StatusOK, "OK")
	case out.State == inboundstore.StateFailed:
		reply(w, http.StatusUnprocessableEntity, fmt.Sprintf("Not carried out (request %d): %s", stored.ID, out.Reason))
	default:
		// The reason stays in the bridge's log and inbox: it may name the
		// server's files or hosts, which Coachview's user has no use for.
		reply(w, http.StatusAccepted, fmt.Sprintf("Accepted: the e-learning system could not be reached now; the request (number %d) is stored and will be retried.", stored.ID))
	}
}

// parse reads the request: its action, fields and raw body, or the status
// and error to answer with.
func (h *Handler) parse(w http.ResponseWriter, r *http.Request) (Request, []byte, int, error) {
	switch r.Method {
	case http.MethodDelete:
		req, err := ParseUnenrol(r.URL.Query())
		return req, nil, http.StatusBadRequest, err
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST, DELETE")
		return Request{}, nil, http.StatusMethodNotAllowed, errors.New("only POST (enrol) and DELETE (unenrol) are accepted")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return Request{}, nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", h.cfg.MaxBody)
		}
		return Request{}, nil, http.StatusBadRequest, fmt.Errorf("could not read the body: %w", err)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		req, err := ParseUnenrol(r.URL.Query())
		return req, nil, http.StatusBadRequest, err
	}
	req, err := ParseEnrol(body)
	return req, body, http.StatusBadRequest, err
}
