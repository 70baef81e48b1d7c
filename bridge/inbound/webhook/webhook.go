// Package webhook receives Coachview API webhook messages: one http.Handler
// per subscription path, which verifies each message (base64 HMAC-SHA256 of
// the raw body in x-coachview-whsignature, and/or the plain token in
// x-coachview-whtoken, as configured, compared in constant time), stores a
// verified message durably with the action its configured event mapping
// gives it, and answers 200 once it is committed, before anything is
// processed. Messages arriving together are committed together when the
// store is a BatchSaver (group commit). Unverified messages get 401 and
// nothing is stored; bodies over the cap get 413.
//
// Coachview resends an unacknowledged message up to 13 times over about
// three days. A resend has the same content, so the dedupe key is the
// SHA-256 of the body's JSON in canonical form (keys sorted, white space
// dropped: a resend serialised differently is the same message), of the raw
// body when it is not JSON, or the configured event id; a resend is stored
// once and processed once.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/bridge/inbound"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
)

// Header names Coachview sends.
const (
	SignatureHeader = "X-Coachview-Whsignature"
	TokenHeader     = "X-Coachview-Whtoken"
)

// DefaultMaxBody is the body cap when Config.MaxBody is zero.
const DefaultMaxBody = 256 << 10

// Config is one webhook subscription, as configured.
type Config struct {
	// Name identifies the subscription; messages are stored with source
	// "webhook:<name>".
	Name string `yaml:"name"`
	// Path is the URL path Coachview posts to, e.g. "/webhooks/cv-enrol".
	Path string `yaml:"path"`
	// SigningSecretFile / SigningSecretEnv hold the subscription's signing
	// secret; when set, every message must carry a valid signature.
	SigningSecretFile string `yaml:"signing_secret_file"`
	SigningSecretEnv  string `yaml:"signing_secret_env"`
	// TokenFile / TokenEnv hold the subscription's token; when set, every
	// message must carry it.
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
	// MaxBody caps a message body in bytes (default 256 KiB, at most
	// inboundstore.MaxBody).
	MaxBody int64 `yaml:"max_body"`
	// EventPath is the JSON path of the event name in a message. Required.
	EventPath string `yaml:"event_path"`
	// EventIDPath is the JSON path of a unique message id; when set and
	// present it is the dedupe key instead of the body's hash.
	EventIDPath string `yaml:"event_id_path"`
	// Events maps event names to what they mean. Events not listed are
	// stored as unmapped.
	Events map[string]Event `yaml:"events"`
}

// Event maps one event name to an action and says where its fields are.
type Event struct {
	// Action is enrol, unenrol or ignore.
	Action string `yaml:"action"`
	// JSON paths of the fields; PersonID and ElearningCode are required
	// for enrol and unenrol.
	PersonID      string `yaml:"person_id"`
	ElearningCode string `yaml:"elearningcode"`
	FirstName     string `yaml:"first_name"`
	Infix         string `yaml:"infix"`
	LastName      string `yaml:"last_name"`
	Email         string `yaml:"email"`
}

// event is a compiled Event.
type event struct {
	action                                            inboundstore.Action
	personID, code, firstName, infix, lastName, email Path
}

// Receiver is the http.Handler of one subscription.
type Receiver struct {
	name, path string
	secret     []byte
	token      []byte
	maxBody    int64
	eventPath  Path
	idPath     Path
	events     map[string]event
	store      inboundstore.MessageStore
	group      *groupCommit // when store is a BatchSaver
	wake       func()
	log        *slog.Logger
}

// New checks cfg, reads its secrets and returns its receiver, storing in
// store and calling wake (if not nil) after storing a message to process.
// When store is also a BatchSaver, the messages of concurrent requests are
// committed together.
func New(cfg Config, store inboundstore.MessageStore, wake func(), log *slog.Logger) (*Receiver, error) {
	where := fmt.Sprintf("webhook subscription %q", cfg.Name)
	if cfg.Name == "" {
		return nil, errors.New("webhook subscription: name is empty")
	}
	if !strings.HasPrefix(cfg.Path, "/") {
		return nil, fmt.Errorf("%s: path %q must start with /", where, cfg.Path)
	}
	if log == nil {
		log = slog.Default()
	}
	r := &Receiver{name: cfg.Name, path: cfg.Path, maxBody: cfg.MaxBody, store: store, wake: wake, events: map[string]event{},
		log: log.With(slog.String("subscription", cfg.Name))}
	if r.maxBody <= 0 {
		r.maxBody = DefaultMaxBody
	}
	if b, ok := store.(BatchSaver); ok {
		r.group = &groupCommit{batch: b, single: store}
	}
	if r.maxBody > inboundstore.MaxBody {
		return nil, fmt.Errorf("%s: max_body %d is over the limit %d", where, cfg.MaxBody, inboundstore.MaxBody)
	}
	secret, err := kit.ReadOptionalSecret("", cfg.SigningSecretFile, cfg.SigningSecretEnv)
	if err != nil {
		return nil, fmt.Errorf("%s: signing secret: %w", where, err)
	}
	token, err := kit.ReadOptionalSecret("", cfg.TokenFile, cfg.TokenEnv)
	if err != nil {
		return nil, fmt.Errorf("%s: token: %w", where, err)
	}
	if secret != "" { // nil: not configured (a secret read is never empty)
		r.secret = []byte(secret)
	}
	if token != "" {
		r.token = []byte(token)
	}
	if r.secret == nil && r.token == nil {
		return nil, fmt.Errorf("%s: set signing_secret_file/_env or token_file/_env: unverified webhooks are refused", where)
	}
	if r.eventPath, err = ParsePath(cfg.EventPath); err != nil {
		return nil, fmt.Errorf("%s: event_path: %w", where, err)
	}
	if cfg.EventIDPath != "" {
		if r.idPath, err = ParsePath(cfg.EventIDPath); err != nil {
			return nil, fmt.Errorf("%s: event_id_path: %w", where, err)
		}
	}
	for name, ev := range cfg.Events {
		e, err := compileEvent(ev)
		if err != nil {
			return nil, fmt.Errorf("%s: event %q: %w", where, name, err)
		}
		r.events[name] = e
	}
	return r, nil
}

// compileEvent checks ev and compiles its paths.
func compileEvent(ev Event) (event, error) {
	e := event{action: inboundstore.Action(ev.Action)}
	switch e.action {
	case inboundstore.ActionIgnore:
		return e, nil
	case inboundstore.ActionEnrol, inboundstore.ActionUnenrol:
	default:
		return e, fmt.Errorf("action %q is not enrol, unenrol or ignore", ev.Action)
	}
	fields := []struct {
		key      string
		src      string
		dst      *Path
		required bool
	}{
		{"person_id", ev.PersonID, &e.personID, true},
		{"elearningcode", ev.ElearningCode, &e.code, true},
		{"first_name", ev.FirstName, &e.firstName, false},
		{"infix", ev.Infix, &e.infix, false},
		{"last_name", ev.LastName, &e.lastName, false},
		{"email", ev.Email, &e.email, false},
	}
	for _, f := range fields {
		if f.src == "" {
			if f.required {
				return e, fmt.Errorf("%s: a JSON path is required for %s", f.key, ev.Action)
			}
			continue
		}
		p, err := ParsePath(f.src)
		if err != nil {
			return e, fmt.Errorf("%s: %w", f.key, err)
		}
		*f.dst = p
	}
	return e, nil
}

// Name is the subscription's name.
func (r *Receiver) Name() string { return r.name }

// Path is the URL path the receiver is to be mounted on.
func (r *Receiver) Path() string { return r.path }

// storeTimeout bounds storing a message, independent of the client.
const storeTimeout = 10 * time.Second

// ServeHTTP receives one message.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "only POST is accepted here", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			r.log.Warn("webhook refused: body too large", slog.Int64("max_body", r.maxBody))
			http.Error(w, fmt.Sprintf("body larger than %d bytes", r.maxBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "could not read the body", http.StatusBadRequest)
		return
	}
	verified, why := r.verify(req.Header, body)
	if verified == "" {
		r.log.Warn("webhook refused: not verified", slog.String("reason", why))
		http.Error(w, "message not verified", http.StatusUnauthorized)
		return
	}
	stored, outcome, err := r.save(req.Context(), r.message(body, verified))
	if err != nil {
		r.log.Error("webhook not stored", slog.String("error", err.Error()))
		http.Error(w, "message not stored, please retry", http.StatusServiceUnavailable)
		return
	}
	r.log.Info("webhook received", slog.Int64("inbound_id", stored.ID), slog.String("event", stored.Event),
		slog.String("action", string(stored.Action)), slog.String("state", string(stored.State)),
		slog.Bool("duplicate", outcome != inboundstore.Inserted), slog.Int("requests", stored.Requests))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "received\n")
	if outcome == inboundstore.Inserted && stored.State == inboundstore.StatePending && r.wake != nil {
		r.wake()
	}
}

// save stores m durably, a duplicate of a stored message left as it is,
// within storeTimeout whether or not the client waits that long.
func (r *Receiver) save(ctx context.Context, m inboundstore.Message) (inboundstore.Message, inboundstore.SaveOutcome, error) {
	if r.group != nil {
		res := r.group.save(m)
		return res.m, res.outcome, res.err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	return r.store.SaveMessage(ctx, m, inboundstore.KeepExisting)
}

// verify checks the configured credentials of a message and returns how it
// was verified, or "" and why not.
func (r *Receiver) verify(h http.Header, body []byte) (string, string) {
	var how []string
	if r.secret != nil {
		got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h.Get(SignatureHeader)))
		switch {
		case h.Get(SignatureHeader) == "":
			return "", "signature header missing"
		case err != nil:
			return "", "signature header is not base64"
		}
		mac := hmac.New(sha256.New, r.secret)
		mac.Write(body)
		if !hmac.Equal(mac.Sum(nil), got) {
			return "", "signature does not match"
		}
		how = append(how, inboundstore.VerifiedSignature)
	}
	if r.token != nil {
		got := h.Get(TokenHeader)
		if got == "" {
			return "", "token header missing"
		}
		// Comparing hashes keeps the comparison's time independent of
		// the token's length as well as its content.
		a, b := sha256.Sum256([]byte(got)), sha256.Sum256(r.token)
		if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
			return "", "token does not match"
		}
		how = append(how, inboundstore.VerifiedToken)
	}
	return strings.Join(how, "+"), ""
}

// message builds the stored form of a verified body.
func (r *Receiver) message(body []byte, verified string) inboundstore.Message {
	sum := sha256.Sum256(body)
	m := inboundstore.Message{
		Source:    inboundstore.WebhookSource(r.name),
		DedupeKey: "sha256:" + hex.EncodeToString(sum[:]),
		Verified:  verified,
		Body:      body,
	}
	parsed := r.Parse(body)
	if parsed.contentKey != "" {
		m.DedupeKey = parsed.contentKey
	}
	m.Event, m.Action, m.State, m.LastError = parsed.Event, parsed.Action, parsed.State, parsed.Error
	m.PersonID, m.ElearningCode = parsed.PersonID, parsed.ElearningCode
	m.FirstName, m.Infix, m.LastName, m.Email = parsed.FirstName, parsed.Infix, parsed.LastName, parsed.Email
	if parsed.EventID != "" {
		m.DedupeKey = "id:" + parsed.EventID
	}
	return m
}

// Parsed is what a message body means under a subscription's mapping.
type Parsed struct {
	Event, EventID                                             string
	Action                                                     inboundstore.Action
	State                                                      inboundstore.State
	Error                                                      string // why a mapped message cannot be processed
	PersonID, ElearningCode, FirstName, Infix, LastName, Email string

	// contentKey is "json:" and the hex SHA-256 of the body's JSON in
	// canonical form (keys sorted, no insignificant white space), so a
	// resend serialised differently is still the same message.
	contentKey string
}

// Parse maps body under the subscription's configuration: the event name
// at its event path, the optional message id, the event mapping. A body that is not JSON, or a mapped event missing
// a required field, gives state failed with the reason; an event not in
// events gives unmapped; an ignored event gives ignored; otherwise pending.
func (r *Receiver) Parse(body []byte) Parsed {
	eventPath, idPath, events := r.eventPath, r.idPath, r.events
	p := Parsed{Action: inboundstore.ActionUnmapped, State: inboundstore.StateUnmapped}
	doc, err := Decode(body)
	if err != nil {
		p.State, p.Error = inboundstore.StateFailed, fmt.Sprintf("body is not JSON: %v", err)
		return p
	}
	if canon, err := json.Marshal(doc); err == nil { // maps marshal with sorted keys
		sum := sha256.Sum256(canon)
		p.contentKey = "json:" + hex.EncodeToString(sum[:])
	}
	if idPath != nil {
		p.EventID, _, _ = idPath.Lookup(doc)
	}
	name, found, err := eventPath.Lookup(doc)
	if err != nil || !found {
		p.Error = fmt.Sprintf("no event name at %s", eventPath)
		return p
	}
	p.Event = name
	ev, ok := events[name]
	if !ok {
		return p
	}
	p.Action = ev.action
	if ev.action == inboundstore.ActionIgnore {
		p.State = inboundstore.StateIgnored
		return p
	}
	p.State = inboundstore.StatePending
	fields := []struct {
		path     Path
		dst      *string
		required bool
	}{
		{ev.personID, &p.PersonID, true}, {ev.code, &p.ElearningCode, true},
		{ev.firstName, &p.FirstName, false}, {ev.infix, &p.Infix, false},
		{ev.lastName, &p.LastName, false}, {ev.email, &p.Email, false},
	}
	for _, f := range fields {
		if f.path == nil {
			continue
		}
		v, found, err := f.path.Lookup(doc)
		switch {
		case err != nil:
			p.State, p.Error = inboundstore.StateFailed, err.Error()
			return p
		case f.required && (!found || strings.TrimSpace(v) == ""):
			p.State, p.Error = inboundstore.StateFailed, fmt.Sprintf("event %q has no value at %s", name, f.path)
			return p
		}
		*f.dst = strings.TrimSpace(v)
	}
	// The same checks as the enrolment link's, with the same texts.
	if err := (inbound.Fields{PersonID: p.PersonID, ElearningCode: p.ElearningCode, FirstName: p.FirstName,
		Infix: p.Infix, LastName: p.LastName, Email: p.Email}).Check(); err != nil {
		p.State, p.Error = inboundstore.StateFailed, fmt.Sprintf("event %q: %v", name, err)
		// Nothing invalid reaches the store's columns (the raw body keeps
		// what was sent): the identifiers stay when they are valid.
		p.FirstName, p.Infix, p.LastName, p.Email = "", "", "", ""
		if inbound.CheckValue(inbound.FieldPersonID, p.PersonID, inbound.MaxPersonIDLen, true) != nil {
			p.PersonID = ""
		}
		if inbound.CheckValue(inbound.FieldCode, p.ElearningCode, inbound.MaxCodeLen, true) != nil {
			p.ElearningCode = ""
		}
	}
	return p
}
