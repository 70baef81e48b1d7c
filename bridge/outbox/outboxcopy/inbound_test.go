package outboxcopy_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/outbox"
	"github.com/cvbridge/cvbridge/bridge/outbox/outboxcopy"
)

// inboundStore is the inbound side of a backend, as the inbound packages
// and the operator's commands use it.
type inboundStore interface {
	inboundstore.Store
	inboundstore.PersonalData
	inboundstore.MessageAdmin
	inboundstore.EnrolmentList
}

// inboundFiller drives a store's inbound side through its public API.
type inboundFiller struct {
	t   *testing.T
	s   inboundStore
	clk *clock.Fake
}

// message is an enrolment from source with dedupe key key for person.
func message(source, key, person string) inboundstore.Message {
	return inboundstore.Message{Source: source, DedupeKey: key, Verified: inboundstore.VerifiedSignature,
		Event: "deelnemer.ingeschreven", Body: []byte(`{"id":"` + key + `","naam":"Jan"}`), Action: inboundstore.ActionEnrol,
		PersonID: person, ElearningCode: "VCA-BASIS", FirstName: "Jan", Infix: "van", LastName: "Jansen",
		Email: "jan@example.org", State: inboundstore.StatePending}
}

func (f inboundFiller) save(m inboundstore.Message, dup inboundstore.Duplicate) inboundstore.Message {
	f.t.Helper()
	saved, _, err := f.s.SaveMessage(f.t.Context(), m, dup)
	require.NoError(f.t, err)
	return saved
}

// finish claims message id and finishes it in st with error msg, routed to
// the connection "moodle" (a done enrolment lands in its enrolment list).
func (f inboundFiller) finish(id int64, st inboundstore.State, msg string) {
	f.t.Helper()
	ctx := f.t.Context()
	_, ok, err := f.s.ClaimMessage(ctx, id, "worker-1", f.clk.Now(), time.Minute)
	require.NoError(f.t, err)
	require.True(f.t, ok)
	f.clk.Advance(time.Second)
	require.NoError(f.t, f.s.FinishMessage(ctx, inboundstore.Finish{ID: id, Owner: "worker-1", State: st,
		NextAttemptAt: f.clk.Now().Add(5 * time.Minute), Error: msg, At: f.clk.Now(), Connection: "moodle"}))
}

// token is an access and refresh token record of grant for client, whose
// secrets are "access-"+n and "refresh-"+n.
func (f inboundFiller) token(grant, client, n string) inboundstore.Token {
	f.t.Helper()
	tk, err := f.s.CreateToken(f.t.Context(), inboundstore.Token{GrantID: grant, ClientID: client, UserID: "coachview-admin",
		Scope: "enrol", AccessHash: inboundstore.Hash("access-" + n), AccessExpiresAt: f.clk.Now().Add(time.Hour),
		RefreshHash: inboundstore.Hash("refresh-" + n), RefreshExpiresAt: f.clk.Now().Add(90 * 24 * time.Hour)})
	require.NoError(f.t, err)
	return tk
}

// fillInbound gives s inbound messages in every state (one leased, one
// received twice, three erased) and OAuth records (a consumed code, a
// rotated token, a revoked grant, an active grant), and purges the newest
// token record so the last token id given out exceeds the highest present.
func fillInbound(t *testing.T, s inboundStore, clk *clock.Fake) {
	ctx := t.Context()
	f := inboundFiller{t: t, s: s, clk: clk}

	// erased by the retention sweep: a done link request (re-keyed) and a
	// failed webhook message
	oldLink := message(inboundstore.SourceLink, "link-6", "P6")
	oldLink.Verified = inboundstore.VerifiedBearer
	oldLink = f.save(oldLink, inboundstore.Rearm)
	f.finish(oldLink.ID, inboundstore.StateDone, "")
	oldHook := f.save(message(inboundstore.WebhookSource("cv"), "evt-7", "P7"), inboundstore.KeepExisting)
	f.finish(oldHook.ID, inboundstore.StateFailed, "person refused")
	clk.Advance(time.Hour)
	n, err := s.ErasePersonalData(ctx, clk.Now().Add(-30*time.Minute))
	require.NoError(t, err)
	require.Equal(t, 2, n)
	// pending link request, received twice, never claimed
	link := message(inboundstore.SourceLink, "link-1", "P1")
	link.Verified, link.Event = inboundstore.VerifiedBearer, ""
	f.save(link, inboundstore.Rearm)
	f.save(link, inboundstore.Rearm)
	// pending webhook message, leased to a worker for an hour
	leased := f.save(message(inboundstore.WebhookSource("cv"), "evt-2", "P2"), inboundstore.KeepExisting)
	_, ok, err := s.ClaimMessage(ctx, leased.ID, "worker-2", clk.Now(), time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	// pending after a failed attempt, due in five minutes
	retry := f.save(message(inboundstore.WebhookSource("cv"), "evt-3", "P3"), inboundstore.KeepExisting)
	f.finish(retry.ID, inboundstore.StatePending, "Moodle answered 503")
	// done, failed, ignored and unmapped
	done := f.save(message(inboundstore.WebhookSource("cv"), "evt-4", "P4"), inboundstore.KeepExisting)
	f.finish(done.ID, inboundstore.StateDone, "")
	failed := f.save(message(inboundstore.WebhookSource("cv"), "evt-5", "ØRSTED-5"), inboundstore.KeepExisting)
	f.finish(failed.ID, inboundstore.StateFailed, "course VCA-BASIS not found é")
	for _, m := range []struct {
		action inboundstore.Action
		state  inboundstore.State
	}{{inboundstore.ActionIgnore, inboundstore.StateIgnored}, {inboundstore.ActionUnmapped, inboundstore.StateUnmapped}} {
		msg := message(inboundstore.WebhookSource("other"), "evt-"+string(m.state), "")
		msg.Action, msg.State, msg.Body, msg.Event = m.action, m.state, nil, "relatie.gewijzigd"
		f.save(msg, inboundstore.KeepExisting)
	}
	// erased by forget: a pending message, failed without being carried out
	forgotten := f.save(message(inboundstore.WebhookSource("cv"), "evt-8", "P8"), inboundstore.KeepExisting)
	rep, err := s.ForgetPerson(ctx, "p8")
	require.NoError(t, err)
	require.Equal(t, 1, rep.Cancelled)
	got, err := s.GetMessage(ctx, forgotten.ID)
	require.NoError(t, err)
	require.True(t, got.Erased())

	// a code exchanged for a token that was then rotated
	_, err = s.CreateToken(ctx, inboundstore.Token{GrantID: "g1", ClientID: "coachview", RedirectURI: "https://cv.example/cb",
		Scope: "enrol", CodeHash: inboundstore.Hash("code-1"), CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		CodeChallengeMethod: "S256", CodeExpiresAt: clk.Now().Add(10 * time.Minute)})
	require.NoError(t, err)
	ok, err = s.RevokeToken(ctx, inboundstore.KindCode, inboundstore.Hash("code-1"), clk.Now(), inboundstore.ReasonConsumed)
	require.NoError(t, err)
	require.True(t, ok)
	old := f.token("g1", "coachview", "1")
	clk.Advance(time.Minute)
	_, ok, err = s.RotateRefresh(ctx, old.RefreshHash, inboundstore.Token{GrantID: "g1", ClientID: "coachview",
		UserID: "coachview-admin", Scope: "enrol", AccessHash: inboundstore.Hash("access-2"), AccessExpiresAt: clk.Now().Add(time.Hour),
		RefreshHash: inboundstore.Hash("refresh-2"), RefreshExpiresAt: clk.Now().Add(90 * 24 * time.Hour)}, clk.Now())
	require.NoError(t, err)
	require.True(t, ok)
	// a grant the operator revoked
	f.token("g2", "test-client", "3")
	_, err = s.RevokeGrant(ctx, "g2", clk.Now(), inboundstore.ReasonOperator)
	require.NoError(t, err)
	// the newest record, expired long ago and purged: its id stays given out
	_, err = s.CreateToken(ctx, inboundstore.Token{GrantID: "g3", ClientID: "coachview", AccessHash: inboundstore.Hash("access-gone"),
		AccessExpiresAt: epoch.Add(-48 * time.Hour)})
	require.NoError(t, err)
	purged, err := s.PurgeTokens(ctx, epoch.Add(-24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 1, purged)
}

// sameInbound asserts that b shows every inbound message and OAuth record
// of a, through the inbound store API.
func sameInbound(t *testing.T, a, b inboundStore, now time.Time) {
	t.Helper()
	ctx := t.Context()
	ma, err := a.ListMessages(ctx, inboundstore.MessageFilter{Limit: 1000})
	require.NoError(t, err)
	mb, err := b.ListMessages(ctx, inboundstore.MessageFilter{Limit: 1000})
	require.NoError(t, err)
	require.NotEmpty(t, ma)
	assert.Equal(t, ma, mb, "ListMessages")
	for _, st := range []inboundstore.State{inboundstore.StatePending, inboundstore.StateDone, inboundstore.StateFailed,
		inboundstore.StateIgnored, inboundstore.StateUnmapped} {
		la, err := a.ListMessages(ctx, inboundstore.MessageFilter{State: st, Limit: 1000})
		require.NoError(t, err)
		require.NotEmpty(t, la, "the source holds %s messages", st)
		lb, err := b.ListMessages(ctx, inboundstore.MessageFilter{State: st, Limit: 1000})
		require.NoError(t, err)
		assert.Equal(t, la, lb, "ListMessages(%s)", st)
	}
	for _, m := range ma {
		got, err := b.GetMessage(ctx, m.ID)
		require.NoError(t, err)
		assert.Equal(t, m, got, "GetMessage(%d)", m.ID)
	}

	for _, f := range []inboundstore.TokenFilter{{}, {ClientID: "coachview"}, {Active: true, Now: now}} {
		ta, err := a.ListTokens(ctx, f)
		require.NoError(t, err)
		tb, err := b.ListTokens(ctx, f)
		require.NoError(t, err)
		require.NotEmpty(t, ta)
		assert.Equal(t, ta, tb, "ListTokens(%+v)", f)
	}
	ea, err := a.ListEnrolments(ctx, inboundstore.EnrolmentFilter{})
	require.NoError(t, err)
	eb, err := b.ListEnrolments(ctx, inboundstore.EnrolmentFilter{})
	require.NoError(t, err)
	require.NotEmpty(t, ea)
	assert.Equal(t, ea, eb, "ListEnrolments")

	all, err := a.ListTokens(ctx, inboundstore.TokenFilter{})
	require.NoError(t, err)
	for _, tk := range all {
		for kind, hash := range map[inboundstore.TokenKind]string{inboundstore.KindCode: tk.CodeHash,
			inboundstore.KindAccess: tk.AccessHash, inboundstore.KindRefresh: tk.RefreshHash} {
			if hash == "" {
				continue
			}
			got, err := b.TokenByHash(ctx, kind, hash)
			require.NoError(t, err, "TokenByHash(%s) of #%d", kind, tk.ID)
			assert.Equal(t, tk, got, "TokenByHash(%s) of #%d", kind, tk.ID)
		}
	}
}

func TestCopyCarriesTheInboundSide(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := clock.NewFake(epoch)
	src := openSQLite(t, clk)
	fill(t, src, clk)
	fillInbound(t, src, clk)
	dst := openPostgres(t, clk)

	rep, err := outboxcopy.Copy(ctx, src, dst, outboxcopy.Options{BatchSize: 2})
	require.NoError(t, err)
	assert.Equal(t, int64(10), rep.Copied.InboundMessages)
	assert.Equal(t, map[inboundstore.State]int64{inboundstore.StatePending: 3, inboundstore.StateDone: 2,
		inboundstore.StateFailed: 3, inboundstore.StateIgnored: 1, inboundstore.StateUnmapped: 1}, rep.Copied.InboundStates)
	assert.Equal(t, int64(11), rep.Copied.LastInboundMessageID, "SQLite's sequence counts the repeated request's insert attempt")
	assert.Equal(t, int64(4), rep.Copied.OAuthTokens)
	assert.Equal(t, int64(5), rep.Copied.LastOAuthTokenID, "the purged newest record's id counts as given out")
	assert.Equal(t, int64(2), rep.Copied.Enrolments, "the enrolment list: the two done enrolments")
	assert.Contains(t, rep.Copied.String(), "10 inbound messages, 4 OAuth token records, 2 enrolment list entries")
	sameContents(t, src, dst)
	sameInbound(t, src, dst, clk.Now())

	// Coachview's grant works on PostgreSQL: its access token is found by
	// its hash, its refresh token rotates, and the consumed code and the
	// rotated refresh token stay spent.
	access, err := dst.TokenByHash(ctx, inboundstore.KindAccess, inboundstore.Hash("access-2"))
	require.NoError(t, err)
	assert.False(t, access.Revoked())
	assert.Equal(t, "g1", access.GrantID)
	active, err := dst.ListTokens(ctx, inboundstore.TokenFilter{Active: true, Now: clk.Now()})
	require.NoError(t, err)
	require.Len(t, active, 1)
	assert.Equal(t, access, active[0])
	next, ok, err := dst.RotateRefresh(ctx, inboundstore.Hash("refresh-2"), inboundstore.Token{GrantID: "g1", ClientID: "coachview",
		AccessHash: inboundstore.Hash("access-4"), AccessExpiresAt: clk.Now().Add(time.Hour),
		RefreshHash: inboundstore.Hash("refresh-4"), RefreshExpiresAt: clk.Now().Add(90 * 24 * time.Hour)}, clk.Now())
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, int64(6), next.ID, "token ids follow the last id the source gave out")
	ok, err = dst.RevokeToken(ctx, inboundstore.KindCode, inboundstore.Hash("code-1"), clk.Now(), inboundstore.ReasonConsumed)
	require.NoError(t, err)
	assert.False(t, ok, "the exchanged code cannot be exchanged again")
	_, ok, err = dst.RotateRefresh(ctx, inboundstore.Hash("refresh-1"), inboundstore.Token{GrantID: "g1", ClientID: "coachview",
		AccessHash: inboundstore.Hash("access-5")}, clk.Now())
	require.NoError(t, err)
	assert.False(t, ok, "the rotated refresh token stays spent")

	// The pending enrolment requests are carried out on PostgreSQL: all
	// three once the copied lease has run out, and a webhook resend is
	// still recognised.
	claimed, err := dst.ClaimMessages(ctx, "worker-3", 10, clk.Now().Add(2*time.Hour), time.Minute)
	require.NoError(t, err)
	keys := make([]string, len(claimed))
	for i, m := range claimed {
		keys[i] = m.DedupeKey
	}
	assert.ElementsMatch(t, []string{"link-1", "evt-2", "evt-3"}, keys)
	saved, outcome, err := dst.SaveMessage(ctx, message(inboundstore.SourceLink, "link-9", "P9"), inboundstore.Rearm)
	require.NoError(t, err)
	assert.Equal(t, inboundstore.Inserted, outcome)
	assert.Equal(t, int64(12), saved.ID, "message ids follow the last id the source gave out")
	_, outcome, err = dst.SaveMessage(ctx, message(inboundstore.WebhookSource("cv"), "evt-4", "P4"), inboundstore.KeepExisting)
	require.NoError(t, err)
	assert.Equal(t, inboundstore.Existed, outcome, "a resent webhook message is not carried out twice")

	// The messages keep their person keys (source.PersonKey, Unicode case
	// folded), by which forget finds a person's messages.
	forgot, err := dst.ForgetPerson(ctx, "Ørsted-5")
	require.NoError(t, err)
	assert.Equal(t, 1, forgot.Messages, "the failed message of ØRSTED-5")
}

func TestCopyRefusesATargetWithOnlyInboundRows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		seed func(t *testing.T, s inboundStore)
		held string
	}{
		{"an inbound message", func(t *testing.T, s inboundStore) {
			_, _, err := s.SaveMessage(t.Context(), message(inboundstore.SourceLink, "elsewhere", "X1"), inboundstore.Rearm)
			require.NoError(t, err)
		}, "1 inbound messages"},
		{"an OAuth token", func(t *testing.T, s inboundStore) {
			_, err := s.CreateToken(t.Context(), inboundstore.Token{GrantID: "elsewhere", ClientID: "coachview",
				AccessHash: inboundstore.Hash("access-elsewhere")})
			require.NoError(t, err)
		}, "1 OAuth token records"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			clk := clock.NewFake(epoch)
			src := openSQLite(t, clk)
			fillInbound(t, src, clk)
			dst := openPostgres(t, clk)
			tc.seed(t, dst)

			_, err := outboxcopy.Copy(ctx, src, dst, outboxcopy.Options{})
			require.ErrorIs(t, err, outboxcopy.ErrTargetNotEmpty)
			assert.Contains(t, err.Error(), tc.held)
			_, err = dst.TokenByHash(ctx, inboundstore.KindAccess, inboundstore.Hash("access-2"))
			require.ErrorIs(t, err, inboundstore.ErrNotFound, "the refused target is untouched")

			rep, err := outboxcopy.Copy(ctx, src, dst, outboxcopy.Options{Force: true})
			require.NoError(t, err)
			assert.Equal(t, int64(1), rep.Replaced.InboundMessages+rep.Replaced.OAuthTokens, "the forced copy says what it replaced")
			sameInbound(t, src, dst, clk.Now())
			rows, err := dst.List(ctx, outbox.Filter{})
			require.NoError(t, err)
			assert.Empty(t, rows)
		})
	}
}

// droppingSink is a target that loses the first inbound message and OAuth
// record of every batch it is given, to prove the verification catches it.
type droppingSink struct{ outboxcopy.Sink }

func (d droppingSink) BeginImport(ctx context.Context) (outboxcopy.Importer, error) {
	imp, err := d.Sink.BeginImport(ctx)
	return droppingImporter{imp}, err
}

type droppingImporter struct{ outboxcopy.Importer }

func (d droppingImporter) InboundMessages(ctx context.Context, rows []inboundstore.Message) error {
	return d.Importer.InboundMessages(ctx, rows[1:])
}

func (d droppingImporter) OAuthTokens(ctx context.Context, rows []inboundstore.Token) error {
	return d.Importer.OAuthTokens(ctx, rows[1:])
}

// TestCopyVerifiesInboundCounts: a copy whose inbound tables do not match
// the source is rolled back.
func TestCopyVerifiesInboundCounts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	clk := clock.NewFake(epoch)
	src := openSQLite(t, clk)
	fillInbound(t, src, clk)
	dst := openPostgres(t, clk)

	_, err := outboxcopy.Copy(ctx, src, droppingSink{dst}, outboxcopy.Options{BatchSize: 4})
	require.Error(t, err)
	for _, want := range []string{"inbound messages: source 10, target 7", "done inbound messages: source 2, target 1",
		"OAuth token records: source 4, target 3", "nothing was written"} {
		assert.Contains(t, err.Error(), want)
	}
	msgs, err := dst.ListMessages(ctx, inboundstore.MessageFilter{})
	require.NoError(t, err)
	assert.Empty(t, msgs, "the target is rolled back")
	tokens, err := dst.ListTokens(ctx, inboundstore.TokenFilter{})
	require.NoError(t, err)
	assert.Empty(t, tokens, "the target is rolled back")
}
