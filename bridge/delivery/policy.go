package delivery

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	retry "github.com/sethvargo/go-retry"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// jitterFraction is how far a jitter source's ±1 moves a retry delay: ±20%.
const jitterFraction = 0.2

// maxBackoffSteps bounds the Next calls that rebuild an exponential
// backoff: past 64 doublings every duration has overflowed to the cap.
const maxBackoffSteps = 64

// ForbiddenReason is the pause reason a 403 sets on its target.
const ForbiddenReason = "Coachview refused the signature (403): check the target's secret and hash algorithm"

// nth returns the n-th delay of a freshly built backoff (n counts from 1).
// Rows are persisted between tries, so the backoff is rebuilt each time
// rather than kept in memory.
func nth(b retry.Backoff, n int) time.Duration {
	var d time.Duration
	for range max(1, min(n, maxBackoffSteps)) {
		d, _ = b.Next() // these backoffs never stop
	}
	return d
}

// baseDelay is the un-jittered delay before the next try after the streak-th
// consecutive outcome of class c.
func (r RetrySettings) baseDelay(c Class, streak int) time.Duration {
	switch c {
	case NotFound:
		return nth(retry.NewConstant(r.NotFound.Interval), streak)
	case ServerError:
		return nth(retry.NewConstant(r.ServerError.Interval), streak)
	default:
		return nth(retry.WithCappedDuration(r.Transient.Cap, retry.NewExponential(r.Transient.Base)), streak)
	}
}

// jittered moves d by j×20%, j in [-1, 1] (clamped).
func jittered(d time.Duration, j float64) time.Duration {
	j = max(-1, min(1, j))
	return time.Duration(float64(d) * (1 + jitterFraction*j))
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date.
// ok is false when the header is absent or unreadable.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, int64(1<<62/time.Second))) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(0, at.Sub(now)), true
}

// response is what one POST returned, as far as the policy needs it.
type response struct {
	status     int
	err        error         // no response: connection error or timeout
	timedOut   bool          // err is the request's own timeout
	written    bool          // with err: the whole request was written before it failed
	text       string        // Coachview's answer, whitespace collapsed, for LastError
	excerpt    string        // the answer's first bytes, for the attempt record
	retryAfter time.Duration // valid when hasRetry
	hasRetry   bool          // the answer carried a readable Retry-After
	location   string        // Location of a redirect
	duration   time.Duration
}

// decision is what an outcome does to its row.
type decision struct {
	state     outbox.State
	next      time.Time
	tries     int
	streak    int
	since     time.Time
	lastClass Class
	lastError string
}

// decide applies the retry policy to an attempt on it that ended in class c
// at now. jitter is in [-1, 1].
func (s Settings) decide(it outbox.Item, c Class, res response, now time.Time, jitter float64) decision {
	if c == Forbidden {
		// Not the message's fault: the row waits, its schedule untouched.
		return decision{
			state: outbox.StatePending, next: now, tries: it.Tries,
			streak: it.Streak, since: it.StreakSince, lastClass: Class(it.LastClass),
			lastError: ForbiddenReason + said(res.text),
		}
	}
	d := decision{tries: it.Tries + 1, streak: 1, since: now, lastClass: c}
	prev := Class(it.LastClass)
	if it.Streak > 0 && (prev == c || serverTrouble(prev) && serverTrouble(c)) {
		// The streak counts outcomes of one class in a row: the backoff
		// and server_error's max_tries follow it. Its start is kept
		// across 500s and 503s taking turns, so transient's max_age
		// still parks a row Coachview never takes.
		if prev == c {
			d.streak = it.Streak + 1
		}
		if !it.StreakSince.IsZero() {
			d.since = it.StreakSince
		}
	}
	r := s.Retry
	park := func(msg string) decision {
		d.state, d.lastError = outbox.StateFailed, msg
		return d
	}
	retryIn := func(delay time.Duration, msg string) decision {
		d.state, d.next, d.lastError = outbox.StatePending, now.Add(delay), msg
		return d
	}
	switch c {
	case Delivered:
		d.state = outbox.StateDelivered
		return d
	case Rejected:
		return park(fmt.Sprintf("Coachview rejected the message as invalid (%s)%s", statusText(res.status), said(res.text)))
	case Misconfigured:
		return park(misconfiguredText(res))
	case NotFound:
		msg := fmt.Sprintf("Coachview found no person %q or no enrolment in e-learning %q, or the enrolment is no longer 'ingepland' (%s)%s",
			it.PersonID, it.ElearningCode, statusText(res.status), said(res.text))
		if it.OutcomeUnknown {
			// An earlier attempt may have been registered: Coachview then
			// takes the enrolment out of 'ingepland' and answers 404.
			d.state = outbox.StateProbablyDelivered
			d.lastError = msg + "; an earlier attempt's outcome is unknown (no answer came back), so Coachview probably " +
				"registered the result then. Check it in Coachview, then `cvbridge outbox confirm` it, or `outbox retry` it"
			return d
		}
		if now.Sub(d.since) >= r.NotFound.MaxAge {
			return park(fmt.Sprintf("%s; still so after %s: check the person's ExternId and the enrolment in Coachview, then retry",
				msg, humanDuration(r.NotFound.MaxAge)))
		}
		return retryIn(jittered(r.baseDelay(c, d.streak), jitter), msg)
	case ServerError:
		msg := fmt.Sprintf("Coachview failed while processing the message (%s)%s", statusText(res.status), said(res.text))
		if d.streak >= r.ServerError.MaxTries {
			return park(fmt.Sprintf("%s; %d times in a row: contact Coachview with this message", msg, d.streak))
		}
		return retryIn(jittered(r.baseDelay(c, d.streak), jitter), msg)
	default: // Transient
		msg := transientText(res, s.Timeout)
		if now.Sub(d.since) >= r.Transient.MaxAge {
			return park(fmt.Sprintf("Coachview unreachable for %s: %s", humanDuration(r.Transient.MaxAge), msg))
		}
		delay := jittered(r.baseDelay(c, d.streak), jitter)
		if res.hasRetry {
			delay = max(delay, min(res.retryAfter, r.RetryAfterCap))
		}
		return retryIn(delay, msg)
	}
}

// serverTrouble reports whether c is Coachview failing rather than the
// message: a 500 or a transient failure.
func serverTrouble(c Class) bool { return c == ServerError || c == Transient }

// said quotes Coachview's text for an error sentence, or says it gave none.
func said(text string) string {
	if text == "" {
		return " without an explanation"
	}
	return fmt.Sprintf(": Coachview said %q", text)
}

func statusText(status int) string {
	if t := http.StatusText(status); t != "" {
		return fmt.Sprintf("%d %s", status, t)
	}
	return strconv.Itoa(status)
}

func misconfiguredText(res response) string {
	switch {
	case res.status >= 300 && res.status < 400:
		return fmt.Sprintf("Coachview answered with a redirect (%s) to %q, which is not followed: check the target's url", statusText(res.status), res.location)
	case res.status == http.StatusMethodNotAllowed:
		return fmt.Sprintf("the target's url refused the POST (%s)%s: check that it is Coachview's 'URL Resultaten'", statusText(res.status), said(res.text))
	default:
		return fmt.Sprintf("Coachview answered %s, which the results link does not use%s: check the target's url", statusText(res.status), said(res.text))
	}
}

func transientText(res response, timeout time.Duration) string {
	switch {
	case res.timedOut:
		return fmt.Sprintf("Coachview did not answer within %s", timeout)
	case res.err != nil:
		return fmt.Sprintf("could not reach Coachview: %v", res.err)
	default:
		return fmt.Sprintf("Coachview is temporarily unavailable (%s)%s", statusText(res.status), said(res.text))
	}
}

// humanDuration writes whole days as days ("14 days"), anything else as Go does.
func humanDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == day:
		return "1 day"
	case d > 0 && d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}
