//go:build !unix

package daemon

import "os"

// checkStoreOwner has nothing to check where there are no Unix owners.
func checkStoreOwner(string) error { return nil }

// LockSQLiteOutbox does not lock where there is no flock(2).
func LockSQLiteOutbox(string) (*os.File, error) { return nil, nil }
