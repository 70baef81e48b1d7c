package outboxtest

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

// testHistoryIsRecordedOnce: a source that re-reads a window (a lookback)
// hands the same later completion of a delivered pair, and the same
// rejected completion, again on every poll; each is recorded once.
func testHistoryIsRecordedOnce(t *testing.T, open Opener) {
	f := newFixture(t, open)
	const target = "cv"
	first := result(target, "e1", "P1", "v1")
	f.drive(first, outbox.StateDelivered)

	retake := result(target, "e1", "p1", "v2") // a later, different result; person in other case
	assert.Equal(t, outbox.Ignored, f.enqueue(retake, outbox.EnqueuePolicy{ReplacePending: true}))
	assert.Equal(t, outbox.Unchanged, f.enqueue(retake, outbox.EnqueuePolicy{ReplacePending: true}), "the same ignored result again")
	third := result(target, "e1", "P1", "v3")
	assert.Equal(t, outbox.Ignored, f.enqueue(third, outbox.EnqueuePolicy{}), "a different later result is recorded too")

	bad := result(target, "e2", "P2", "")
	bad.Body, bad.RejectReason, bad.SourceRef = nil, "Opmerking: longer than 255 characters", "course_completions:7"
	assert.Equal(t, outbox.Rejected, f.enqueue(bad, outbox.EnqueuePolicy{}))
	assert.Equal(t, outbox.Unchanged, f.enqueue(bad, outbox.EnqueuePolicy{}), "the same rejection of the same source row again")
	otherRow := bad
	otherRow.SourceRef = "course_completions:8"
	assert.Equal(t, outbox.Rejected, f.enqueue(otherRow, outbox.EnqueuePolicy{}), "another source row with the same fault is its own report")
	anonymous := bad
	anonymous.PersonID, anonymous.SourceRef = "", "export.csv:12"
	assert.Equal(t, outbox.Rejected, f.enqueue(anonymous, outbox.EnqueuePolicy{}))

	counts, err := f.s.Counts(f.ctx, target)
	assert.NoError(t, err)
	assert.Equal(t, 1, counts[outbox.StateDelivered])
	assert.Equal(t, 2, counts[outbox.StateIgnored])
	assert.Equal(t, 3, counts[outbox.StateRejected])
}
