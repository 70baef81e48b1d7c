package outboxtest

import (
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
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

// SupersessionSchema is the schema version before the waiting, superseded
// and probably-delivered states existed.
const SupersessionSchema = 6

// SupersessionUpgrade checks the migration that adds those states, on a
// database db that the caller has brought to schema SupersessionSchema: the
// rows and attempts an older cvbridge left keep their ids and states, the
// attempts stay with their results (on SQLite the table is rebuilt), no id
// is given out twice, and the new rules work on the migrated data. open
// migrates the database and opens the store on it.
func SupersessionUpgrade(t *testing.T, db *sqlx.DB, open func() outbox.Store) {
	ctx := t.Context()
	ms := Epoch.UnixMilli()
	put := func(person string, st outbox.State) int64 {
		var id int64
		require.NoError(t, db.GetContext(ctx, &id, db.Rebind(`INSERT INTO results
			(target, connection, elearningcode, person_id, person_key, body, body_hash, state, active, created_at, updated_at)
			VALUES ('cv', 'csv', 'E1', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			person, person, []byte("<old "+person+"/>"), []byte(person+string(st)), string(st), st.Active(), ms, ms))
		_, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO attempts (result_id, at, status, class) VALUES (?, ?, 503, 'transient')`), id, ms)
		require.NoError(t, err)
		return id
	}
	delivered := put("p1", outbox.StateDelivered)
	sending := put("p2", outbox.StateSending)
	gone := put("p3", outbox.StateCancelled)
	_, err := db.ExecContext(ctx, db.Rebind(`DELETE FROM results WHERE id = ?`), gone) // purged: its id is not reused
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `UPDATE results SET lease_owner = 'old', lease_until = 0, next_attempt_at = 0 WHERE state = 'sending'`)
	require.NoError(t, err)

	s := open()
	var attempts int
	require.NoError(t, db.GetContext(ctx, &attempts, `SELECT COUNT(*) FROM attempts`))
	assert.Equal(t, 2, attempts, "the attempts stay with their results")
	it, got, err := s.Get(ctx, delivered)
	require.NoError(t, err)
	assert.Equal(t, outbox.StateDelivered, it.State)
	assert.Len(t, got, 1)
	assert.False(t, it.OutcomeUnknown)
	assert.Zero(t, it.WaitingID)

	// The row an older daemon was sending: taken over with its outcome unknown,
	// and a correction waits for it.
	claimed, err := s.Claim(ctx, "cv", "new", 10, Epoch, time.Minute)
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	assert.Equal(t, sending, claimed[0].ID)
	assert.True(t, claimed[0].OutcomeUnknown)
	var out outbox.EnqueueOutcome
	require.NoError(t, s.InTx(ctx, func(tx outbox.Tx) error {
		out, err = tx.Enqueue(ctx, outbox.NewResult{Target: "cv", Connection: "csv", ElearningCode: "E1", PersonID: "p2",
			Body: []byte("<new p2/>")}, outbox.EnqueuePolicy{ReplacePending: true})
		return err
	}))
	assert.Equal(t, outbox.Waiting, out)
	rows, err := s.List(ctx, outbox.Filter{PersonID: "p2"})
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Greater(t, rows[0].ID, gone, "no id is given out twice")

	// The retention erases a migrated delivered result and keeps it, with
	// its attempt, as the record that Coachview accepted the pair.
	n, err := s.Purge(ctx, Epoch.Add(time.Hour*24*365*10), 10)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the delivered row, erased")
	require.NoError(t, db.GetContext(ctx, &attempts, `SELECT COUNT(*) FROM attempts`))
	assert.Equal(t, 2, attempts, "the erased row keeps its attempt")
	it, _, err = s.Get(ctx, delivered)
	require.NoError(t, err)
	assert.Nil(t, it.Body)
}

// InboundOrderSchema is the schema version before inbound messages could
// be superseded.
const InboundOrderSchema = 7

// InboundOrderUpgrade checks the migration that adds the superseded state
// of inbound messages, on a database db the caller has brought to schema
// InboundOrderSchema: the messages an older cvbridge left keep their ids,
// fields and states, and the ordering rule works on them. open migrates the
// database and opens the inbound store on it.
func InboundOrderUpgrade(t *testing.T, db *sqlx.DB, open func() inboundstore.Store) {
	ctx := t.Context()
	ms := Epoch.UnixMilli()
	put := func(key, action, state string) int64 {
		var id int64
		require.NoError(t, db.GetContext(ctx, &id, db.Rebind(`INSERT INTO inbound_messages
			(source, dedupe_key, received_at, verified, body, action, person_id, elearningcode, first_name, email,
				state, next_attempt_at, updated_at, erased_at)
			VALUES ('link', ?, ?, 'bearer', ?, ?, 'P1', 'E1', 'Jan', 'jan@example.org', ?, ?, ?, NULL) RETURNING id`),
			key, ms, []byte(`{"k":"`+key+`"}`), action, state, ms, ms))
		return id
	}
	done := put("a", "enrol", "done")
	waiting := put("b", "enrol", "pending")
	gone := put("c", "unenrol", "failed")
	_, err := db.ExecContext(ctx, db.Rebind(`DELETE FROM inbound_messages WHERE id = ?`), gone) // purged: its id is not reused
	require.NoError(t, err)

	s := open()
	m, err := s.GetMessage(ctx, done)
	require.NoError(t, err)
	assert.Equal(t, []string{"link", "a", "enrol", "P1", "E1", "Jan", "jan@example.org", string(inboundstore.StateDone), `{"k":"a"}`},
		[]string{m.Source, m.DedupeKey, string(m.Action), m.PersonID, m.ElearningCode, m.FirstName, m.Email, string(m.State), string(m.Body)})

	later, _, err := s.SaveMessage(ctx, inboundstore.Message{Source: "link", DedupeKey: "d", Verified: inboundstore.VerifiedBearer,
		Action: inboundstore.ActionUnenrol, PersonID: "P1", ElearningCode: "E1", State: inboundstore.StatePending}, inboundstore.Rearm)
	require.NoError(t, err)
	assert.Greater(t, later.ID, gone, "no id is given out twice")
	m, err = s.GetMessage(ctx, waiting)
	require.NoError(t, err)
	assert.Equal(t, inboundstore.StateSuperseded, m.State, "the old pending enrolment is superseded by the later unenrolment")
}

// CountsSchema is the schema version before the results' counters existed.
const CountsSchema = 8

// CountsUpgrade checks the migration that adds the results' counters, on a
// database db that the caller has brought to schema CountsSchema: the
// counters start at what the rows an older cvbridge left add up to, the
// charts start with the last two days' deliveries, and the counters follow
// the rows from then on. open migrates the database and opens the store on
// it.
func CountsUpgrade(t *testing.T, db *sqlx.DB, open func() outbox.Store) {
	ctx := t.Context()
	recent := time.Now().Add(-time.Hour).UnixMilli()
	put := func(target, person string, st outbox.State, at int64) {
		var delivered any
		if st == outbox.StateDelivered {
			delivered = at
		}
		_, err := db.ExecContext(ctx, db.Rebind(`INSERT INTO results
			(target, connection, elearningcode, person_id, person_key, body, body_hash, state, active, next_attempt_at, created_at, updated_at, delivered_at)
			VALUES (?, 'csv', 'E1', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			target, person, person, []byte("<old/>"), []byte(person), string(st), st.Active(), at, at, at, delivered)
		require.NoError(t, err)
	}
	old := Epoch.Add(-30 * 24 * time.Hour).UnixMilli()
	for i, st := range outbox.States {
		put("cv", fmt.Sprintf("p%d", i), st, old)
	}
	put("cv", "recent", outbox.StateDelivered, recent)
	put("cv", "parked", outbox.StateFailed, recent)
	put("beta", "b1", outbox.StatePending, old)
	put("beta", "b2", outbox.StatePending, old)

	s := open()
	AssertCounts(t, s, db)
	counts, err := s.Counts(ctx, "cv")
	require.NoError(t, err)
	assert.Equal(t, 2, counts[outbox.StateDelivered])
	hours, err := s.Hours(ctx, "cv", time.Now().Add(-3*time.Hour), time.Now())
	require.NoError(t, err)
	var delivered, failed int
	for _, h := range hours {
		delivered, failed = delivered+h.Delivered, failed+h.Failed
	}
	assert.Equal(t, 1, delivered, "the recent delivery is in the chart, the old one is not")
	assert.Equal(t, 1, failed)

	claimed, err := s.Claim(ctx, "beta", "w", 10, Epoch, time.Minute)
	require.NoError(t, err)
	require.Len(t, claimed, 2)
	AssertCounts(t, s, db)
}

// The schema versions before inbound_messages.person_key existed: SQLite's
// migrations have one more version before it than PostgreSQL's.
const (
	InboundPersonKeySchemaSQLite   = 10
	InboundPersonKeySchemaPostgres = 9
)

// InboundPersonKeyUpgrade checks the migration that adds
// inbound_messages.person_key, on a database db the caller has brought to
// the schema before it (InboundPersonKeySchemaSQLite or
// InboundPersonKeySchemaPostgres): every message an older cvbridge left
// gets source.PersonKey of its person id, Unicode case folded and white
// space trimmed, which neither backend's SQL computes alike, and the
// ordering rule and forget find a person's messages by it. open migrates
// the database and opens the inbound store on it.
func InboundPersonKeyUpgrade(t *testing.T, db *sqlx.DB, open func() inboundstore.Store) {
	ctx := t.Context()
	ms := Epoch.UnixMilli()
	put := func(key, action, person, state string) int64 {
		var id int64
		require.NoError(t, db.GetContext(ctx, &id, db.Rebind(`INSERT INTO inbound_messages
			(source, dedupe_key, received_at, verified, body, action, person_id, elearningcode, first_name, email,
				state, next_attempt_at, updated_at)
			VALUES ('link', ?, ?, 'bearer', ?, ?, ?, 'E1', 'Eva', 'eva@example.org', ?, ?, ?) RETURNING id`),
			key, ms, []byte(`{"k":"`+key+`"}`), action, person, state, ms, ms))
		return id
	}
	pending := put("a", "enrol", "ÉVA", "pending")
	want := map[int64]string{
		pending:                                   "éva",
		put("b", "enrol", "éva", "done"):          "éva",
		put("c", "unenrol", " Éva ", "failed"):    "éva",
		put("d", "enrol", "\u00a0ÉVA\t", "done"):  "éva", // no-break space: not SQL's white space
		put("e", "enrol", "  P-42 ", "pending"):   "p-42",
		put("f", "enrol", "ØRSTED", "superseded"): "ørsted",
		put("g", "unmapped", "", "unmapped"):      "",
	}

	s := open()
	var rows []struct {
		ID        int64  `db:"id"`
		PersonKey string `db:"person_key"`
	}
	require.NoError(t, db.SelectContext(ctx, &rows, `SELECT id, person_key FROM inbound_messages ORDER BY id`))
	got := map[int64]string{}
	for _, r := range rows {
		got[r.ID] = r.PersonKey
	}
	assert.Equal(t, want, got, "each message's person key")

	later, _, err := s.SaveMessage(ctx, inboundstore.Message{Source: "link", DedupeKey: "h", Verified: inboundstore.VerifiedBearer,
		Action: inboundstore.ActionUnenrol, PersonID: "Éva", ElearningCode: "E1", State: inboundstore.StatePending}, inboundstore.Rearm)
	require.NoError(t, err)
	m, err := s.GetMessage(ctx, pending)
	require.NoError(t, err)
	assert.Equal(t, inboundstore.StateSuperseded, m.State, "the old pending enrolment of ÉVA is superseded by Éva's later unenrolment")
	assert.Equal(t, "ÉVA", m.PersonID, "the id is kept as received")

	p, ok := s.(inboundstore.PersonalData)
	require.True(t, ok, "%T is no inboundstore.PersonalData", s)
	rep, err := p.ForgetPerson(ctx, "éva")
	require.NoError(t, err)
	assert.Equal(t, 5, rep.Messages, "the four messages the older cvbridge left and the new one")
	assert.Equal(t, 1, rep.Cancelled, "the new unenrolment, pending")
	m, err = s.GetMessage(ctx, later.ID)
	require.NoError(t, err)
	assert.True(t, m.Erased())
}
