package delivery

import "net/http"

// Class is what an attempt's outcome means for the row and the target. It is
// stored as the attempt's class and as the row's LastClass.
type Class string

// The outcome classes, after the status-code table of the results link.
const (
	// Delivered: Coachview processed the result (200). Never sent again.
	Delivered Class = "delivered"
	// Rejected: the message itself is wrong (400). Parked at once.
	Rejected Class = "rejected"
	// Misconfigured: the target URL is wrong (405, other non-retryable 4xx,
	// and 3xx, since redirects are not followed). Parked at once.
	Misconfigured Class = "misconfigured"
	// Forbidden: the signature was refused (403). The whole target pauses.
	Forbidden Class = "forbidden"
	// NotFound: the person or the enrolment is unknown to Coachview, or the
	// enrolment is no longer 'ingepland' (404). Retried slowly for a bounded time.
	NotFound Class = "not_found"
	// ServerError: Coachview failed while processing (500). A few slow retries.
	ServerError Class = "server_error"
	// Transient: Coachview is unreachable or temporarily unavailable (503,
	// 429, 408, 502, 504, other 5xx, connection errors and timeouts).
	// Retried with exponential backoff.
	Transient Class = "transient"
)

// Classify maps an HTTP answer to its class: status is the response status,
// err the error of a request that got no response (status is then ignored).
// Any 2xx counts as delivered, because sending a pair again after Coachview
// may have registered it is worse than missing an unusual success code.
func Classify(status int, err error) Class {
	if err != nil {
		return Transient
	}
	switch {
	case status >= 200 && status < 300:
		return Delivered
	case status == http.StatusBadRequest:
		return Rejected
	case status == http.StatusForbidden:
		return Forbidden
	case status == http.StatusNotFound:
		return NotFound
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout:
		return Transient
	case status == http.StatusInternalServerError:
		return ServerError
	case status >= 500 && status < 600:
		return Transient
	default: // 1xx that reached us, 3xx, and every other 4xx
		return Misconfigured
	}
}

// outcomeUnknown reports whether the result of an attempt that ended as
// res may have reached Coachview although no answer of Coachview's came
// back: the request was written and then no response arrived (a timeout, a
// connection cut), or a gateway in front of Coachview answered that its
// upstream failed or did not answer in time (502, 504). A failure to
// connect, or a request cut before it was written whole, sent nothing.
func outcomeUnknown(res response) bool {
	if res.err != nil {
		return res.written
	}
	return res.status == http.StatusBadGateway || res.status == http.StatusGatewayTimeout
}
