package scorm

import (
	"context"
	"fmt"
	"strings"

	"github.com/cvbridge/cvbridge/bridge/source"
)

// Enrol runs enrol_sql in a transaction with the enrolment's fields bound
// to :person_id, :elearning_code, :first_name, :infix, :last_name and
// :email. The statement must be harmless to repeat (an upsert, or an
// INSERT … WHERE NOT EXISTS), as Coachview may send an enrolment again.
func (e *EnrollingSource) Enrol(ctx context.Context, en source.Enrolment) error {
	return e.run(ctx, "enrol_sql", e.cfg.enrol, map[string]any{
		paramPersonID: strings.TrimSpace(en.PersonID), paramCode: strings.TrimSpace(en.ElearningCode),
		"first_name": en.FirstName, "infix": en.Infix, "last_name": en.LastName, "email": en.Email,
	})
}

// Unenrol runs unenrol_sql with :person_id and :elearning_code bound (the
// name and e-mail parameters are empty). Removing nothing is not an error.
func (e *EnrollingSource) Unenrol(ctx context.Context, personID, elearningCode string) error {
	return e.run(ctx, "unenrol_sql", e.cfg.unenrol, map[string]any{
		paramPersonID: strings.TrimSpace(personID), paramCode: strings.TrimSpace(elearningCode),
		"first_name": "", "infix": "", "last_name": "", "email": "",
	})
}

func (e *EnrollingSource) run(ctx context.Context, key string, n *namedSQL, values map[string]any) error {
	q, args := n.bind(e.cfg.Driver, values)
	tx, err := e.enrolDB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("scorm: %s: begin transaction: %w", key, err)
	}
	defer func() { _ = tx.Rollback() }() // after Commit this is a no-op
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("scorm: %s for person %s, e-learning %s: %w", key, values[paramPersonID], values[paramCode], err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("scorm: %s: commit: %w", key, err)
	}
	return nil
}
