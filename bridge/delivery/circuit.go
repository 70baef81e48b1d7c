package delivery

import (
	"sync"
	"time"
)

// CircuitState is a target's circuit breaker as the operator sees it.
//
// The circuit opens after retry.circuit_after transient outcomes in a row
// (503, 429, 408, 502, 504 and other 5xx but 500, connection errors and
// timeouts), counted across results, with no other answer in between. While
// it is open the dispatcher sends nothing but one probe, a real due result,
// at the transient schedule's pace (retry.transient.base doubling up to
// retry.transient.cap, with jitter, honouring Retry-After). The rows it
// does not send keep their attempts and schedules. Any other answer (200,
// 400, 403, 404, 405, 500: Coachview is up and reading requests) closes it,
// and the backlog drains at full speed.
//
// A pause, the operator's or a 403's, takes precedence: while the target is
// paused the pause decides what is sent. The circuit lives in the
// dispatcher's memory: a restart or reload starts with it closed, and each
// daemon sharing a PostgreSQL store has its own.
type CircuitState struct {
	// Open is true while only probes are sent.
	Open bool `json:"open"`
	// OpenedAt is when it last opened; zero if it never did.
	OpenedAt time.Time `json:"opened_at,omitzero"`
	// Failures counts the transient outcomes in a row, across results.
	Failures int `json:"failures"`
	// Reason is the last transient outcome, without Coachview's text (it
	// may echo personal data): for example "Coachview answered 503
	// Service Unavailable" or "could not reach Coachview: … connection refused".
	Reason string `json:"reason,omitempty"`
	// NextProbe is when, while open, the next probe may be sent.
	NextProbe time.Time `json:"next_probe,omitzero"`
	// Probes counts the probes that failed since it opened.
	Probes int `json:"probes"`
	// Openings counts how often it opened since the dispatcher started.
	Openings int `json:"openings"`
}

// circuitEvent is what one outcome did to the circuit.
type circuitEvent int

const (
	circuitSteady      circuitEvent = iota // nothing worth a log line
	circuitOpened                          // this outcome opened it
	circuitProbeFailed                     // a probe failed: it stays open
	circuitClosed                          // Coachview answered: it closed
)

// circuit is a target's circuit breaker, shared by the dispatcher's workers.
type circuit struct {
	mu    sync.Mutex
	after int // transient outcomes in a row that open it
	st    CircuitState
}

// state returns a copy of the circuit's state.
func (c *circuit) state() CircuitState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

// isOpen reports whether only probes may be sent.
func (c *circuit) isOpen() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.Open
}

// observe applies one outcome of class cl at now; reason says what a
// transient one was. probe tells whether the request was sent as the open
// circuit's probe; delay is how long to wait for the next probe after the
// given number of failed ones. It returns what changed and the state after it.
func (c *circuit) observe(cl Class, reason string, probe bool, now time.Time, delay func(failedProbes int) time.Duration) (circuitEvent, CircuitState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl != Transient {
		c.st.Failures = 0
		if !c.st.Open {
			return circuitSteady, c.st
		}
		c.st.Open, c.st.NextProbe = false, time.Time{}
		return circuitClosed, c.st
	}
	c.st.Failures++
	c.st.Reason = reason
	switch {
	case !c.st.Open && c.st.Failures >= c.after:
		c.st.Open, c.st.OpenedAt, c.st.Probes = true, now, 0
		c.st.Openings++
		c.st.NextProbe = now.Add(delay(0))
		return circuitOpened, c.st
	case c.st.Open && probe:
		c.st.Probes++
		c.st.NextProbe = now.Add(delay(c.st.Probes))
		return circuitProbeFailed, c.st
	}
	// A failure that does not reach the threshold, or of a request that
	// was in flight as the circuit opened: the probe time stands.
	return circuitSteady, c.st
}

// circuitReason says what a transient outcome was, leaving Coachview's
// text out: it is logged and served on /readyz.
func (s Settings) circuitReason(res response) string {
	if res.err != nil {
		return transientText(res, s.Timeout)
	}
	return "Coachview answered " + statusText(res.status)
}

// probeDelay is how long an open circuit waits before its next probe after
// failedProbes failed ones, res being the last: the transient schedule's
// delay for the (failedProbes+1)-th try, jittered, and no sooner than a
// Retry-After (up to retry_after_cap) allows.
func (s Settings) probeDelay(failedProbes int, res response, jitter float64) time.Duration {
	r := s.Retry
	d := jittered(r.baseDelay(Transient, failedProbes+1), jitter)
	if res.hasRetry {
		d = max(d, min(res.retryAfter, r.RetryAfterCap))
	}
	return d
}
