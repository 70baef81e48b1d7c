package outbox

import (
	"context"
	"fmt"
)

// NewerSchemaError is the refusal of a database whose schema a newer
// cvbridge wrote: at version Current, while this build knows versions up
// to Known.
type NewerSchemaError struct {
	Current int64
	Known   int
}

func (e *NewerSchemaError) Error() string {
	return fmt.Sprintf("database schema %d is newer than this cvbridge knows (%d): upgrade cvbridge or restore a matching backup",
		e.Current, e.Known)
}

// SchemaChecker is a store that several daemons may share (PostgreSQL),
// and so one that another cvbridge may migrate while this one runs.
type SchemaChecker interface {
	// CheckSchema fails unless the database is at exactly the schema
	// version this build knows; a *NewerSchemaError when a newer cvbridge
	// migrated it.
	CheckSchema(ctx context.Context) error
}
