package oauth_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/inbound/internal/fakes"
	"github.com/cvbridge/cvbridge/bridge/inbound/link"
	"github.com/cvbridge/cvbridge/bridge/inbound/oauth"
)

const (
	clientID     = "coachview"
	clientSecret = "client-secret-0123456789"
	redirectURI  = "https://cv.example/oauth/callback"
	adminPass    = "correct horse battery staple"
	verifier     = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

	singleID     = "single"
	singleSecret = "s3cr%t+plus/0123456789"
	singleURI    = "https://lms-admin.example/cb"
)

// env is the authorisation server and enrolment endpoint on one TLS server.
type env struct {
	t      *testing.T
	srv    *httptest.Server
	client *http.Client
	clk    *clock.Fake
	store  inboundstore.Store
	enr    *fakes.Enroller
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// newEnv starts the server with two clients: Coachview (clientID, two
// redirect URIs) and a second one (singleID, one redirect URI and a secret
// with characters that form encoding changes). opts change the
// configuration first.
func newEnv(t *testing.T, opts ...func(*oauth.Config)) *env {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(adminPass), bcrypt.MinCost)
	require.NoError(t, err)
	clk := clock.NewFake(time.Now().Truncate(time.Millisecond))
	store := fakes.Store(t, clk)
	log := slog.New(slog.DiscardHandler)
	cfg := oauth.Config{
		AdminPasswordHashFile: writeFile(t, "admin.hash", string(hash)+"\n"),
		Clients: []oauth.ClientConfig{
			{ID: clientID, Name: "Coachview", SecretFile: writeFile(t, "client.secret", clientSecret),
				RedirectURIs: []string{redirectURI, "https://cv.example/other"}},
			{ID: singleID, SecretFile: writeFile(t, "single.secret", singleSecret), RedirectURIs: []string{singleURI}},
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	as, err := oauth.New(cfg, store, clk, log)
	require.NoError(t, err)
	enr := &fakes.Enroller{}
	router, err := inbound.NewCodeRouter([]inbound.CodeRule{{Connection: "moodle", Patterns: []string{"*"}, Enroller: enr}}, "")
	require.NoError(t, err)
	proc := inbound.NewProcessor(store, router, inbound.WithClock(clk), inbound.WithLogger(log))
	lh, err := link.New(link.Config{Owner: "test"}, store, proc, as, clk, log)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/oauth/authorize", as.AuthorizeHandler())
	mux.Handle("/oauth/token", as.TokenHandler())
	mux.Handle("/enrol", lh)
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &env{t: t, srv: srv, client: c, clk: clk, store: store, enr: enr}
}

func challenge(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorizeQuery is a valid authorization request with PKCE.
func authorizeQuery() url.Values {
	return url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
		"state": {"st-1"}, "code_challenge": {challenge(verifier)}, "code_challenge_method": {"S256"}}
}

var csrfRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func read(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return string(b)
}

// loginPage fetches the login page for q and returns its CSRF token.
func (e *env) loginPage(q url.Values) string {
	e.t.Helper()
	resp, err := e.client.Get(e.srv.URL + "/oauth/authorize?" + q.Encode())
	require.NoError(e.t, err)
	page := read(e.t, resp)
	require.Equal(e.t, http.StatusOK, resp.StatusCode, page)
	assert.Equal(e.t, "DENY", resp.Header.Get("X-Frame-Options"))
	m := csrfRe.FindStringSubmatch(page)
	require.Len(e.t, m, 2, "no CSRF token on the page")
	return m[1]
}

// submit posts the login form for q and returns the response.
func (e *env) submit(q url.Values, csrf, user, pass, decision string) *http.Response {
	e.t.Helper()
	form := url.Values{}
	for k, v := range q {
		form[k] = v
	}
	form.Set("csrf_token", csrf)
	form.Set("username", user)
	form.Set("password", pass)
	form.Set("decision", decision)
	resp, err := e.client.PostForm(e.srv.URL+"/oauth/authorize", form)
	require.NoError(e.t, err)
	return resp
}

// code runs the authorize step and returns the code from the redirect.
func (e *env) code(q url.Values) string {
	e.t.Helper()
	resp := e.submit(q, e.loginPage(q), "admin", adminPass, "allow")
	read(e.t, resp)
	require.Equal(e.t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(e.t, err)
	assert.Equal(e.t, redirectURI, loc.Scheme+"://"+loc.Host+loc.Path)
	assert.Equal(e.t, "st-1", loc.Query().Get("state"))
	require.NotEmpty(e.t, loc.Query().Get("code"))
	return loc.Query().Get("code")
}

// tokenResp is a token endpoint answer.
type tokenResp struct {
	status  int
	Access  string `json:"access_token"`
	Refresh string `json:"refresh_token"`
	Type    string `json:"token_type"`
	Expires int    `json:"expires_in"`
	Error   string `json:"error"`
}

func (e *env) token(form url.Values, id, secret string) tokenResp {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/oauth/token", strings.NewReader(form.Encode()))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	resp, err := e.client.Do(req)
	require.NoError(e.t, err)
	var tr tokenResp
	require.NoError(e.t, json.Unmarshal([]byte(read(e.t, resp)), &tr))
	tr.status = resp.StatusCode
	assert.Equal(e.t, "no-store", resp.Header.Get("Cache-Control"))
	return tr
}

func (e *env) exchange(code, v string) tokenResp {
	return e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {v}}, clientID, clientSecret)
}

func (e *env) refresh(rt string) tokenResp {
	return e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, clientID, clientSecret)
}

// enrol calls the enrolment endpoint with access token tok ("" for none).
func (e *env) enrol(tok string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/enrol", strings.NewReader(
		`{"PersoonExterneId":"p12345","PersoonVoornaam":"Jan","PersoonTussenvoegsels":"","PersoonAchternaam":"Jansen","PersoonEmailadres":"jan@jansen.nl","Elearningcode":"e12345","Extra":1}`))
	require.NoError(e.t, err)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := e.client.Do(req)
	require.NoError(e.t, err)
	return resp, read(e.t, resp)
}

func TestFullFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tr := e.exchange(e.code(authorizeQuery()), verifier)
	require.Equal(t, http.StatusOK, tr.status, tr.Error)
	assert.Equal(t, "Bearer", tr.Type)
	assert.Equal(t, 3600, tr.Expires)
	require.NotEmpty(t, tr.Access)
	require.NotEmpty(t, tr.Refresh)

	resp, body := e.enrol(tr.Access)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	calls := e.enr.Calls()
	require.Len(t, calls, 1)
	assert.Equal(t, "enrol", calls[0].Action)
	assert.Equal(t, "p12345", calls[0].Enrolment.PersonID)
	assert.Equal(t, "e12345", calls[0].Enrolment.ElearningCode)
	assert.Equal(t, "jan@jansen.nl", calls[0].Enrolment.Email)

	// Only hashes are stored.
	toks, err := e.store.ListTokens(t.Context(), inboundstore.TokenFilter{})
	require.NoError(t, err)
	require.Len(t, toks, 2, "the code's record and the tokens' record")
	assert.Equal(t, inboundstore.Hash(tr.Access), toks[0].AccessHash)
	assert.Equal(t, inboundstore.Hash(tr.Refresh), toks[0].RefreshHash)
	assert.True(t, toks[1].Revoked(), "the code was consumed")

	// Refresh rotates: the new pair works, the old refresh token does not.
	next := e.refresh(tr.Refresh)
	require.Equal(t, http.StatusOK, next.status, next.Error)
	assert.NotEqual(t, tr.Refresh, next.Refresh)
	resp, _ = e.enrol(tr.Access)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the old access token went with its refresh token")
	resp, _ = e.enrol(next.Access)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// Presenting a rotated refresh token after the grace window revokes
	// the whole grant.
	e.clk.Advance(31 * time.Second)
	again := e.refresh(tr.Refresh)
	assert.Equal(t, http.StatusBadRequest, again.status)
	assert.Equal(t, "invalid_grant", again.Error)
	resp, _ = e.enrol(next.Access)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, "invalid_grant", e.refresh(next.Refresh).Error)
}

func TestCodeIsSingleUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	code := e.code(authorizeQuery())
	first := e.exchange(code, verifier)
	require.Equal(t, http.StatusOK, first.status)
	second := e.exchange(code, verifier)
	assert.Equal(t, http.StatusBadRequest, second.status)
	assert.Equal(t, "invalid_grant", second.Error)
	resp, _ := e.enrol(first.Access)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a reused code revokes the tokens issued for it")
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name   string
		form   func(code string) url.Values
		id     string
		secret string
		status int
		err    string
	}{
		{"wrong verifier", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirectURI}, "code_verifier": {verifier + "x"}}
		}, clientID, clientSecret, 400, "invalid_grant"},
		{"missing verifier", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirectURI}}
		}, clientID, clientSecret, 400, "invalid_grant"},
		{"other registered redirect URI", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {"https://cv.example/other"}, "code_verifier": {verifier}}
		}, clientID, clientSecret, 400, "invalid_grant"},
		{"wrong client secret", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}
		}, clientID, "wrong", 401, "invalid_client"},
		{"no client credentials", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}
		}, "", "", 401, "invalid_client"},
		{"unknown code", func(string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}
		}, clientID, clientSecret, 400, "invalid_grant"},
		{"password grant not allowed", func(string) url.Values {
			return url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {adminPass}}
		}, clientID, clientSecret, 400, "unsupported_grant_type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := e.token(tc.form(e.code(authorizeQuery())), tc.id, tc.secret)
			assert.Equal(t, tc.status, tr.status)
			assert.Equal(t, tc.err, tr.Error)
			assert.Empty(t, tr.Access)
		})
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for name, uri := range map[string]string{
		"suffix host":    "https://evil.cv.example/oauth/callback",
		"longer path":    redirectURI + "/x",
		"extra query":    redirectURI + "?a=b",
		"other scheme":   "http://cv.example/oauth/callback",
		"another domain": "https://attacker.example/cb",
	} {
		t.Run(name, func(t *testing.T) {
			q := authorizeQuery()
			q.Set("redirect_uri", uri)
			resp, err := e.client.Get(e.srv.URL + "/oauth/authorize?" + q.Encode())
			require.NoError(t, err)
			page := read(t, resp)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
			assert.Empty(t, resp.Header.Get("Location"), "never redirected")
			assert.Contains(t, page, "not registered")
		})
	}
	t.Run("unknown client", func(t *testing.T) {
		q := authorizeQuery()
		q.Set("client_id", "nobody")
		resp, err := e.client.Get(e.srv.URL + "/oauth/authorize?" + q.Encode())
		require.NoError(t, err)
		read(t, resp)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
	t.Run("plain PKCE refused", func(t *testing.T) {
		q := authorizeQuery()
		q.Set("code_challenge", verifier)
		q.Set("code_challenge_method", "plain")
		assert.Equal(t, "invalid_request", errorRedirect(t, e, q).Get("error"))
	})
	t.Run("wrong password", func(t *testing.T) {
		q := authorizeQuery()
		resp := e.submit(q, e.loginPage(q), "admin", "wrong", "allow")
		assert.Contains(t, read(t, resp), "Wrong user name or password")
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
	t.Run("wrong user", func(t *testing.T) {
		q := authorizeQuery()
		resp := e.submit(q, e.loginPage(q), "root", adminPass, "allow")
		read(t, resp)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
	t.Run("bad CSRF token", func(t *testing.T) {
		q := authorizeQuery()
		e.loginPage(q)
		resp := e.submit(q, "forged", "admin", adminPass, "allow")
		read(t, resp)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Empty(t, resp.Header.Get("Location"))
	})
	t.Run("deny", func(t *testing.T) {
		q := authorizeQuery()
		resp := e.submit(q, e.loginPage(q), "", "", "deny")
		read(t, resp)
		require.Equal(t, http.StatusFound, resp.StatusCode)
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		assert.Equal(t, "access_denied", loc.Query().Get("error"))
		assert.Empty(t, loc.Query().Get("code"))
	})
}

func TestBearerRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tr := e.exchange(e.code(authorizeQuery()), verifier)
	require.Equal(t, http.StatusOK, tr.status)

	resp, _ := e.enrol("")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, `Bearer realm="cvbridge"`, resp.Header.Get("WWW-Authenticate"))
	resp, _ = e.enrol("made-up")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)

	e.clk.Advance(time.Hour)
	resp, _ = e.enrol(tr.Access)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "expired after an hour")
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
	next := e.refresh(tr.Refresh)
	require.Equal(t, http.StatusOK, next.status, "the refresh token outlives the access token")

	n, err := e.store.RevokeClient(t.Context(), clientID, e.clk.Now(), inboundstore.ReasonOperator)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	resp, _ = e.enrol(next.Access)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "revoked by the operator")
	assert.Empty(t, e.enr.Calls(), "no refused request reached the LMS")
}

// TestRefreshReuseDetectedAfterThePurge: a thief who rotated a stolen
// refresh token first is caught when the real client, more than an hour
// later, presents the rotated token: the daemon's hourly token purge in
// between must not have forgotten it.
func TestRefreshReuseDetectedAfterThePurge(t *testing.T) {
	e := newEnv(t)
	issued := e.exchange(e.code(authorizeQuery()), verifier)
	require.Equal(t, http.StatusOK, issued.status)
	stolen := e.refresh(issued.Refresh)
	require.Equal(t, http.StatusOK, stolen.status, "the thief rotates first")

	e.clk.Advance(61 * time.Minute)
	_, err := e.store.PurgeTokens(t.Context(), e.clk.Now()) // the daemon's hourly purge
	require.NoError(t, err)

	assert.Equal(t, "invalid_grant", e.refresh(issued.Refresh).Error, "the real client's rotated token")
	assert.Equal(t, "invalid_grant", e.refresh(stolen.Refresh).Error, "the reuse revoked the thief's grant")
}

// optionalPKCE makes PKCE optional for Coachview (the first client).
func optionalPKCE(c *oauth.Config) { c.Clients[0].PKCE = oauth.PKCEOptional }

// refreshGrace sets the refresh reuse grace window.
func refreshGrace(d time.Duration) func(*oauth.Config) {
	return func(c *oauth.Config) { c.RefreshReuseGrace = &d }
}
