package sqlinbound

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/outbox/internal/sqlcore"
)

// TokenCols are the oauth_tokens columns, in TokenRow's order.
const TokenCols = `id, grant_id, client_id, user_id, redirect_uri, scope, code_hash, code_challenge,
	code_challenge_method, code_expires_at, access_hash, access_expires_at, refresh_hash, refresh_expires_at,
	created_at, revoked_at, revoke_reason`

// TokenRow is an oauth_tokens row as stored.
type TokenRow struct {
	ID                  int64          `db:"id"`
	GrantID             string         `db:"grant_id"`
	ClientID            string         `db:"client_id"`
	UserID              string         `db:"user_id"`
	RedirectURI         string         `db:"redirect_uri"`
	Scope               string         `db:"scope"`
	CodeHash            sql.NullString `db:"code_hash"`
	CodeChallenge       string         `db:"code_challenge"`
	CodeChallengeMethod string         `db:"code_challenge_method"`
	CodeExpiresAt       sql.NullInt64  `db:"code_expires_at"`
	AccessHash          sql.NullString `db:"access_hash"`
	AccessExpiresAt     sql.NullInt64  `db:"access_expires_at"`
	RefreshHash         sql.NullString `db:"refresh_hash"`
	RefreshExpiresAt    sql.NullInt64  `db:"refresh_expires_at"`
	CreatedAt           int64          `db:"created_at"`
	RevokedAt           sql.NullInt64  `db:"revoked_at"`
	RevokeReason        string         `db:"revoke_reason"`
}

// Token converts r to the inbound store's Token.
func (r TokenRow) Token() inboundstore.Token {
	return inboundstore.Token{
		ID: r.ID, GrantID: r.GrantID, ClientID: r.ClientID, UserID: r.UserID, RedirectURI: r.RedirectURI, Scope: r.Scope,
		CodeHash: r.CodeHash.String, CodeChallenge: r.CodeChallenge, CodeChallengeMethod: r.CodeChallengeMethod,
		CodeExpiresAt: sqlcore.FromMillis(r.CodeExpiresAt), AccessHash: r.AccessHash.String,
		AccessExpiresAt: sqlcore.FromMillis(r.AccessExpiresAt), RefreshHash: r.RefreshHash.String,
		RefreshExpiresAt: sqlcore.FromMillis(r.RefreshExpiresAt), CreatedAt: time.UnixMilli(r.CreatedAt).UTC(),
		RevokedAt: sqlcore.FromMillis(r.RevokedAt), RevokeReason: r.RevokeReason,
	}
}

// nullString stores "" as NULL, so unset hashes do not collide in the
// unique indexes.
func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// hashColumn is the column holding the hash of kind's secret.
func hashColumn(kind inboundstore.TokenKind) (string, error) {
	switch kind {
	case inboundstore.KindCode:
		return "code_hash", nil
	case inboundstore.KindAccess:
		return "access_hash", nil
	case inboundstore.KindRefresh:
		return "refresh_hash", nil
	}
	return "", fmt.Errorf("token kind %q is not code, access or refresh", kind)
}

// expiredCond is true for a record all of whose secrets expired before the
// time bound to its three placeholders: a code record by its code, a token
// record by its refresh token if it has one, else by its access token.
const expiredCond = `((code_hash IS NOT NULL AND code_expires_at < ?)
	OR (code_hash IS NULL AND refresh_hash IS NOT NULL AND refresh_expires_at < ?)
	OR (code_hash IS NULL AND refresh_hash IS NULL AND access_expires_at < ?))`

// insertToken inserts t in tx and returns it as stored.
func (s *Store) insertToken(ctx context.Context, tx *sqlx.Tx, t inboundstore.Token) (inboundstore.Token, error) {
	if t.GrantID == "" || t.ClientID == "" {
		return inboundstore.Token{}, errors.New("grant id and client id must be set")
	}
	if t.CodeHash == "" && t.AccessHash == "" {
		return inboundstore.Token{}, errors.New("a record needs a code or an access token hash")
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	var row TokenRow
	err := tx.GetContext(ctx, &row, s.q(`INSERT INTO oauth_tokens (grant_id, client_id, user_id, redirect_uri, scope,
		code_hash, code_challenge, code_challenge_method, code_expires_at, access_hash, access_expires_at,
		refresh_hash, refresh_expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING `+TokenCols),
		t.GrantID, t.ClientID, t.UserID, t.RedirectURI, t.Scope,
		nullString(t.CodeHash), t.CodeChallenge, t.CodeChallengeMethod, sqlcore.Millis(t.CodeExpiresAt),
		nullString(t.AccessHash), sqlcore.Millis(t.AccessExpiresAt), nullString(t.RefreshHash), sqlcore.Millis(t.RefreshExpiresAt),
		t.CreatedAt.UnixMilli())
	if err != nil {
		return inboundstore.Token{}, err
	}
	return row.Token(), nil
}

// CreateToken stores an OAuth record; see inboundstore.TokenStore.
func (s *Store) CreateToken(ctx context.Context, t inboundstore.Token) (inboundstore.Token, error) {
	var stored inboundstore.Token
	err := s.inTx(ctx, func(tx *sqlx.Tx) (err error) {
		stored, err = s.insertToken(ctx, tx, t)
		return err
	})
	if err != nil {
		return inboundstore.Token{}, fmt.Errorf("store OAuth token of client %q: %w", t.ClientID, err)
	}
	return stored, nil
}

// TokenByHash looks a record up by the hash of one of its secrets; see
// inboundstore.TokenStore.
func (s *Store) TokenByHash(ctx context.Context, kind inboundstore.TokenKind, hash string) (inboundstore.Token, error) {
	col, err := hashColumn(kind)
	if err != nil {
		return inboundstore.Token{}, err
	}
	var row TokenRow
	err = s.db.GetContext(ctx, &row, s.q(`SELECT `+TokenCols+` FROM oauth_tokens WHERE `+col+` = ?`), hash)
	if errors.Is(err, sql.ErrNoRows) || hash == "" {
		return inboundstore.Token{}, fmt.Errorf("OAuth %s: %w", kind, inboundstore.ErrNotFound)
	}
	if err != nil {
		return inboundstore.Token{}, fmt.Errorf("read OAuth %s: %w", kind, err)
	}
	return row.Token(), nil
}

// RevokeToken revokes one record; see inboundstore.TokenStore.
func (s *Store) RevokeToken(ctx context.Context, kind inboundstore.TokenKind, hash string, now time.Time, reason string) (bool, error) {
	col, err := hashColumn(kind)
	if err != nil {
		return false, err
	}
	n, err := s.revokeWhere(ctx, col+` = ?`, hash, now, reason)
	if err != nil {
		return false, fmt.Errorf("revoke OAuth %s: %w", kind, err)
	}
	return n > 0, nil
}

// revokeWhere revokes the unrevoked records matching cond (one placeholder, arg).
func (s *Store) revokeWhere(ctx context.Context, cond string, arg any, now time.Time, reason string) (int, error) {
	s.writes.Lock()
	defer s.writes.Unlock()
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE oauth_tokens SET revoked_at = ?, revoke_reason = ?
		WHERE revoked_at IS NULL AND `+cond), now.UnixMilli(), reason, arg)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// RotateRefresh replaces a refresh token's record; see inboundstore.TokenStore.
func (s *Store) RotateRefresh(ctx context.Context, oldHash string, next inboundstore.Token, now time.Time) (inboundstore.Token, bool, error) {
	var (
		stored inboundstore.Token
		ok     bool
	)
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE oauth_tokens SET revoked_at = ?, revoke_reason = ?
			WHERE refresh_hash = ? AND revoked_at IS NULL`), now.UnixMilli(), inboundstore.ReasonRotated, oldHash)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		ok = true
		stored, err = s.insertToken(ctx, tx, next)
		return err
	})
	if err != nil {
		return inboundstore.Token{}, false, fmt.Errorf("rotate OAuth refresh token of client %q: %w", next.ClientID, err)
	}
	return stored, ok, nil
}

// RevokeGrant revokes a whole grant; see inboundstore.TokenStore.
func (s *Store) RevokeGrant(ctx context.Context, grantID string, now time.Time, reason string) (int, error) {
	n, err := s.revokeWhere(ctx, `grant_id = ?`, grantID, now, reason)
	if err != nil {
		return 0, fmt.Errorf("revoke OAuth grant %q: %w", grantID, err)
	}
	return n, nil
}

// RevokeClient revokes all of a client's records; see inboundstore.TokenStore.
func (s *Store) RevokeClient(ctx context.Context, clientID string, now time.Time, reason string) (int, error) {
	n, err := s.revokeWhere(ctx, `client_id = ?`, clientID, now, reason)
	if err != nil {
		return 0, fmt.Errorf("revoke OAuth tokens of client %q: %w", clientID, err)
	}
	return n, nil
}

// ListTokens lists records newest first; see inboundstore.TokenStore.
func (s *Store) ListTokens(ctx context.Context, f inboundstore.TokenFilter) ([]inboundstore.Token, error) {
	query := `SELECT ` + TokenCols + ` FROM oauth_tokens WHERE 1 = 1`
	var args []any
	if f.ClientID != "" {
		query += ` AND client_id = ?`
		args = append(args, f.ClientID)
	}
	if f.Active {
		now := f.Now.UnixMilli()
		query += ` AND revoked_at IS NULL AND NOT ` + expiredCond
		args = append(args, now, now, now)
	}
	var rows []TokenRow
	if err := s.db.SelectContext(ctx, &rows, s.q(query+` ORDER BY id DESC`), args...); err != nil {
		return nil, fmt.Errorf("list OAuth tokens: %w", err)
	}
	ts := make([]inboundstore.Token, len(rows))
	for i, r := range rows {
		ts[i] = r.Token()
	}
	return ts, nil
}

// purgeTokensQuery deletes the records all of whose secrets expired, and
// every record of a grant none of whose records lives on (each revoked or
// expired). A revoked record of a living grant stays until its secrets
// expire: a consumed code or rotated refresh token presented again is then
// still recognised as reuse, and revokes the grant, however long the
// client waits between refreshes. The subquery's unqualified columns are
// its own (g). Placeholders: expiredCond's three, the revocation bound,
// expiredCond's three again.
const purgeTokensQuery = `DELETE FROM oauth_tokens WHERE ` + expiredCond + ` OR NOT EXISTS (
	SELECT 1 FROM oauth_tokens g WHERE g.grant_id = oauth_tokens.grant_id
	AND NOT COALESCE((g.revoked_at IS NOT NULL AND g.revoked_at < ?) OR ` + expiredCond + `, FALSE))`

// PurgeTokens deletes records dead before cutoff; see inboundstore.TokenStore.
func (s *Store) PurgeTokens(ctx context.Context, cutoff time.Time) (int, error) {
	c := cutoff.UnixMilli()
	s.writes.Lock()
	defer s.writes.Unlock()
	res, err := s.db.ExecContext(ctx, s.q(purgeTokensQuery), c, c, c, c, c, c, c)
	if err != nil {
		return 0, fmt.Errorf("purge OAuth tokens: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge OAuth tokens: %w", err)
	}
	return int(n), nil
}
