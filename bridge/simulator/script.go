package simulator

import (
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Scripted answers replace the 200 for a result that passed the method,
// signature and XML checks. When several apply, SetStatus wins over
// FailFirst, which wins over SetPersonStatus. A scripted answer never
// registers the result, whatever its status. Each scripted answer carries
// a Coachview-like text; a scripted 503 also carries the Retry-After value
// set with SetRetryAfter.
//
// The setters panic on a status outside 200–599, like
// http.ResponseWriter.WriteHeader would later; ApplyFlags checks operator
// input and returns an error instead.

// FailFirst makes the next n results get status (for example 503 while
// Coachview is down for maintenance). n ≤ 0 clears it.
func (s *Simulator) FailFirst(n, status int) {
	if n > 0 {
		mustStatus("FailFirst", status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failLeft, s.failStatus = max(n, 0), status
}

// SetRetryAfter sets the Retry-After header value sent with scripted 503
// answers, in seconds or as an HTTP date. Empty sends none.
func (s *Simulator) SetRetryAfter(value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retryAfter = value
}

// SetPersonStatus makes every result for personID (compared
// case-insensitively, as Coachview matches PersoonExterneId) get status
// until cleared with status 0; for example 404 while the person's
// enrolment does not exist yet.
func (s *Simulator) SetPersonStatus(personID string, status int) {
	if status != 0 {
		mustStatus("SetPersonStatus", status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.persons, personKey(personID))
		return
	}
	s.persons[personKey(personID)] = status
}

// SetStatus makes every result get status (for example a 403 storm after a
// secret change, or 500) until SetStatus(0).
func (s *Simulator) SetStatus(status int) {
	if status != 0 {
		mustStatus("SetStatus", status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// scripted returns the scripted answer for a result for person, if any.
// s.mu must be held.
func (s *Simulator) scripted(person string) (answer, bool) {
	var status int
	var note string
	switch {
	case s.status != 0:
		status, note = s.status, "scripted: every request"
	case s.failLeft > 0:
		s.failLeft--
		status, note = s.failStatus, fmt.Sprintf("scripted: fail-first, %d left", s.failLeft)
	default:
		st, ok := s.persons[personKey(person)]
		if !ok {
			return answer{}, false
		}
		status, note = st, "scripted: person status"
	}
	a := answer{status: status, text: coachviewText(status), outcome: "scripted", note: note}
	if status == http.StatusServiceUnavailable {
		a.retryAfter = s.retryAfter
	}
	return a, true
}

func checkStatus(status int) error {
	if status < 200 || status > 599 {
		return fmt.Errorf("status %d is not an HTTP status between 200 and 599", status)
	}
	return nil
}

func mustStatus(setter string, status int) {
	if err := checkStatus(status); err != nil {
		panic(fmt.Sprintf("simulator: %s: %v", setter, err))
	}
}

// Flags is the simulator's script as command-line flags give it. Bind
// registers them on a flag.FlagSet; ApplyFlags applies them.
type Flags struct {
	// FailFirst is the number of first results answered with FailStatus.
	FailFirst int
	// FailStatus is the status for the FailFirst results; Bind defaults it to 503.
	FailStatus int
	// RetryAfter is the Retry-After value sent with scripted 503 answers.
	RetryAfter string
	// Status, when non-zero, answers every result with that status.
	Status int
	// PersonStatus holds PERSON=STATUS entries, e.g. "p1=404".
	PersonStatus []string
}

// Bind registers the flags --fail-first, --fail-status, --retry-after,
// --status and --person-status (repeatable, or comma-separated) on fs,
// storing into f.
func (f *Flags) Bind(fs *flag.FlagSet) {
	fs.IntVar(&f.FailFirst, "fail-first", 0, "answer the first `N` results with --fail-status")
	fs.IntVar(&f.FailStatus, "fail-status", http.StatusServiceUnavailable, "HTTP `status` for the --fail-first results")
	fs.StringVar(&f.RetryAfter, "retry-after", "", "Retry-After header `value` for scripted 503 answers (seconds or HTTP date)")
	fs.IntVar(&f.Status, "status", 0, "answer every result with this HTTP `status` (0: behave normally)")
	fs.Func("person-status", "answer results for a person with a status, as `PERSON=STATUS` (e.g. p1=404); repeatable", func(v string) error {
		for entry := range strings.SplitSeq(v, ",") {
			if _, _, err := parsePersonStatus(entry); err != nil {
				return err
			}
			f.PersonStatus = append(f.PersonStatus, entry)
		}
		return nil
	})
}

// ApplyFlags checks f and applies it as the simulator's script, on top of
// what is scripted already. It applies nothing if any part of f is
// invalid; the error names the flag and the value.
func (s *Simulator) ApplyFlags(f Flags) error {
	if f.FailFirst < 0 {
		return fmt.Errorf("simulator: --fail-first %d: must not be negative", f.FailFirst)
	}
	if f.FailFirst > 0 {
		if err := checkStatus(f.FailStatus); err != nil {
			return fmt.Errorf("simulator: --fail-status: %w", err)
		}
	}
	if f.Status != 0 {
		if err := checkStatus(f.Status); err != nil {
			return fmt.Errorf("simulator: --status: %w", err)
		}
	}
	persons := make(map[string]int, len(f.PersonStatus))
	for _, entry := range f.PersonStatus {
		person, status, err := parsePersonStatus(entry)
		if err != nil {
			return err
		}
		persons[person] = status
	}

	if f.FailFirst > 0 {
		s.FailFirst(f.FailFirst, f.FailStatus)
	}
	if f.RetryAfter != "" {
		s.SetRetryAfter(f.RetryAfter)
	}
	if f.Status != 0 {
		s.SetStatus(f.Status)
	}
	for person, status := range persons {
		s.SetPersonStatus(person, status)
	}
	return nil
}

// parsePersonStatus reads one PERSON=STATUS entry.
func parsePersonStatus(entry string) (string, int, error) {
	// The status follows the last '=', so a person id may contain one.
	i := strings.LastIndex(entry, "=")
	if i < 0 || strings.TrimSpace(entry[:i]) == "" {
		return "", 0, fmt.Errorf("simulator: --person-status %q: want PERSON=STATUS, e.g. p1=404", entry)
	}
	person, code := strings.TrimSpace(entry[:i]), strings.TrimSpace(entry[i+1:])
	status, err := strconv.Atoi(code)
	if err != nil {
		return "", 0, fmt.Errorf("simulator: --person-status %q: status is not a number: %w", entry, err)
	}
	if err := checkStatus(status); err != nil {
		return "", 0, fmt.Errorf("simulator: --person-status %q: %w", entry, err)
	}
	return person, status, nil
}
