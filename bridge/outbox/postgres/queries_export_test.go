package postgres

// The queries whose plans the tests check.
var (
	ClaimQuery     = claimQuery
	NextDueQuery   = nextDueQuery
	ActiveRowQuery = activeRowQuery
	PurgeQuery     = purgeQuery
)
