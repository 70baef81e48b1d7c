package postgres

import "github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"

// The queries whose plans the tests check.
var (
	ClaimQuery     = claimQuery
	NextDueQuery   = nextDueQuery
	ActiveRowQuery = activeRowQuery
	PurgeQuery     = sqlcore.PurgeQuery(skipLocked)
)
