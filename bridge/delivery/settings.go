package delivery

import (
	"fmt"
	"mime"
	"time"

	"github.com/cvbridge/cvbridge/bridge/strictyaml"
)

// Settings tune how one target's results are delivered. The lead embeds it
// inline in a target's configuration, so its keys sit beside the target's url.
// Start from DefaultSettings, decode over it, then call Validate.
type Settings struct {
	// Concurrency is how many requests may be in flight at once.
	Concurrency int `yaml:"concurrency"`
	// RateLimit is the most requests per second; 0 means unlimited.
	RateLimit float64 `yaml:"rate_limit"`
	// ConnectTimeout bounds the TCP connect and the TLS handshake.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// Timeout bounds a whole request, from connect to the end of the response.
	Timeout time.Duration `yaml:"timeout"`
	// Lease is how long a claimed row stays reserved for this dispatcher; a
	// row whose lease ran out is sent again by whoever claims it next. 0
	// means 2×timeout+30s. It must exceed Timeout. A row is sent only while
	// Timeout plus half the rest of the lease is left (60s of the default
	// 90s), and handed back otherwise: the margin is time to record the
	// answer, and room for another daemon whose clock runs ahead.
	Lease time.Duration `yaml:"lease"`
	// Batch is how many due rows one claim takes; while whole batches
	// come back, the next claim is made as the workers send the current
	// one. 0 means concurrency×(record_ahead+1), at least 2×concurrency.
	Batch int `yaml:"batch"`
	// PollInterval is how often to look for due rows when nothing wakes the
	// dispatcher sooner.
	PollInterval time.Duration `yaml:"poll_interval"`
	// ContentType is the Content-Type header of every POST.
	ContentType string `yaml:"content_type"`
	// RecordAhead lets a worker send its next result while up to this many
	// of its outcomes are still being recorded (default 8), so that the
	// outcomes of all workers share one commit and a backlog drains at
	// the pace of Coachview rather than of the disk. The price: a crash
	// (kill -9, power loss) may send up to concurrency×(RecordAhead+1)
	// results a second time, where 0 bounds it at concurrency. Coachview
	// ignores a second result for a part it registered.
	RecordAhead int `yaml:"record_ahead"`
	// Retry holds the retry schedules per kind of failure.
	Retry RetrySettings `yaml:"retry"`
}

// RetrySettings are the retry schedules for the answers that are retried.
type RetrySettings struct {
	// Transient covers 503, 429, other 5xx except 500, connection errors and timeouts.
	Transient TransientRetry `yaml:"transient"`
	// NotFound covers 404: person or enrolment unknown to Coachview (yet).
	NotFound NotFoundRetry `yaml:"not_found"`
	// ServerError covers 500: Coachview failed while processing the message.
	ServerError ServerErrorRetry `yaml:"server_error"`
	// CircuitAfter is how many transient failures in a row, across
	// results, open the target's circuit: from then on one probe is sent
	// at the transient schedule's pace and nothing else, until Coachview
	// answers again (see CircuitState).
	CircuitAfter int `yaml:"circuit_after"`
	// PauseProbe is how long a target paused by a 403 waits between probes,
	// each sending one row to test whether the fault is fixed.
	PauseProbe time.Duration `yaml:"pause_probe"`
	// RetryAfterCap is the longest Retry-After header honoured.
	RetryAfterCap time.Duration `yaml:"retry_after_cap"`
}

// TransientRetry is an exponential backoff, doubling from Base up to Cap,
// given up MaxAge after the first failure of the run. 500s between the
// run's failures do not end the run.
type TransientRetry struct {
	Base   time.Duration `yaml:"base"`
	Cap    time.Duration `yaml:"cap"`
	MaxAge time.Duration `yaml:"max_age"`
}

// NotFoundRetry retries every Interval and gives up MaxAge after the first 404 of the run.
type NotFoundRetry struct {
	Interval time.Duration `yaml:"interval"`
	MaxAge   time.Duration `yaml:"max_age"`
}

// ServerErrorRetry retries every Interval and gives up after MaxTries 500s in a row.
type ServerErrorRetry struct {
	Interval time.Duration `yaml:"interval"`
	MaxTries int           `yaml:"max_tries"`
}

// DefaultContentType is the Content-Type sent unless content_type says otherwise.
const DefaultContentType = "text/xml; charset=utf-8"

// DefaultSettings returns the settings used for every key a target leaves out.
func DefaultSettings() Settings {
	return Settings{
		Concurrency:    2,
		RateLimit:      0,
		ConnectTimeout: 10 * time.Second,
		Timeout:        30 * time.Second,
		Lease:          0,
		Batch:          0,
		PollInterval:   5 * time.Second,
		ContentType:    DefaultContentType,
		RecordAhead:    8,
		Retry: RetrySettings{
			Transient:     TransientRetry{Base: 30 * time.Second, Cap: time.Hour, MaxAge: 14 * 24 * time.Hour},
			NotFound:      NotFoundRetry{Interval: time.Hour, MaxAge: 7 * 24 * time.Hour},
			ServerError:   ServerErrorRetry{Interval: 30 * time.Minute, MaxTries: 3},
			CircuitAfter:  5,
			PauseProbe:    15 * time.Minute,
			RetryAfterCap: 6 * time.Hour,
		},
	}
}

// minLeaseToSend is how much of a row's lease must be left to send it: the
// request's timeout, plus half the lease beyond it as a margin for
// recording the outcome and for other daemons' clocks running ahead.
func (s Settings) minLeaseToSend() time.Duration {
	lease := s.LeaseDuration()
	return s.Timeout + (lease-s.Timeout)/2
}

// LeaseDuration returns the effective lease: Lease, or 2×timeout+30s when Lease is 0.
func (s Settings) LeaseDuration() time.Duration {
	if s.Lease > 0 {
		return s.Lease
	}
	return 2*s.Timeout + 30*time.Second
}

// BatchSize returns the effective claim size: Batch, or, when Batch is 0,
// enough rows to fill every worker's record-ahead window once
// (concurrency×(record_ahead+1)), and at least 2×concurrency.
func (s Settings) BatchSize() int {
	if s.Batch > 0 {
		return s.Batch
	}
	return s.Concurrency * max(2, s.RecordAhead+1)
}

// Validate reports every invalid setting as strictyaml.Errors, each naming
// its key, so the configuration can name the key's line.
func (s Settings) Validate() error {
	var errs strictyaml.Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, &strictyaml.Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "must be a positive duration such as \"30s\", got %s", d)
		}
	}
	if s.Concurrency < 1 {
		bad("concurrency", "must be at least 1, got %d", s.Concurrency)
	}
	if s.RateLimit < 0 {
		bad("rate_limit", "must be 0 (unlimited) or a positive number of requests per second, got %g", s.RateLimit)
	}
	positive("connect_timeout", s.ConnectTimeout)
	positive("timeout", s.Timeout)
	if s.ConnectTimeout > s.Timeout && s.Timeout > 0 {
		bad("connect_timeout", "must not exceed timeout (%s), got %s", s.Timeout, s.ConnectTimeout)
	}
	switch {
	case s.Lease < 0:
		bad("lease", "must be 0 (meaning 2×timeout+30s) or a positive duration, got %s", s.Lease)
	case s.Lease > 0 && s.Lease <= s.Timeout:
		bad("lease", "must exceed timeout (%s), else a slow request's row could be sent twice; got %s", s.Timeout, s.Lease)
	}
	if s.RecordAhead < 0 {
		bad("record_ahead", "must be 0 or positive, got %d", s.RecordAhead)
	}
	if s.Batch < 0 {
		bad("batch", "must be 0 (meaning 2×concurrency) or positive, got %d", s.Batch)
	}
	positive("poll_interval", s.PollInterval)
	if _, _, err := mime.ParseMediaType(s.ContentType); err != nil {
		bad("content_type", "%q is not a media type such as %q: %v", s.ContentType, DefaultContentType, err)
	}
	r := s.Retry
	positive("retry.transient.base", r.Transient.Base)
	if r.Transient.Cap < r.Transient.Base {
		bad("retry.transient.cap", "must be at least retry.transient.base (%s), got %s", r.Transient.Base, r.Transient.Cap)
	}
	positive("retry.transient.max_age", r.Transient.MaxAge)
	positive("retry.not_found.interval", r.NotFound.Interval)
	positive("retry.not_found.max_age", r.NotFound.MaxAge)
	positive("retry.server_error.interval", r.ServerError.Interval)
	if r.ServerError.MaxTries < 1 {
		bad("retry.server_error.max_tries", "must be at least 1, got %d", r.ServerError.MaxTries)
	}
	if r.CircuitAfter < 1 {
		bad("retry.circuit_after", "must be at least 1, got %d", r.CircuitAfter)
	}
	positive("retry.pause_probe", r.PauseProbe)
	positive("retry.retry_after_cap", r.RetryAfterCap)
	if len(errs) == 0 {
		return nil
	}
	return errs
}
