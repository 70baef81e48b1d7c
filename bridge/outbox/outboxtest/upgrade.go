package outboxtest

import (
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// ActiveFlagSchema is the schema version before results.active existed.
const ActiveFlagSchema = 5

// ActiveFlagUpgrade checks the migration that adds results.active, on a
// database db that the caller has brought to schema ActiveFlagSchema: the
// rows an older cvbridge left in every state get the flag of their state,
// and the pair rule holds on the rebuilt results_active_pair index. open
// migrates the database and opens the store on it.
func ActiveFlagUpgrade(t *testing.T, db *sqlx.DB, open func() outbox.Store) {
	ctx := t.Context()
	ms := Epoch.UnixMilli()
	ids := map[string]int64{} // "pair/state" → id
	put := func(person string, st outbox.State) {
		var id int64
		require.NoError(t, db.GetContext(ctx, &id, db.Rebind(`INSERT INTO results
			(target, connection, elearningcode, person_id, person_key, body, body_hash, state, created_at, updated_at)
			VALUES ('cv', 'csv', 'E1', ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			person, person, []byte("<old "+person+"/>"), []byte(person+string(st)), string(st), ms, ms))
		ids[person+"/"+string(st)] = id
	}
	// p1 has the history an older cvbridge leaves beside its delivered row.
	for _, st := range []outbox.State{outbox.StateRejected, outbox.StateIgnored, outbox.StateCancelled, outbox.StateDelivered} {
		put("p1", st)
	}
	put("p2", outbox.StateFailed)
	put("p3", outbox.StatePending)
	put("p4", outbox.StateSending)

	s := open()
	var rows []struct {
		ID     int64  `db:"id"`
		State  string `db:"state"`
		Active bool   `db:"active"`
	}
	require.NoError(t, db.SelectContext(ctx, &rows, `SELECT id, state, active FROM results ORDER BY id`))
	require.Len(t, rows, 7)
	for _, r := range rows {
		assert.Equal(t, outbox.State(r.State).Active(), r.Active, "row #%d (%s)", r.ID, r.State)
	}

	// The pair rule reads the flag: p1's delivered row still holds the pair.
	err := s.Retry(ctx, ids["p1/cancelled"], Epoch)
	assert.ErrorIs(t, err, outbox.ErrState, "the cancelled row cannot come back beside the delivered one")
	var out outbox.EnqueueOutcome
	require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error {
		var err error
		out, err = tx.Enqueue(ctx, outbox.NewResult{Target: "cv", Connection: "csv", ElearningCode: "E1", PersonID: "P1",
			Body: []byte("<new/>")}, outbox.EnqueuePolicy{})
		return err
	}))
	assert.Equal(t, outbox.Ignored, out, "a new completion of a delivered pair is kept as ignored")
	_, err = db.ExecContext(ctx, db.Rebind(`INSERT INTO results
		(target, connection, elearningcode, person_id, person_key, state, active, created_at, updated_at)
		VALUES ('cv', 'csv', 'E1', 'p1', 'p1', 'pending', TRUE, ?, ?)`), ms, ms)
	assert.Error(t, err, "a second active row for the pair is refused by the index")
}
