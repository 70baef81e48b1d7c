package delivery

import (
	"time"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// Outcome is what one delivery attempt came to, as reported to
// Options.Observe: enough for metrics, nothing personal.
type Outcome struct {
	// Target is the target's name.
	Target string
	// Class is what Coachview's answer (or its absence) meant.
	Class Class
	// State is the row's state after the attempt: delivered, pending (a
	// retry is scheduled, or the target paused on a 403) or failed (parked).
	State outbox.State
	// Attempt counts the attempts at the row's current payload, this one
	// included; more than 1 means this attempt was a retry.
	Attempt int
	// Status is the HTTP status, 0 when no response came.
	Status int
	// Duration is how long the request took.
	Duration time.Duration
}
