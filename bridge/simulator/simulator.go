// Package simulator owns a local stand-in for Coachview's results endpoint
// ("URL Resultaten"). It answers like Coachview does per the status table of
// the interfaces document: 405 for a method other than POST, 403 for a
// missing or wrong X-WebHook-Signature, 400 for an empty body, XML that is
// not well-formed or fails the injected XSD check, and 200 otherwise,
// registering each (Elearningcode, PersoonExterneId) pair once and
// answering later results for a registered pair with 200 without
// registering them again. Other answers (404, 500, 503, …) are scripted at
// run time.
//
// It serves `cvbridge sim`, `make run` and end-to-end tests (as an
// http.Handler under httptest). It imports no cgo package: the XSD check is
// injected through Options.Validate. It knows nothing of the outbox or of
// delivery.
package simulator

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/sign"
)

// DefaultMaxBody is the request body cap used when Options.MaxBody is zero.
// A result message is well under a kilobyte.
const DefaultMaxBody = 1 << 20

// Options configures a Simulator. Only Secret matters for the answers; the
// zero value of every other field has a sensible meaning.
type Options struct {
	// Secret is the shared webhook secret, used as its raw bytes.
	Secret []byte
	// Algorithm is the HMAC hash; empty means SHA-512, the Coachview default.
	Algorithm sign.Algorithm
	// Validate checks a well-formed body against the XSD; its error text
	// becomes the 400 answer. Nil skips the XSD check.
	Validate func(body []byte) error
	// Log receives one record per request to the results endpoint. Nil
	// discards them.
	Log *slog.Logger
	// Out, when non-nil, receives one human-readable line per request to the
	// results endpoint, so an operator sees results arrive.
	Out io.Writer
	// Clock stamps accepted results; nil means the system clock.
	Clock clock.Clock
	// MaxBody caps the request body in bytes; a larger body gets 413. Zero
	// means DefaultMaxBody.
	MaxBody int64
}

// Stats counts the requests the results endpoint has answered since New or
// the last Reset. Requests to the observation endpoints are not counted.
type Stats struct {
	// Requests is the number of requests answered.
	Requests int `json:"requests"`
	// Accepted is the number of results registered (answered 200 for a new pair).
	Accepted int `json:"accepted"`
	// Duplicates is the number of results answered 200 for a pair that was
	// already registered, and therefore ignored.
	Duplicates int `json:"duplicates"`
	// ByStatus counts answers by HTTP status code.
	ByStatus map[int]int `json:"by_status"`
}

// Received is one registered result.
type Received struct {
	// PersonID is the PersoonExterneId as sent.
	PersonID string `json:"person"`
	// ElearningCode is the Elearningcode as sent.
	ElearningCode string `json:"elearningcode"`
	// Body is the exact request body (base64 in JSON).
	Body []byte `json:"body"`
	// Signature is the X-WebHook-Signature header as sent.
	Signature string `json:"signature"`
	// At is when the simulator registered the result.
	At time.Time `json:"at"`
}

// pair identifies a registration the way Coachview matches it: the
// Elearningcode exactly and the PersoonExterneId case-insensitively.
type pair struct {
	code   string
	person string
}

func personKey(personID string) string { return strings.ToLower(personID) }

// Simulator is an http.Handler that behaves like Coachview's results
// endpoint. It is safe for concurrent use; its scripted answers may be
// changed while it serves.
type Simulator struct {
	signer   *sign.Signer
	validate func([]byte) error
	log      *slog.Logger
	clock    clock.Clock
	maxBody  int64

	outMu sync.Mutex
	out   io.Writer

	mu         sync.Mutex
	status     int            // answer for every request while non-zero
	failLeft   int            // requests still to answer with failStatus
	failStatus int            // status for the next failLeft requests
	retryAfter string         // Retry-After value for scripted 503 answers
	persons    map[string]int // personKey → scripted status
	registered map[pair]struct{}
	accepted   []Received
	stats      Stats
}

var _ http.Handler = (*Simulator)(nil)

// New returns a Simulator configured by o. It panics if o.Algorithm is not
// one sign.NewSigner accepts; parse operator input with sign.ParseAlgorithm.
func New(o Options) *Simulator {
	signer, err := sign.NewSigner(o.Algorithm, o.Secret)
	if err != nil {
		panic(fmt.Sprintf("simulator: %v", err))
	}
	s := &Simulator{
		signer:   signer,
		validate: o.Validate,
		log:      o.Log,
		clock:    o.Clock,
		maxBody:  o.MaxBody,
		out:      o.Out,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = clock.System{}
	}
	if s.maxBody <= 0 {
		s.maxBody = DefaultMaxBody
	}
	s.Reset()
	return s
}

// Reset returns the simulator to its state just after New: no registered
// results, zero counters and no scripted answers.
func (s *Simulator) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.failLeft, s.failStatus, s.retryAfter = 0, 0, 0, ""
	s.persons = map[string]int{}
	s.registered = map[pair]struct{}{}
	s.accepted = nil
	s.stats = Stats{ByStatus: map[int]int{}}
}

// Stats returns a copy of the counters.
func (s *Simulator) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByStatus = maps.Clone(s.stats.ByStatus)
	return st
}

// Accepted returns a copy of the registered results in the order they were
// registered.
func (s *Simulator) Accepted() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Received, len(s.accepted))
	for i, r := range s.accepted {
		r.Body = bytes.Clone(r.Body)
		out[i] = r
	}
	return out
}

// answer is the simulator's reply to one request to the results endpoint,
// with what the Out line and the log record say about it.
type answer struct {
	status     int
	text       string // response body
	outcome    string // accepted, duplicate, scripted or rejected
	note       string // why, for the operator; not sent
	code       string // Elearningcode, when the body got that far
	person     string // PersoonExterneId, when the body got that far
	retryAfter string
}

// ServeHTTP answers a request to the results endpoint, or to an observation
// endpoint (see ObservePrefix).
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.serveObservation(w, r) {
		return
	}
	a := s.answer(w, r)
	s.report(r, a)
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if a.status == http.StatusMethodNotAllowed {
		h.Set("Allow", http.MethodPost)
	}
	if a.retryAfter != "" {
		h.Set("Retry-After", a.retryAfter)
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.text)
}

// answer runs Coachview's checks in order and, for a request that passes
// them, applies the script or registers the result.
func (s *Simulator) answer(w http.ResponseWriter, r *http.Request) answer {
	if r.Method != http.MethodPost {
		return rejected(http.StatusMethodNotAllowed, "method "+r.Method)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			a := rejected(http.StatusRequestEntityTooLarge, "")
			a.text = fmt.Sprintf("Request body larger than %d bytes", tooBig.Limit)
			return a
		}
		return rejected(http.StatusBadRequest, "reading body: "+err.Error())
	}
	signature := r.Header.Get(sign.Header)
	switch {
	case signature == "":
		return rejected(http.StatusForbidden, "no "+sign.Header+" header")
	case !s.signer.Verify(body, signature):
		return rejected(http.StatusForbidden, "signature does not match the secret and "+string(s.signer.Algorithm()))
	}
	code, person, err := s.check(body)
	if err != nil {
		a := rejected(http.StatusBadRequest, "")
		a.text = coachviewText(http.StatusBadRequest) + ": " + err.Error()
		a.code, a.person = code, person
		return a
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.scripted(person); ok {
		a.code, a.person = code, person
		return a
	}
	a := answer{status: http.StatusOK, text: "OK", code: code, person: person}
	key := pair{code: code, person: personKey(person)}
	if _, dup := s.registered[key]; dup {
		a.outcome, a.note = "duplicate", "pair already registered; result ignored"
		s.stats.Duplicates++
		return a
	}
	s.registered[key] = struct{}{}
	s.accepted = append(s.accepted, Received{
		PersonID:      person,
		ElearningCode: code,
		Body:          body,
		Signature:     signature,
		At:            s.clock.Now(),
	})
	s.stats.Accepted++
	a.outcome = "accepted"
	return a
}

// check applies Coachview's 400 rules to a body whose signature is valid:
// not empty, well-formed XML, valid under the XSD, and carrying the two
// attributes that identify the registration. It returns those attributes
// as far as it got.
func (s *Simulator) check(body []byte) (code, person string, err error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return "", "", errors.New("no data received in the HTTP body")
	}
	root, err := wellFormedRoot(body)
	if err != nil {
		return "", "", fmt.Errorf("the HTTP body cannot be read as XML: %w", err)
	}
	code, person = attr(root, "Elearningcode"), attr(root, "PersoonExterneId")
	if s.validate != nil {
		if err := s.validate(body); err != nil {
			return code, person, fmt.Errorf("the XML does not conform to the XSD: %w", err)
		}
	}
	switch {
	case root.Name.Local != "CoachviewResultaat":
		return code, person, fmt.Errorf("the XML does not conform to the XSD: root element is %s, want CoachviewResultaat", root.Name.Local)
	case code == "":
		return code, person, errors.New("the XML does not conform to the XSD: attribute Elearningcode is missing or empty")
	case person == "":
		return code, person, errors.New("the XML does not conform to the XSD: attribute PersoonExterneId is missing or empty")
	}
	return code, person, nil
}

// wellFormedRoot reads the whole document, so that trailing garbage or a
// second root element is an error too, and returns the root element.
func wellFormedRoot(body []byte) (xml.StartElement, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	var root xml.StartElement
	depth, roots := 0, 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return root, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if roots > 1 {
					return root, fmt.Errorf("second root element %s after %s", t.Name.Local, root.Name.Local)
				}
				root = t.Copy()
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return root, errors.New("text outside the root element")
			}
		}
	}
	if roots == 0 {
		return root, errors.New("no root element")
	}
	return root, nil
}

// attr returns the value of the unqualified attribute local of e, or "".
func attr(e xml.StartElement, local string) string {
	for _, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value
		}
	}
	return ""
}

func rejected(status int, note string) answer {
	return answer{status: status, text: coachviewText(status), outcome: "rejected", note: note}
}

// coachviewText is the response text Coachview gives with status, after the
// descriptions in its documentation.
func coachviewText(status int) string {
	switch status {
	case http.StatusOK:
		return "OK"
	case http.StatusBadRequest:
		return "The result could not be processed"
	case http.StatusForbidden:
		return "Webhook validation failed"
	case http.StatusNotFound:
		return "Person and/or enrolment not found in Coachview"
	case http.StatusMethodNotAllowed:
		return "Request method not supported; use POST"
	case http.StatusInternalServerError:
		return "An error occurred while processing the result. Please contact Coachview with this message."
	case http.StatusServiceUnavailable:
		return "Coachview is currently unavailable. Please try again later."
	}
	if t := http.StatusText(status); t != "" {
		return t
	}
	return fmt.Sprintf("Status %d", status)
}

// report counts a results-endpoint answer and tells the log and Out.
func (s *Simulator) report(r *http.Request, a answer) {
	s.mu.Lock()
	s.stats.Requests++
	s.stats.ByStatus[a.status]++
	s.mu.Unlock()

	why := a.note
	if why == "" && a.status != http.StatusOK {
		why = a.text
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "simulator answered result",
		slog.Int("status", a.status),
		slog.String("outcome", a.outcome),
		slog.String("elearningcode", a.code),
		slog.String("person", a.person),
		slog.String("reason", why),
	)
	if s.out == nil {
		return
	}
	var line strings.Builder
	fmt.Fprintf(&line, "%s %d %s", s.clock.Now().Format("15:04:05"), a.status, a.outcome)
	if a.code != "" || a.person != "" {
		fmt.Fprintf(&line, " elearningcode=%q person=%q", a.code, a.person)
	}
	if why != "" {
		fmt.Fprintf(&line, " (%s)", why)
	}
	line.WriteByte('\n')
	s.outMu.Lock()
	defer s.outMu.Unlock()
	// A failing Out must not fail the answer; the log has the same facts.
	_, _ = io.WriteString(s.out, line.String())
}
