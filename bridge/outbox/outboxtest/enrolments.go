package outboxtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
)

// lists returns the fixture's store as the enrolment list and message
// purger, failing when the backend lacks them.
func (f *inboundFixture) lists() interface {
	inboundstore.EnrolmentList
	inboundstore.MessagePurger
} {
	f.t.Helper()
	l, ok := f.s.(interface {
		inboundstore.EnrolmentList
		inboundstore.MessagePurger
	})
	require.True(f.t, ok, "%T implements neither inboundstore.EnrolmentList nor inboundstore.MessagePurger", f.s)
	return l
}

// carriedOut saves m, claims it and finishes it as st, routed to
// connection, and returns its id.
func (f *inboundFixture) carriedOut(m inboundstore.Message, connection string, st inboundstore.State) int64 {
	f.t.Helper()
	saved, _ := f.save(m, inboundstore.KeepExisting)
	_, ok, err := f.s.ClaimMessage(f.ctx, saved.ID, "w", f.clk.Now(), time.Minute)
	require.NoError(f.t, err)
	require.True(f.t, ok)
	require.NoError(f.t, f.s.FinishMessage(f.ctx, inboundstore.Finish{ID: saved.ID, Owner: "w", State: st, At: f.clk.Now(), Connection: connection}))
	return saved.ID
}

// enrolMsg is a pending enrol (or, with unenrol, unenrol) message of person for code.
func enrolMsg(key, person, code string, unenrol bool) inboundstore.Message {
	m := msg("link", key)
	m.PersonID, m.ElearningCode = person, code
	if unenrol {
		m.Action, m.FirstName, m.Infix, m.LastName, m.Email, m.Body = inboundstore.ActionUnenrol, "", "", "", "", nil
	}
	return m
}

func (f *inboundFixture) enrolments(filter inboundstore.EnrolmentFilter) []inboundstore.Enrolment {
	f.t.Helper()
	es, err := f.lists().ListEnrolments(f.ctx, filter)
	require.NoError(f.t, err)
	return es
}

func testEnrolmentList(t *testing.T, f *inboundFixture) {
	first := f.carriedOut(enrolMsg("e1", "P-1", "E1", false), "moodle", inboundstore.StateDone)
	es := f.enrolments(inboundstore.EnrolmentFilter{})
	require.Len(t, es, 1)
	e := es[0]
	assert.Equal(t, inboundstore.Enrolment{Connection: "moodle", PersonID: "P-1", ElearningCode: "E1",
		State: inboundstore.EnrolmentActive, MessageID: first, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}, e)
	sameTime(t, Epoch, e.CreatedAt, "created at")
	sameTime(t, Epoch, e.UpdatedAt, "updated at")

	// The same pair again, the person id in other case: one entry, updated.
	f.clk.Advance(time.Hour)
	again := f.carriedOut(enrolMsg("e2", " p-1 ", "E1", false), "moodle", inboundstore.StateDone)
	es = f.enrolments(inboundstore.EnrolmentFilter{})
	require.Len(t, es, 1, "person ids are compared case-insensitively")
	assert.Equal(t, "p-1", es[0].PersonID, "the id as last received, trimmed")
	assert.Equal(t, again, es[0].MessageID)
	sameTime(t, Epoch, es[0].CreatedAt, "created at is kept")
	sameTime(t, Epoch.Add(time.Hour), es[0].UpdatedAt, "updated at")

	// Unenrolled: the entry stays, with its new state.
	f.clk.Advance(time.Hour)
	un := f.carriedOut(enrolMsg("u1", "P-1", "E1", true), "moodle", inboundstore.StateDone)
	es = f.enrolments(inboundstore.EnrolmentFilter{})
	require.Len(t, es, 1)
	assert.Equal(t, inboundstore.EnrolmentUnenrolled, es[0].State)
	assert.Equal(t, un, es[0].MessageID)

	// Enrolled again.
	f.clk.Advance(time.Hour)
	back := f.carriedOut(enrolMsg("e3", "P-1", "E1", false), "moodle", inboundstore.StateDone)
	es = f.enrolments(inboundstore.EnrolmentFilter{})
	require.Len(t, es, 1)
	assert.Equal(t, inboundstore.EnrolmentActive, es[0].State)
	assert.Equal(t, back, es[0].MessageID)

	// An unenrolment of a pair the bridge never enrolled is recorded too.
	f.carriedOut(enrolMsg("u2", "P-2", "E1", true), "moodle", inboundstore.StateDone)
	// The same person and code in another connection is another entry.
	f.carriedOut(enrolMsg("e4", "P-1", "E1", false), "scorm", inboundstore.StateDone)
	// Neither failures, nor retries, nor messages routed nowhere, nor other actions change the list.
	f.carriedOut(enrolMsg("e5", "P-3", "E1", false), "moodle", inboundstore.StateFailed)
	pending, _ := f.save(enrolMsg("e6", "P-4", "E1", false), inboundstore.KeepExisting)
	_, ok, err := f.s.ClaimMessage(f.ctx, pending.ID, "w", f.clk.Now(), time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, f.s.FinishMessage(f.ctx, inboundstore.Finish{ID: pending.ID, Owner: "w", State: inboundstore.StatePending,
		NextAttemptAt: f.clk.Now().Add(time.Minute), Connection: "moodle"}))
	f.carriedOut(enrolMsg("e7", "P-5", "E1", false), "", inboundstore.StateDone)
	ignored := enrolMsg("i1", "P-6", "E1", false)
	ignored.Action = inboundstore.ActionIgnore
	f.carriedOut(ignored, "moodle", inboundstore.StateDone)

	var got []string
	for _, e := range f.enrolments(inboundstore.EnrolmentFilter{}) {
		got = append(got, e.Connection+" "+e.PersonID+" "+e.ElearningCode+" "+string(e.State))
	}
	assert.Equal(t, []string{"moodle P-1 E1 active", "moodle P-2 E1 unenrolled", "scorm P-1 E1 active"}, got,
		"ordered by connection, person and code")
}

func testEnrolmentFilters(t *testing.T, f *inboundFixture) {
	f.carriedOut(enrolMsg("a", "B-2", "E1", false), "moodle", inboundstore.StateDone)
	f.carriedOut(enrolMsg("b", "a-1", "E2", false), "moodle", inboundstore.StateDone)
	f.carriedOut(enrolMsg("c", "A-1", "E1", false), "moodle", inboundstore.StateDone)
	f.carriedOut(enrolMsg("d", "a-1", "E1", true), "csv", inboundstore.StateDone)
	f.carriedOut(enrolMsg("e", "C-3", "E2", true), "moodle", inboundstore.StateDone)

	keys := func(filter inboundstore.EnrolmentFilter) []string {
		t.Helper()
		var out []string
		for _, e := range f.enrolments(filter) {
			out = append(out, e.Connection+"/"+e.PersonID+"/"+e.ElearningCode)
		}
		n, err := f.lists().CountEnrolments(f.ctx, filter)
		require.NoError(t, err)
		if filter.Limit == 0 {
			assert.Equal(t, len(out), n, "count of %+v", filter)
		}
		return out
	}
	assert.Equal(t, []string{"csv/a-1/E1", "moodle/A-1/E1", "moodle/a-1/E2", "moodle/B-2/E1", "moodle/C-3/E2"}, keys(inboundstore.EnrolmentFilter{}))
	assert.Equal(t, []string{"moodle/A-1/E1", "moodle/a-1/E2", "moodle/B-2/E1", "moodle/C-3/E2"}, keys(inboundstore.EnrolmentFilter{Connection: "moodle"}))
	assert.Equal(t, []string{"csv/a-1/E1", "moodle/A-1/E1", "moodle/a-1/E2"}, keys(inboundstore.EnrolmentFilter{PersonID: "A-1"}))
	assert.Equal(t, []string{"moodle/a-1/E2", "moodle/C-3/E2"}, keys(inboundstore.EnrolmentFilter{ElearningCode: "E2"}))
	assert.Equal(t, []string{"csv/a-1/E1", "moodle/C-3/E2"}, keys(inboundstore.EnrolmentFilter{State: inboundstore.EnrolmentUnenrolled}))
	assert.Equal(t, []string{"moodle/A-1/E1", "moodle/a-1/E2", "moodle/B-2/E1"},
		keys(inboundstore.EnrolmentFilter{Connection: "moodle", State: inboundstore.EnrolmentActive}))
	assert.Empty(t, keys(inboundstore.EnrolmentFilter{Connection: "scorm"}))
	assert.Equal(t, []string{"csv/a-1/E1", "moodle/A-1/E1"}, keys(inboundstore.EnrolmentFilter{Limit: 2}))
	n, err := f.lists().CountEnrolments(f.ctx, inboundstore.EnrolmentFilter{Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, 5, n, "the count ignores the limit")
}

func testEnrolmentAtomicity(t *testing.T, f *inboundFixture) {
	// Lease lost: the message is not finished and the list is not written.
	m, _ := f.save(enrolMsg("lost", "P-1", "E1", false), inboundstore.KeepExisting)
	_, ok, err := f.s.ClaimMessage(f.ctx, m.ID, "old", f.clk.Now(), time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	f.clk.Advance(2 * time.Minute)
	_, ok, err = f.s.ClaimMessage(f.ctx, m.ID, "new", f.clk.Now(), time.Minute)
	require.NoError(t, err)
	require.True(t, ok, "the expired lease is taken over")
	err = f.s.FinishMessage(f.ctx, inboundstore.Finish{ID: m.ID, Owner: "old", State: inboundstore.StateDone, Connection: "moodle"})
	require.ErrorIs(t, err, inboundstore.ErrLeaseLost)
	assert.Empty(t, f.enrolments(inboundstore.EnrolmentFilter{}), "a lost lease writes no list entry")
	got := f.get(m.ID)
	assert.Equal(t, inboundstore.StatePending, got.State)
	assert.Equal(t, "new", got.LeaseOwner)

	// The list entry cannot be written (a message without a person id): the
	// message is not marked done either, and stays leased for a retry.
	bad := enrolMsg("bad", "", "E1", false)
	b, _ := f.save(bad, inboundstore.KeepExisting)
	_, ok, err = f.s.ClaimMessage(f.ctx, b.ID, "w", f.clk.Now(), time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	err = f.s.FinishMessage(f.ctx, inboundstore.Finish{ID: b.ID, Owner: "w", State: inboundstore.StateDone, Connection: "moodle"})
	require.Error(t, err)
	assert.NotErrorIs(t, err, inboundstore.ErrLeaseLost)
	got = f.get(b.ID)
	assert.Equal(t, inboundstore.StatePending, got.State, "done never exists without its list entry")
	assert.Zero(t, got.Attempts)
	assert.Equal(t, "w", got.LeaseOwner)
	assert.Empty(t, f.enrolments(inboundstore.EnrolmentFilter{}))

	// The new owner finishes: state and entry appear together.
	require.NoError(t, f.s.FinishMessage(f.ctx, inboundstore.Finish{ID: m.ID, Owner: "new", State: inboundstore.StateDone, Connection: "moodle"}))
	assert.Equal(t, inboundstore.StateDone, f.get(m.ID).State)
	es := f.enrolments(inboundstore.EnrolmentFilter{})
	require.Len(t, es, 1)
	assert.Equal(t, m.ID, es[0].MessageID)
	assert.ErrorIs(t, f.s.FinishMessage(f.ctx, inboundstore.Finish{ID: m.ID, Owner: "new", State: inboundstore.StateDone, Connection: "moodle"}),
		inboundstore.ErrLeaseLost, "a done message is not finished twice")
}

func testPurgeMessages(t *testing.T, f *inboundFixture) {
	p := f.lists()
	oldDone := f.carriedOut(enrolMsg("done", "P-1", "E1", false), "moodle", inboundstore.StateDone)
	oldFailed := f.carriedOut(enrolMsg("failed", "P-2", "E1", false), "moodle", inboundstore.StateFailed)
	unmappedMsg := msg("webhook:cv", "unmapped")
	unmappedMsg.Action, unmappedMsg.State = inboundstore.ActionUnmapped, inboundstore.StateUnmapped
	oldUnmapped, _ := f.save(unmappedMsg, inboundstore.KeepExisting)
	oldPending, _ := f.save(msg("webhook:cv", "pending"), inboundstore.KeepExisting)
	cutoff := f.clk.Now().Add(time.Minute)
	f.clk.Advance(2 * time.Minute)
	recent := f.carriedOut(enrolMsg("recent", "P-3", "E1", false), "moodle", inboundstore.StateDone)

	n, err := p.PurgeMessages(f.ctx, cutoff, 2)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "at most limit at a time")
	n, err = p.PurgeMessages(f.ctx, cutoff, 100)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the rest of the finished messages before the cutoff")
	for _, id := range []int64{oldDone, oldFailed, oldUnmapped.ID} {
		_, err := f.s.GetMessage(f.ctx, id)
		assert.ErrorIs(t, err, inboundstore.ErrNotFound, "message %d purged", id)
	}
	assert.Equal(t, inboundstore.StatePending, f.get(oldPending.ID).State, "a pending message is never purged")
	assert.Equal(t, inboundstore.StateDone, f.get(recent).State, "a recent message is kept")
	n, err = p.PurgeMessages(f.ctx, cutoff, 100)
	require.NoError(t, err)
	assert.Zero(t, n)
	_, err = p.PurgeMessages(f.ctx, cutoff, 0)
	assert.Error(t, err)

	es := f.enrolments(inboundstore.EnrolmentFilter{})
	require.Len(t, es, 2, "the enrolment list keeps its entries")
	assert.Equal(t, oldDone, es[0].MessageID, "naming the purged message")

	_, out := f.save(unmappedMsg, inboundstore.KeepExisting)
	assert.Equal(t, inboundstore.Inserted, out, "a message resent after its purge is a new message")
}
