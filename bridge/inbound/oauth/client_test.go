package oauth_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// clientConfig is Coachview's side of the enrolment link: a standard
// OAuth 2.0 client (golang.org/x/oauth2) registered with redirect.
func (e *env) clientConfig(redirect string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: clientID, ClientSecret: clientSecret, RedirectURL: redirect,
		Endpoint: oauth2.Endpoint{AuthURL: e.srv.URL + "/oauth/authorize", TokenURL: e.srv.URL + "/oauth/token",
			AuthStyle: oauth2.AuthStyleInHeader},
	}
}

// clientCtx makes the oauth2 package use the test server's TLS client.
func (e *env) clientCtx() context.Context {
	return context.WithValue(e.t.Context(), oauth2.HTTPClient, e.srv.Client())
}

// authorizeAs drives the login and consent page for authURL, as the
// provider's administrator does in a browser, and returns the redirect
// response's Location.
func (e *env) authorizeAs(authURL string) *url.URL {
	e.t.Helper()
	u, err := url.Parse(authURL)
	require.NoError(e.t, err)
	q := u.Query()
	resp := e.submit(q, e.loginPage(q), "admin", adminPass, "allow")
	read(e.t, resp)
	require.Equal(e.t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(e.t, err)
	return loc
}

// enrolWith posts an enrolment through client and returns the response.
func (e *env) enrolWith(client *http.Client) (*http.Response, string) {
	e.t.Helper()
	resp, err := client.Post(e.srv.URL+"/enrol", "application/json", strings.NewReader(
		`{"PersoonExterneId":"p12345","PersoonVoornaam":"Jan","PersoonAchternaam":"Jansen","PersoonEmailadres":"jan@jansen.nl","Elearningcode":"e12345"}`))
	require.NoError(e.t, err)
	return resp, read(e.t, resp)
}

// retrieveError is the RFC 6749 error code of a failed token request.
func retrieveError(t *testing.T, err error) string {
	t.Helper()
	var re *oauth2.RetrieveError
	require.True(t, errors.As(err, &re), "not a token endpoint error: %v", err)
	return re.ErrorCode
}

// TestOAuth2ClientFlow drives the whole authorization-code flow with the
// golang.org/x/oauth2 client: PKCE, code exchange, the access token on the
// enrolment endpoint, expiry, refresh with rotation, and the refusals.
func TestOAuth2ClientFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	conf := e.clientConfig(redirectURI)
	ctx := e.clientCtx()
	v := oauth2.GenerateVerifier()

	loc := e.authorizeAs(conf.AuthCodeURL("state-42", oauth2.S256ChallengeOption(v)))
	assert.Equal(t, "state-42", loc.Query().Get("state"))
	code := loc.Query().Get("code")
	require.NotEmpty(t, code)

	_, err := conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
	assert.Equal(t, "invalid_grant", retrieveError(t, err), "another verifier than the challenge's")
	loc = e.authorizeAs(conf.AuthCodeURL("state-43", oauth2.S256ChallengeOption(v)))
	tok, err := conf.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(v))
	require.NoError(t, err)
	assert.Equal(t, "Bearer", tok.Type())
	require.NotEmpty(t, tok.RefreshToken)
	assert.WithinDuration(t, time.Now().Add(time.Hour), tok.Expiry, time.Minute)

	resp, body := e.enrolWith(conf.Client(ctx, tok))
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Len(t, e.enr.Calls(), 1)

	// An hour later the access token has expired: refused, though the
	// client still holds it.
	e.clk.Advance(time.Hour)
	resp, _ = e.enrolWith(conf.Client(ctx, tok))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)

	// The client sees the expiry too (its token carries the server's
	// clock's view) and refreshes through its TokenSource.
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Second)
	fresh, err := conf.TokenSource(ctx, &expired).Token()
	require.NoError(t, err)
	assert.NotEqual(t, tok.AccessToken, fresh.AccessToken)
	assert.NotEqual(t, tok.RefreshToken, fresh.RefreshToken, "refresh tokens rotate")
	resp, body = e.enrolWith(conf.Client(ctx, fresh))
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Len(t, e.enr.Calls(), 1, "the same request again is answered from its first outcome")

	// After the grace window the old refresh token is refused, and
	// presenting it revokes the grant.
	e.clk.Advance(31 * time.Second)
	_, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Second)}).Token()
	assert.Equal(t, "invalid_grant", retrieveError(t, err))
	resp, _ = e.enrolWith(conf.Client(ctx, fresh))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a replayed refresh token revokes its grant")
	assert.Len(t, e.enr.Calls(), 1, "no refused request reached the LMS")
}

func TestOAuth2ClientWrongRedirectURI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := e.clientCtx()
	v := oauth2.GenerateVerifier()

	t.Run("unregistered at the authorize step", func(t *testing.T) {
		conf := e.clientConfig("https://attacker.example/cb")
		resp, err := e.client.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)))
		require.NoError(t, err)
		page := read(t, resp)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Location"), "never redirected")
		assert.Contains(t, page, "not registered")
	})
	t.Run("another registered one at the exchange", func(t *testing.T) {
		conf := e.clientConfig(redirectURI)
		code := e.authorizeAs(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v))).Query().Get("code")
		other := e.clientConfig("https://cv.example/other")
		_, err := other.Exchange(ctx, code, oauth2.VerifierOption(v))
		assert.Equal(t, "invalid_grant", retrieveError(t, err))
	})
	t.Run("unregistered at the exchange", func(t *testing.T) {
		conf := e.clientConfig(redirectURI)
		code := e.authorizeAs(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v))).Query().Get("code")
		_, err := e.clientConfig("https://attacker.example/cb").Exchange(ctx, code, oauth2.VerifierOption(v))
		assert.Equal(t, "invalid_grant", retrieveError(t, err))
	})
}
