package oauth_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// singleQuery is an authorization request of the single-URI client with
// PKCE and without redirect_uri.
func singleQuery() url.Values {
	return url.Values{"response_type": {"code"}, "client_id": {singleID}, "state": {"st-1"},
		"code_challenge": {challenge(verifier)}, "code_challenge_method": {"S256"}}
}

// singleCode runs the authorize step for q and returns the code sent to
// the single client's redirect URI.
func (e *env) singleCode(q url.Values) string {
	e.t.Helper()
	resp := e.submit(q, e.loginPage(q), "admin", adminPass, "allow")
	read(e.t, resp)
	require.Equal(e.t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(e.t, err)
	require.Equal(e.t, singleURI, loc.Scheme+"://"+loc.Host+loc.Path)
	require.NotEmpty(e.t, loc.Query().Get("code"))
	return loc.Query().Get("code")
}

// TestTokenRedirectURIOnlyWhenSent: RFC 6749 §4.1.3 wants redirect_uri at
// the token endpoint only when the authorization request carried it, and
// then identical.
func TestTokenRedirectURIOnlyWhenSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	exchange := func(code, redirect string) tokenResp {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}}
		if redirect != "" {
			form.Set("redirect_uri", redirect)
		}
		return e.token(form, singleID, url.QueryEscape(singleSecret))
	}
	t.Run("not sent, not sent", func(t *testing.T) {
		tr := exchange(e.singleCode(singleQuery()), "")
		assert.Equal(t, http.StatusOK, tr.status, tr.Error)
		assert.NotEmpty(t, tr.Access)
	})
	t.Run("not sent, then the one it went to", func(t *testing.T) {
		tr := exchange(e.singleCode(singleQuery()), singleURI)
		assert.Equal(t, http.StatusOK, tr.status, tr.Error)
	})
	t.Run("not sent, then another", func(t *testing.T) {
		tr := exchange(e.singleCode(singleQuery()), "https://lms-admin.example/other")
		assert.Equal(t, "invalid_grant", tr.Error)
	})
	t.Run("sent, not sent", func(t *testing.T) {
		q := singleQuery()
		q.Set("redirect_uri", singleURI)
		tr := exchange(e.singleCode(q), "")
		assert.Equal(t, http.StatusBadRequest, tr.status)
		assert.Equal(t, "invalid_request", tr.Error)
	})
	t.Run("sent, sent", func(t *testing.T) {
		q := singleQuery()
		q.Set("redirect_uri", singleURI)
		tr := exchange(e.singleCode(q), singleURI)
		assert.Equal(t, http.StatusOK, tr.status, tr.Error)
	})
}

// TestClientSecretInBasicAuth: RFC 6749 §2.3.1 wants the secret
// form-encoded in HTTP Basic; a client that sends it raw is accepted too
// when the raw value matches.
func TestClientSecretInBasicAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	exchange := func(id, secret string) tokenResp {
		return e.token(url.Values{"grant_type": {"authorization_code"}, "code": {e.singleCode(singleQuery())}, "code_verifier": {verifier}, "redirect_uri": {singleURI}}, id, secret)
	}
	for name, tc := range map[string]struct {
		id, secret string
		status     int
	}{
		"form-encoded":            {singleID, url.QueryEscape(singleSecret), http.StatusOK},
		"raw":                     {singleID, singleSecret, http.StatusOK},
		"form-encoded id and raw": {url.QueryEscape(singleID), singleSecret, http.StatusOK},
		"wrong":                   {singleID, "s3cr%t plus/0123456789", http.StatusUnauthorized},
		"another client's":        {singleID, clientSecret, http.StatusUnauthorized},
	} {
		t.Run(name, func(t *testing.T) {
			tr := exchange(tc.id, tc.secret)
			assert.Equal(t, tc.status, tr.status, tr.Error)
		})
	}
	t.Run("client_secret_post", func(t *testing.T) {
		tr := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {e.singleCode(singleQuery())}, "code_verifier": {verifier}, "redirect_uri": {singleURI},
			"client_id": {singleID}, "client_secret": {singleSecret}}, "", "")
		assert.Equal(t, http.StatusOK, tr.status, tr.Error)
	})
}
