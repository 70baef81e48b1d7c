package outboxtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
)

// pairMsg is a pending request for person P1 and code E1 with dedupe key
// key: an enrolment, or an unenrolment when unenrol is set.
func pairMsg(source, key string, unenrol bool) inboundstore.Message {
	m := msg(source, key)
	m.PersonID, m.ElearningCode = "P1", "E1"
	if unenrol {
		m.Action = inboundstore.ActionUnenrol
		m.FirstName, m.Infix, m.LastName, m.Email = "", "", "", ""
	}
	return m
}

// testOrderSupersedesWaiting: an enrolment waiting for its retry is
// superseded by a later unenrolment of the pair (another source, another
// case of the person id), and never claimed after it.
func testOrderSupersedesWaiting(t *testing.T, f *inboundFixture) {
	enrol, _ := f.save(pairMsg("link", "e1", false), inboundstore.Rearm)
	require.Equal(t, []int64{enrol.ID}, messageIDs(f.claim("w", 10, time.Minute)))
	f.finish(enrol.ID, "w", inboundstore.StatePending, f.clk.Now().Add(time.Minute), "LMS unreachable")

	un := pairMsg("webhook:cv", "u1", true)
	un.PersonID = "p1"
	unenrol, _ := f.save(un, inboundstore.KeepExisting)
	got := f.get(enrol.ID)
	assert.Equal(t, inboundstore.StateSuperseded, got.State)
	assert.Contains(t, got.LastError, "superseded by message")
	assert.True(t, got.NextAttemptAt.IsZero())

	f.clk.Advance(time.Hour)
	assert.Equal(t, []int64{unenrol.ID}, messageIDs(f.claim("w", 10, time.Minute)), "only the later request is carried out")

	other := msg("link", "x")
	other.ElearningCode = "E1"
	o, _ := f.save(other, inboundstore.Rearm)
	assert.Equal(t, inboundstore.StatePending, f.get(o.ID).State, "another person's request is not touched")
}

// testOrderWaitsForInFlight: a request for a pair whose older request is
// being carried out waits for it; if the older one's attempt ends in a
// retry, the older one is superseded, so the later request decides.
func testOrderWaitsForInFlight(t *testing.T, f *inboundFixture) {
	enrol, _ := f.save(pairMsg("link", "e1", false), inboundstore.Rearm)
	require.Len(t, f.claim("w1", 10, time.Minute), 1)

	unenrol, _ := f.save(pairMsg("link", "u1", true), inboundstore.Rearm)
	assert.Equal(t, inboundstore.StatePending, f.get(enrol.ID).State, "a message being carried out is not superseded")
	assert.Empty(t, f.claim("w2", 10, time.Minute), "the later request waits for the one in flight")
	_, ok, err := f.s.ClaimMessage(f.ctx, unenrol.ID, "link-1", f.clk.Now(), time.Minute)
	require.NoError(t, err)
	assert.False(t, ok, "neither claim takes it")

	f.finish(enrol.ID, "w1", inboundstore.StatePending, f.clk.Now().Add(time.Minute), "LMS unreachable")
	assert.Equal(t, inboundstore.StateSuperseded, f.get(enrol.ID).State, "its retry would undo the later request")
	f.clk.Advance(time.Hour)
	assert.Equal(t, []int64{unenrol.ID}, messageIDs(f.claim("w2", 10, 10*time.Minute)))

	// The in-flight request finishing done lets the later one go next.
	again, _ := f.save(pairMsg("link", "e2", false), inboundstore.Rearm)
	f.clk.Advance(time.Minute)
	assert.Empty(t, f.claim("w3", 10, time.Minute), "the unenrolment is still in flight")
	require.NoError(t, f.s.FinishMessage(f.ctx, inboundstore.Finish{ID: unenrol.ID, Owner: "w2", State: inboundstore.StateDone, At: f.clk.Now(), Connection: "moodle"}))
	assert.Equal(t, []int64{again.ID}, messageIDs(f.claim("w3", 10, time.Minute)))
}

// testOrderRepeatAnsweredOrRearmed: a repeated link request whose outcome is
// still its pair's state is answered from that outcome, not carried out
// again; once a later request changed the pair, the repeat is carried out
// again and supersedes what is pending.
func testOrderRepeatAnsweredOrRearmed(t *testing.T, f *inboundFixture) {
	done := func(id int64) {
		t.Helper()
		_, ok, err := f.s.ClaimMessage(f.ctx, id, "link", f.clk.Now(), time.Minute)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, f.s.FinishMessage(f.ctx, inboundstore.Finish{ID: id, Owner: "link", State: inboundstore.StateDone, At: f.clk.Now(), Connection: "moodle"}))
	}
	enrol, _ := f.save(pairMsg("link", "e1", false), inboundstore.Rearm)
	done(enrol.ID)
	for range 3 {
		again, out := f.save(pairMsg("link", "e1", false), inboundstore.Rearm)
		assert.Equal(t, inboundstore.Existed, out, "answered from the first outcome")
		assert.Equal(t, inboundstore.StateDone, again.State)
	}

	unenrol, _ := f.save(pairMsg("link", "u1", true), inboundstore.Rearm)
	done(unenrol.ID)
	again, out := f.save(pairMsg("link", "e1", false), inboundstore.Rearm)
	assert.Equal(t, inboundstore.Rearmed, out, "the pair was unenrolled since: enrol again")
	assert.Equal(t, inboundstore.StatePending, again.State)

	// A superseded request repeated is the latest one again.
	un2, out := f.save(pairMsg("link", "u1", true), inboundstore.Rearm)
	assert.Equal(t, inboundstore.Rearmed, out, "the unenrolment repeated after the enrol")
	assert.Equal(t, inboundstore.StateSuperseded, f.get(enrol.ID).State)
	e3, out := f.save(pairMsg("link", "e1", false), inboundstore.Rearm)
	assert.Equal(t, inboundstore.Rearmed, out)
	assert.Equal(t, inboundstore.StatePending, e3.State)
	assert.Equal(t, inboundstore.StateSuperseded, f.get(un2.ID).State)

	// A webhook resend (KeepExisting) never makes an old message the latest.
	hook, _ := f.save(pairMsg("webhook:cv", "h1", true), inboundstore.KeepExisting)
	assert.Equal(t, inboundstore.StateSuperseded, f.get(e3.ID).State)
	resend, out := f.save(pairMsg("webhook:cv", "h1", true), inboundstore.KeepExisting)
	assert.Equal(t, inboundstore.Existed, out)
	assert.Equal(t, hook.ID, resend.ID)
}

// testOrderPersonKey: the ordering rule and forget compare person ids as
// source.PersonKey does, as the enrolment list and the outbox do: Unicode
// case folded, surrounding spaces ignored. "ÉVA", "éva" and " Éva " are one
// person, on every backend (SQLite's lower() folds only ASCII letters).
func testOrderPersonKey(t *testing.T, f *inboundFixture) {
	person := func(key, id string) inboundstore.Message {
		m := pairMsg("link", key, false)
		m.PersonID = id
		return m
	}
	first, _ := f.save(person("e1", "ÉVA"), inboundstore.Rearm)
	later, _ := f.save(person("e2", "éva"), inboundstore.Rearm)
	assert.Equal(t, inboundstore.StateSuperseded, f.get(first.ID).State, "the later request of the person supersedes the earlier")
	assert.Equal(t, "ÉVA", f.get(first.ID).PersonID, "the id is kept as received")
	assert.Equal(t, []int64{later.ID}, messageIDs(f.claim("w1", 10, time.Minute)))

	third, _ := f.save(person("e3", " Éva "), inboundstore.Rearm)
	assert.Equal(t, inboundstore.StatePending, f.get(later.ID).State, "a message being carried out is not superseded")
	assert.Empty(t, f.claim("w2", 10, time.Minute), "the third request waits for the one in flight")
	other, _ := f.save(person("x1", "Eva"), inboundstore.Rearm)
	assert.Equal(t, []int64{other.ID}, messageIDs(f.claim("w2", 10, time.Minute)), "Eva without the accent is someone else")

	rep, err := f.privacy().ForgetPerson(f.ctx, "éva")
	require.NoError(t, err)
	assert.Equal(t, 3, rep.Messages, "the messages of ÉVA, éva and Éva")
	assert.Equal(t, 2, rep.Cancelled, "the two pending ones")
	for id, personID := range map[int64]string{first.ID: "ÉVA", later.ID: "éva", third.ID: " Éva "} {
		assertErased(t, f.get(id), personID)
	}
	assertKept(t, f.get(other.ID))
}
