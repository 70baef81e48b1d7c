package sqlinbound

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/source"
)

// FillPersonKeys is the step in Go (sqlcore.Step) of the migration that
// adds inbound_messages.person_key (SQLite's 0011, PostgreSQL's 0010): it
// gives every message whose key, as the migration's SQL filled it in, is
// not source.PersonKey of its person id that key. SQL cannot compute the
// key on either backend: SQLite's lower() folds only ASCII letters,
// PostgreSQL's folds as the database's locale says, and neither's trim
// removes all of Unicode's white space. So the migration's statement fills
// in every key in one pass, right for the ids of plain ASCII, and this step
// reads every row once and rewrites only the keys that differ.
func FillPersonKeys(ctx context.Context, tx *sqlx.Tx) error {
	type fix struct {
		id  int64
		key string
	}
	var fixes []fix
	rows, err := tx.QueryxContext(ctx, `SELECT id, person_id, person_key FROM inbound_messages`)
	if err != nil {
		return fmt.Errorf("read the person ids of inbound messages: %w", err)
	}
	for rows.Next() {
		var (
			id          int64
			person, key string
		)
		if err := rows.Scan(&id, &person, &key); err != nil {
			_ = rows.Close() // the scan's error is the one to report
			return fmt.Errorf("read the person ids of inbound messages: %w", err)
		}
		if want := source.PersonKey(person); want != key {
			fixes = append(fixes, fix{id, want})
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the person ids of inbound messages: %w", err)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("read the person ids of inbound messages: %w", err)
	}
	for _, f := range fixes {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE inbound_messages SET person_key = ? WHERE id = ?`), f.key, f.id); err != nil {
			return fmt.Errorf("set the person key of inbound message %d: %w", f.id, err)
		}
	}
	return nil
}
