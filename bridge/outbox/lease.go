package outbox

import (
	"context"
	"time"
)

// Leaser hands out named, expiring leases, so that work which must run on
// one daemon at a time (polling an LMS connection) does, while several
// daemons share one store. A lease that its holder stops renewing (the
// daemon died) expires and may be taken by another owner.
//
// On SQLite (one machine) leases compare the callers' clocks; on
// PostgreSQL, shared by daemons on several machines, the server's clock
// decides, and now is not used.
type Leaser interface {
	// AcquireLease takes or renews the lease called name for owner until
	// now+ttl. It returns true when owner holds the lease afterwards, and
	// false (and changes nothing) when another owner holds it unexpired,
	// that is until a time after now. An owner may renew its own lease even
	// after it expired, as long as nobody else took it meanwhile.
	AcquireLease(ctx context.Context, name, owner string, ttl time.Duration, now time.Time) (bool, error)
	// ReleaseLease gives up owner's lease called name, so another owner
	// may take it at once. Releasing a lease owner does not hold (never
	// held, expired and taken by another, or already released) changes
	// nothing and is not an error.
	ReleaseLease(ctx context.Context, name, owner string) error
}
