package oauth_test

import (
	"context"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/cvbridge/cvbridge/bridge/inbound/oauth"
)

// TestLoginLimiterPerAddress: forty wrong passwords sent at once from one
// address are not all checked, and they do not lock out the administrator
// signing in from another address.
func TestLoginLimiterPerAddress(t *testing.T) {
	t.Parallel()
	// A realistic bcrypt cost keeps each check busy long enough for the
	// guesses to overlap.
	hash, err := bcrypt.GenerateFromPassword([]byte(adminPass), 10)
	require.NoError(t, err)
	e := newEnv(t, func(c *oauth.Config) { c.AdminPasswordHashFile = writeFile(t, "slow.hash", string(hash)) })
	q := authorizeQuery()
	csrf := e.loginPage(q)
	form := url.Values{}
	for k, v := range q {
		form[k] = v
	}
	form.Set("csrf_token", csrf)
	form.Set("username", "admin")
	form.Set("password", "guess")
	form.Set("decision", "allow")

	guesser := *e.srv.Client() // no cookie jar: every guess sends the page's cookie
	guesser.Jar = nil
	const n = 40
	codes := make([]int, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/oauth/authorize", strings.NewReader(form.Encode()))
			if err != nil {
				errs[i] = err
				return
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: "__Host-cvbridge-csrf", Value: csrf})
			resp, err := guesser.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			codes[i] = resp.StatusCode
			errs[i] = resp.Body.Close()
		})
	}
	close(start)
	wg.Wait()
	checked, limited := 0, 0
	for i, c := range codes {
		require.NoError(t, errs[i])
		switch c {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Errorf("attempt %d: status %d", i, c)
		}
	}
	assert.LessOrEqual(t, checked, 5, "passwords checked")
	assert.Equal(t, n, checked+limited)

	// The administrator, elsewhere, still signs in.
	other := *e.srv.Client()
	tr := other.Transport.(*http.Transport).Clone()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialer.DialContext(ctx, network, addr)
	}
	other.Transport = tr
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	other.Jar = jar
	other.CheckRedirect = e.client.CheckRedirect
	admin := *e
	admin.client = &other
	resp := admin.submit(q, admin.loginPage(q), "admin", adminPass, "allow")
	read(t, resp)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.NotEmpty(t, loc.Query().Get("code"))

	// The guessing address stays limited.
	resp = e.submit(q, e.loginPage(q), "admin", adminPass, "allow")
	read(t, resp)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
}
