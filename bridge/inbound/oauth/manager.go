package oauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"time"

	oauth2 "github.com/go-oauth2/oauth2/v4"
	oerrors "github.com/go-oauth2/oauth2/v4/errors"
	"github.com/go-oauth2/oauth2/v4/models"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
)

// manager is the library's oauth2.Manager over inboundstore.TokenStore.
//
// The library's own manage package cannot be used here (it imports a JWT
// module this build does not carry), and it would need fixing anyway: its
// redirect-URI check compares host suffixes only, it exchanges a code in a
// read-then-delete race, and it neither authenticates the client nor checks
// the token's owner on refresh. This manager issues 256-bit random codes
// and tokens, stores only their hashes, checks redirect URIs exactly,
// consumes a code and rotates a refresh token atomically in the store,
// authenticates the client on every token request, and revokes a whole
// grant when a used code or rotated refresh token is presented again
// (after the refresh grace window, see RefreshAccessToken).
type manager struct {
	clients    clientStore
	store      inboundstore.TokenStore
	clock      clock.Clock
	log        *slog.Logger
	codeTTL    time.Duration
	accessTTL  time.Duration
	refreshTTL time.Duration
	grace      time.Duration
}

var _ oauth2.Manager = (*manager)(nil)

// secret returns 32 random bytes, base64url-encoded.
func secret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// GetClient returns a configured client.
func (m *manager) GetClient(ctx context.Context, id string) (oauth2.ClientInfo, error) {
	return m.clients.GetByID(ctx, id)
}

// authenticate returns the client tgr names if its secret is right.
func (m *manager) authenticate(tgr *oauth2.TokenGenerateRequest) (*client, error) {
	c, ok := m.clients[tgr.ClientID]
	if !ok || !c.VerifyPassword(tgr.ClientSecret) {
		return nil, oerrors.ErrInvalidClient
	}
	return c, nil
}

// GenerateAuthToken issues an authorization code (the only response type
// the server allows). tgr.RedirectURI is the one the authorization request
// named, "" when it named none (and the client has only one); the code's
// exchange must repeat it.
func (m *manager) GenerateAuthToken(ctx context.Context, rt oauth2.ResponseType, tgr *oauth2.TokenGenerateRequest) (oauth2.TokenInfo, error) {
	if rt != oauth2.Code {
		return nil, oerrors.ErrUnsupportedResponseType
	}
	c, ok := m.clients[tgr.ClientID]
	if !ok {
		return nil, oerrors.ErrInvalidClient
	}
	if tgr.RedirectURI != "" || len(c.uris) != 1 {
		if err := exactRedirect(c.GetDomain(), tgr.RedirectURI); err != nil {
			return nil, err
		}
	}
	code, err := secret()
	if err != nil {
		return nil, err
	}
	grant, err := secret()
	if err != nil {
		return nil, err
	}
	now := m.clock.Now()
	_, err = m.store.CreateToken(ctx, inboundstore.Token{
		GrantID: grant, ClientID: c.id, UserID: tgr.UserID, RedirectURI: tgr.RedirectURI, Scope: tgr.Scope,
		CodeHash: inboundstore.Hash(code), CodeChallenge: tgr.CodeChallenge, CodeChallengeMethod: tgr.CodeChallengeMethod.String(),
		CodeExpiresAt: now.Add(m.codeTTL), CreatedAt: now,
	})
	if err != nil {
		return nil, err
	}
	ti := models.NewToken()
	ti.SetClientID(c.id)
	ti.SetUserID(tgr.UserID)
	ti.SetRedirectURI(tgr.RedirectURI)
	ti.SetScope(tgr.Scope)
	ti.SetCode(code)
	ti.SetCodeCreateAt(now)
	ti.SetCodeExpiresIn(m.codeTTL)
	return ti, nil
}

// GenerateAccessToken exchanges an authorization code for tokens. The
// redirect_uri must repeat the authorization request's exactly, and is
// needed only when that had one (RFC 6749 §4.1.3); without one, only the
// client's single registered URI, where the code went, is accepted.
func (m *manager) GenerateAccessToken(ctx context.Context, gt oauth2.GrantType, tgr *oauth2.TokenGenerateRequest) (oauth2.TokenInfo, error) {
	if gt != oauth2.AuthorizationCode {
		return nil, oerrors.ErrUnsupportedGrantType
	}
	c, err := m.authenticate(tgr)
	if err != nil {
		return nil, err
	}
	code, err := m.lookup(ctx, inboundstore.KindCode, tgr.Code)
	if err != nil {
		return nil, err
	}
	if code == nil || code.ClientID != c.id {
		return nil, oerrors.ErrInvalidAuthorizeCode
	}
	redirect := tgr.RedirectURI
	if redirectOmitted(ctx) {
		redirect = ""
	}
	switch {
	case code.RedirectURI != "" && redirect == "":
		return nil, oerrors.ErrInvalidRequest
	case code.RedirectURI != "" && redirect != code.RedirectURI,
		code.RedirectURI == "" && redirect != "" && (len(c.uris) != 1 || redirect != c.uris[0]):
		return nil, oerrors.ErrInvalidAuthorizeCode
	}
	switch {
	case code.CodeChallenge == "" && tgr.CodeVerifier != "":
		return nil, oerrors.ErrInvalidCodeChallenge
	case code.CodeChallenge != "" && tgr.CodeVerifier == "":
		return nil, oerrors.ErrMissingCodeVerifier
	case code.CodeChallenge != "" && !oauth2.CodeChallengeMethod(code.CodeChallengeMethod).Validate(code.CodeChallenge, tgr.CodeVerifier):
		return nil, oerrors.ErrInvalidCodeChallenge
	}
	now := m.clock.Now()
	ok, err := m.store.RevokeToken(ctx, inboundstore.KindCode, code.CodeHash, now, inboundstore.ReasonConsumed)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, oerrors.ErrInvalidAuthorizeCode // a concurrent exchange won
	}
	access, err := secret()
	if err != nil {
		return nil, err
	}
	refresh, err := secret()
	if err != nil {
		return nil, err
	}
	rec := m.pair(code, access, refresh, now)
	if _, err := m.store.CreateToken(ctx, rec); err != nil {
		return nil, err
	}
	return tokenInfo(&rec, access, refresh, now), nil
}

// pair is the record of access and refresh token continuing grant record
// from, issued at now.
func (m *manager) pair(from *inboundstore.Token, access, refresh string, now time.Time) inboundstore.Token {
	return inboundstore.Token{
		GrantID: from.GrantID, ClientID: from.ClientID, UserID: from.UserID, RedirectURI: from.RedirectURI, Scope: from.Scope,
		AccessHash: inboundstore.Hash(access), AccessExpiresAt: now.Add(m.accessTTL),
		RefreshHash: inboundstore.Hash(refresh), RefreshExpiresAt: now.Add(m.refreshTTL), CreatedAt: now,
	}
}

// tokenInfo is the library's view of pair record rec with its secrets, as
// answered at now (expires_in counts from now).
func tokenInfo(rec *inboundstore.Token, access, refresh string, now time.Time) oauth2.TokenInfo {
	ti := info(rec)
	ti.SetAccess(access)
	ti.SetAccessCreateAt(now)
	ti.SetAccessExpiresIn(rec.AccessExpiresAt.Sub(now))
	ti.SetRefresh(refresh)
	ti.SetRefreshCreateAt(now)
	ti.SetRefreshExpiresIn(rec.RefreshExpiresAt.Sub(now))
	return ti
}

// RefreshAccessToken rotates a refresh token: the client must authenticate
// and own it; the old pair is revoked and a new pair issued, atomically.
//
// The new pair is derived from the refresh token (client.successor), not
// drawn at random, so that a repeat of the refresh can be answered with it
// again although only its hashes are stored: the same client presenting
// the rotated token within the grace window, for a lost answer or because
// several of its workers refreshed at once, gets the same pair while that
// pair is live. The repeat neither issues nor keeps alive anything the
// first answer did not, so the grant still has a single live pair. A
// repeat after the window, by another client, or after the new pair was
// itself rotated or revoked is reuse, and revokes the grant.
func (m *manager) RefreshAccessToken(ctx context.Context, tgr *oauth2.TokenGenerateRequest) (oauth2.TokenInfo, error) {
	c, err := m.authenticate(tgr)
	if err != nil {
		return nil, err
	}
	rec, err := m.find(ctx, inboundstore.KindRefresh, tgr.Refresh)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, oerrors.ErrInvalidRefreshToken
	}
	now := m.clock.Now()
	if ti, err := m.repeated(ctx, c, rec, tgr, now); ti != nil || err != nil {
		return ti, err
	}
	old, err := m.live(ctx, inboundstore.KindRefresh, rec, now)
	if err != nil {
		return nil, err
	}
	if old == nil || old.ClientID != c.id {
		return nil, oerrors.ErrInvalidRefreshToken
	}
	if tgr.Scope != "" && tgr.Scope != old.Scope {
		return nil, oerrors.ErrInvalidScope
	}
	access, refresh := c.successor(old.GrantID, tgr.Refresh)
	next := m.pair(old, access, refresh, now)
	_, ok, err := m.store.RotateRefresh(ctx, old.RefreshHash, next, now)
	if err != nil {
		return nil, err
	}
	if ok {
		return tokenInfo(&next, access, refresh, now), nil
	}
	// A concurrent refresh with the same token rotated it first: answer
	// with the pair it stored.
	if rec, err = m.find(ctx, inboundstore.KindRefresh, tgr.Refresh); err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, oerrors.ErrInvalidRefreshToken
	}
	if ti, err := m.repeated(ctx, c, rec, tgr, now); ti != nil || err != nil {
		return ti, err
	}
	return nil, oerrors.ErrInvalidRefreshToken
}

// repeated answers a repeat of a refresh (see RefreshAccessToken): rec is
// the record of the refresh token presented. It returns nil, nil when
// this is not a repeat within the grace window whose new pair is live.
func (m *manager) repeated(ctx context.Context, c *client, rec *inboundstore.Token, tgr *oauth2.TokenGenerateRequest, now time.Time) (oauth2.TokenInfo, error) {
	if m.grace <= 0 || rec.RevokeReason != inboundstore.ReasonRotated || rec.ClientID != c.id ||
		now.Sub(rec.RevokedAt) >= m.grace || (tgr.Scope != "" && tgr.Scope != rec.Scope) {
		return nil, nil
	}
	access, refresh := c.successor(rec.GrantID, tgr.Refresh)
	next, err := m.find(ctx, inboundstore.KindRefresh, refresh)
	if err != nil || next == nil {
		return nil, err
	}
	if next.Revoked() || next.GrantID != rec.GrantID || !now.Before(next.RefreshExpiresAt) ||
		subtle.ConstantTimeCompare([]byte(next.AccessHash), []byte(inboundstore.Hash(access))) != 1 {
		return nil, nil
	}
	m.log.Info("oauth: a refresh was repeated within the grace window; the same tokens were returned",
		slog.String("client", c.id), slog.Duration("after", now.Sub(rec.RevokedAt)))
	return tokenInfo(next, access, refresh, now), nil
}

// RemoveAccessToken revokes an access token and its refresh token.
func (m *manager) RemoveAccessToken(ctx context.Context, access string) error {
	_, err := m.store.RevokeToken(ctx, inboundstore.KindAccess, inboundstore.Hash(access), m.clock.Now(), inboundstore.ReasonOperator)
	return err
}

// RemoveRefreshToken revokes a refresh token and its access token.
func (m *manager) RemoveRefreshToken(ctx context.Context, refresh string) error {
	_, err := m.store.RevokeToken(ctx, inboundstore.KindRefresh, inboundstore.Hash(refresh), m.clock.Now(), inboundstore.ReasonOperator)
	return err
}

// LoadAccessToken returns a live access token's record.
func (m *manager) LoadAccessToken(ctx context.Context, access string) (oauth2.TokenInfo, error) {
	rec, err := m.lookup(ctx, inboundstore.KindAccess, access)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, oerrors.ErrInvalidAccessToken
	}
	ti := info(rec)
	ti.SetAccess(access)
	ti.SetAccessCreateAt(rec.CreatedAt)
	ti.SetAccessExpiresIn(rec.AccessExpiresAt.Sub(rec.CreatedAt))
	return ti, nil
}

// LoadRefreshToken returns a live refresh token's record.
func (m *manager) LoadRefreshToken(ctx context.Context, refresh string) (oauth2.TokenInfo, error) {
	rec, err := m.lookup(ctx, inboundstore.KindRefresh, refresh)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, oerrors.ErrInvalidRefreshToken
	}
	ti := info(rec)
	ti.SetRefresh(refresh)
	ti.SetRefreshCreateAt(rec.CreatedAt)
	ti.SetRefreshExpiresIn(rec.RefreshExpiresAt.Sub(rec.CreatedAt))
	return ti, nil
}

// info is the library's record of rec, without secrets.
func info(rec *inboundstore.Token) *models.Token {
	ti := models.NewToken()
	ti.SetClientID(rec.ClientID)
	ti.SetUserID(rec.UserID)
	ti.SetRedirectURI(rec.RedirectURI)
	ti.SetScope(rec.Scope)
	return ti
}

// lookup returns the live record holding secret value of kind: nil when
// there is none, it is revoked, or it expired (see live).
func (m *manager) lookup(ctx context.Context, kind inboundstore.TokenKind, value string) (*inboundstore.Token, error) {
	rec, err := m.find(ctx, kind, value)
	if err != nil || rec == nil {
		return nil, err
	}
	return m.live(ctx, kind, rec, m.clock.Now())
}

// find returns the record holding secret value of kind, revoked or not;
// nil when there is none.
func (m *manager) find(ctx context.Context, kind inboundstore.TokenKind, value string) (*inboundstore.Token, error) {
	if value == "" {
		return nil, nil
	}
	rec, err := m.store.TokenByHash(ctx, kind, inboundstore.Hash(value))
	if errors.Is(err, inboundstore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

// live returns rec, found by its secret of kind, if it is live at now:
// nil when it is revoked or expired. A revoked code or refresh token
// presented again revokes its whole grant (RFC 6749 §10.5, OAuth 2.0
// Security BCP §4.14).
func (m *manager) live(ctx context.Context, kind inboundstore.TokenKind, rec *inboundstore.Token, now time.Time) (*inboundstore.Token, error) {
	if rec.Revoked() {
		reused := (kind == inboundstore.KindCode && rec.RevokeReason == inboundstore.ReasonConsumed) ||
			(kind == inboundstore.KindRefresh && rec.RevokeReason == inboundstore.ReasonRotated)
		if reused {
			n, err := m.store.RevokeGrant(ctx, rec.GrantID, now, inboundstore.ReasonReuse)
			if err != nil {
				return nil, err
			}
			m.log.Warn("oauth: a used "+string(kind)+" was presented again; its grant is revoked",
				slog.String("client", rec.ClientID), slog.Int("revoked", n))
		}
		return nil, nil
	}
	var end time.Time
	switch kind {
	case inboundstore.KindCode:
		end = rec.CodeExpiresAt
	case inboundstore.KindAccess:
		end = rec.AccessExpiresAt
	case inboundstore.KindRefresh:
		end = rec.RefreshExpiresAt
	}
	if !end.IsZero() && !now.Before(end) {
		return nil, nil
	}
	return rec, nil
}
