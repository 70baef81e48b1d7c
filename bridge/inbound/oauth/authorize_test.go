package oauth_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/cvbridge/cvbridge/bridge/inbound/oauth"
)

// TestOAuth2ClientFlowWithoutPKCE: a confidential client whose PKCE
// setting is optional runs the plain authorization-code flow with
// golang.org/x/oauth2 through the real handlers: consent, code exchange
// with client authentication and no verifier, the enrolment, a refresh.
func TestOAuth2ClientFlowWithoutPKCE(t *testing.T) {
	t.Parallel()
	e := newEnv(t, optionalPKCE)
	conf := e.clientConfig(redirectURI)
	ctx := e.clientCtx()

	loc := e.authorizeAs(conf.AuthCodeURL("state-7"))
	assert.Equal(t, redirectURI, loc.Scheme+"://"+loc.Host+loc.Path)
	assert.Equal(t, "state-7", loc.Query().Get("state"))
	require.Empty(t, loc.Query().Get("error"), loc.Query().Get("error_description"))
	tok, err := conf.Exchange(ctx, loc.Query().Get("code"))
	require.NoError(t, err)
	require.NotEmpty(t, tok.RefreshToken)

	resp, body := e.enrolWith(conf.Client(ctx, tok))
	requireAccepted(t, resp, body)
	require.Len(t, e.enr.Calls(), 1)

	expired := *tok
	expired.Expiry = time.Now().Add(-time.Second)
	fresh, err := conf.TokenSource(ctx, &expired).Token()
	require.NoError(t, err)
	assert.NotEqual(t, tok.RefreshToken, fresh.RefreshToken)
	resp, body = e.enrolWith(conf.Client(ctx, fresh))
	requireAccepted(t, resp, body)

	t.Run("a wrong client secret is still refused", func(t *testing.T) {
		code := e.authorizeAs(conf.AuthCodeURL("s")).Query().Get("code")
		bad := *conf
		bad.ClientSecret = "wrong-secret-0123456789"
		_, err := bad.Exchange(ctx, code)
		assert.Equal(t, "invalid_client", retrieveError(t, err))
	})
	t.Run("a verifier for a code issued without challenge is refused", func(t *testing.T) {
		code := e.authorizeAs(conf.AuthCodeURL("s")).Query().Get("code")
		_, err := conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		assert.Equal(t, "invalid_grant", retrieveError(t, err))
	})
	t.Run("a request that sends PKCE is verified", func(t *testing.T) {
		v := oauth2.GenerateVerifier()
		code := e.authorizeAs(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v))).Query().Get("code")
		_, err := conf.Exchange(ctx, code)
		assert.Equal(t, "invalid_grant", retrieveError(t, err), "no verifier")
		code = e.authorizeAs(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v))).Query().Get("code")
		_, err = conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		assert.Equal(t, "invalid_grant", retrieveError(t, err), "another verifier")
		code = e.authorizeAs(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v))).Query().Get("code")
		_, err = conf.Exchange(ctx, code, oauth2.VerifierOption(v))
		assert.NoError(t, err)
	})
	t.Run("plain PKCE is refused, back at the client", func(t *testing.T) {
		q := authorizeQuery()
		q.Set("code_challenge", verifier)
		q.Set("code_challenge_method", "plain")
		assertErrorRedirect(t, e, q, "invalid_request", "S256")
	})
}

// errorRedirect requests q and returns the query of the redirect it must
// answer with.
func errorRedirect(t *testing.T, e *env, q url.Values) url.Values {
	t.Helper()
	resp, err := e.client.Get(e.srv.URL + "/oauth/authorize?" + q.Encode())
	require.NoError(t, err)
	page := read(t, resp)
	require.Equal(t, http.StatusFound, resp.StatusCode, "not redirected: %s", page)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, q.Get("redirect_uri"), loc.Scheme+"://"+loc.Host+loc.Path)
	assert.Empty(t, loc.Query().Get("code"))
	return loc.Query()
}

// assertErrorRedirect checks that q is redirected to the client with
// error code, a description mentioning hint, and the request's state.
func assertErrorRedirect(t *testing.T, e *env, q url.Values, code, hint string) {
	t.Helper()
	got := errorRedirect(t, e, q)
	assert.Equal(t, code, got.Get("error"))
	assert.Contains(t, got.Get("error_description"), hint)
	assert.Equal(t, q.Get("state"), got.Get("state"))
}

// TestAuthorizeErrorsGoBackToTheClient: once the client and its redirect
// URI are known good, errors are redirected to the client (RFC 6749
// §4.1.2.1) with error, error_description and state.
func TestAuthorizeErrorsGoBackToTheClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name       string
		change     func(url.Values)
		code, hint string
	}{
		{"no PKCE for a client that requires it", func(q url.Values) {
			q.Del("code_challenge")
			q.Del("code_challenge_method")
		}, "invalid_request", "code_challenge"},
		{"plain PKCE", func(q url.Values) {
			q.Set("code_challenge", verifier)
			q.Set("code_challenge_method", "plain")
		}, "invalid_request", "S256"},
		{"no code_challenge_method", func(q url.Values) { q.Del("code_challenge_method") }, "invalid_request", "S256"},
		{"method without challenge", func(q url.Values) { q.Del("code_challenge") }, "invalid_request", "code_challenge"},
		{"challenge too short", func(q url.Values) { q.Set("code_challenge", "abc") }, "invalid_request", "code_challenge"},
		{"no response_type", func(q url.Values) { q.Del("response_type") }, "invalid_request", "response_type"},
		{"implicit grant", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type", "code"},
		{"state with odd characters", func(q url.Values) {
			q.Set("state", "a b&c=d/é")
			q.Set("response_type", "token")
		}, "unsupported_response_type", "code"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := authorizeQuery()
			tc.change(q)
			assertErrorRedirect(t, e, q, tc.code, tc.hint)
		})
	}
	t.Run("redirect URI with a query keeps it", func(t *testing.T) {
		e := newEnv(t, func(c *oauth.Config) {
			c.Clients[0].RedirectURIs = append(c.Clients[0].RedirectURIs, "https://cv.example/cb?tenant=7")
		})
		q := authorizeQuery()
		q.Set("redirect_uri", "https://cv.example/cb?tenant=7")
		q.Set("response_type", "token")
		resp, err := e.client.Get(e.srv.URL + "/oauth/authorize?" + q.Encode())
		require.NoError(t, err)
		read(t, resp)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		assert.Equal(t, "7", loc.Query().Get("tenant"))
		assert.Equal(t, "unsupported_response_type", loc.Query().Get("error"))
	})
	t.Run("no redirect URI with two registered: a page", func(t *testing.T) {
		q := authorizeQuery()
		q.Del("redirect_uri")
		q.Set("response_type", "token")
		resp, err := e.client.Get(e.srv.URL + "/oauth/authorize?" + q.Encode())
		require.NoError(t, err)
		page := read(t, resp)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Location"))
		assert.True(t, strings.Contains(page, "redirect"), page)
	})
}

// TestConsentFormAsABrowserPostsIt: the page's form posts to the page's own
// address, query included, as a browser does with a form without action,
// and its body repeats the parameters; a POST's parameters are its body
// only, so they are not there twice (the request was refused), and a
// query naming something else is ignored. The CSP lets the form's answer
// redirect to the client's origin.
func TestConsentFormAsABrowserPostsIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := authorizeQuery()
	resp, err := e.client.Get(e.srv.URL + "/oauth/authorize?" + q.Encode())
	require.NoError(t, err)
	page := read(t, resp)
	assert.Contains(t, page, `<form method="post" autocomplete="off">`, "posted to the page's own address")
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "form-action 'self' https://cv.example;")
	csrf := csrfRe.FindStringSubmatch(page)[1]

	post := func(query url.Values) *http.Response {
		t.Helper()
		form := url.Values{"csrf_token": {csrf}, "username": {"admin"}, "password": {adminPass}, "decision": {"allow"}}
		for k, v := range q {
			form[k] = v
		}
		resp, err := e.client.PostForm(e.srv.URL+"/oauth/authorize?"+query.Encode(), form)
		require.NoError(t, err)
		read(t, resp)
		return resp
	}
	for name, query := range map[string]url.Values{
		"the page's own query": q,
		"another client":       {"client_id": {singleID}, "redirect_uri": {singleURI}, "state": {"forged"}},
	} {
		resp := post(query)
		require.Equal(t, http.StatusFound, resp.StatusCode, name)
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		assert.Equal(t, redirectURI, loc.Scheme+"://"+loc.Host+loc.Path, name)
		assert.Equal(t, "st-1", loc.Query().Get("state"), name)
		assert.NotEmpty(t, loc.Query().Get("code"), name)
	}
}

// TestTokenRequestInTheURLIsRefused: a code or refresh token in the token
// endpoint's URL would be written to every proxy's log; such a request is
// refused before it is read, and the code stays usable.
func TestTokenRequestInTheURLIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	code := e.code(authorizeQuery())
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/oauth/token?"+form.Encode(), nil)
	require.NoError(t, err)
	req.SetBasicAuth(clientID, clientSecret)
	resp, err := e.client.Do(req)
	require.NoError(t, err)
	body := read(t, resp)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, body, `"error":"invalid_request"`)
	assert.Equal(t, http.StatusOK, e.exchange(code, verifier).status, "the code was not spent")
}
