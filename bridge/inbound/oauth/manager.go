package oauth

import (
	"context"
	"crypto/rand"
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
// grant when a used code or rotated refresh token is presented again.
type manager struct {
	clients    clientStore
	store      inboundstore.TokenStore
	clock      clock.Clock
	log        *slog.Logger
	codeTTL    time.Duration
	accessTTL  time.Duration
	refreshTTL time.Duration
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
// the server allows).
func (m *manager) GenerateAuthToken(ctx context.Context, rt oauth2.ResponseType, tgr *oauth2.TokenGenerateRequest) (oauth2.TokenInfo, error) {
	if rt != oauth2.Code {
		return nil, oerrors.ErrUnsupportedResponseType
	}
	c, ok := m.clients[tgr.ClientID]
	if !ok {
		return nil, oerrors.ErrInvalidClient
	}
	if err := exactRedirect(c.GetDomain(), tgr.RedirectURI); err != nil {
		return nil, err
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

// GenerateAccessToken exchanges an authorization code for tokens.
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
	if code == nil || code.ClientID != c.id || code.RedirectURI != tgr.RedirectURI {
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
	rec, ti, err := m.newTokens(code, now)
	if err != nil {
		return nil, err
	}
	if _, err := m.store.CreateToken(ctx, rec); err != nil {
		return nil, err
	}
	return ti, nil
}

// newTokens issues an access and a refresh token continuing grant record
// from: the record to store and the library's view with the secrets.
func (m *manager) newTokens(from *inboundstore.Token, now time.Time) (inboundstore.Token, oauth2.TokenInfo, error) {
	access, err := secret()
	if err != nil {
		return inboundstore.Token{}, nil, err
	}
	refresh, err := secret()
	if err != nil {
		return inboundstore.Token{}, nil, err
	}
	rec := inboundstore.Token{
		GrantID: from.GrantID, ClientID: from.ClientID, UserID: from.UserID, RedirectURI: from.RedirectURI, Scope: from.Scope,
		AccessHash: inboundstore.Hash(access), AccessExpiresAt: now.Add(m.accessTTL),
		RefreshHash: inboundstore.Hash(refresh), RefreshExpiresAt: now.Add(m.refreshTTL), CreatedAt: now,
	}
	ti := info(&rec)
	ti.SetAccess(access)
	ti.SetAccessCreateAt(now)
	ti.SetAccessExpiresIn(m.accessTTL)
	ti.SetRefresh(refresh)
	ti.SetRefreshCreateAt(now)
	ti.SetRefreshExpiresIn(m.refreshTTL)
	return rec, ti, nil
}

// RefreshAccessToken rotates a refresh token: the client must authenticate
// and own it; the old pair is revoked and a new pair issued, atomically.
func (m *manager) RefreshAccessToken(ctx context.Context, tgr *oauth2.TokenGenerateRequest) (oauth2.TokenInfo, error) {
	c, err := m.authenticate(tgr)
	if err != nil {
		return nil, err
	}
	old, err := m.lookup(ctx, inboundstore.KindRefresh, tgr.Refresh)
	if err != nil {
		return nil, err
	}
	if old == nil || old.ClientID != c.id {
		return nil, oerrors.ErrInvalidRefreshToken
	}
	if tgr.Scope != "" && tgr.Scope != old.Scope {
		return nil, oerrors.ErrInvalidScope
	}
	now := m.clock.Now()
	rec, ti, err := m.newTokens(old, now)
	if err != nil {
		return nil, err
	}
	_, ok, err := m.store.RotateRefresh(ctx, old.RefreshHash, rec, now)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, oerrors.ErrInvalidRefreshToken // a concurrent refresh won
	}
	return ti, nil
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
// there is none, it is revoked, or it expired. A revoked code or refresh
// token presented again revokes its whole grant (RFC 6749 §10.5, OAuth
// 2.0 Security BCP §4.14).
func (m *manager) lookup(ctx context.Context, kind inboundstore.TokenKind, value string) (*inboundstore.Token, error) {
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
	now := m.clock.Now()
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
	return &rec, nil
}
