package oauth_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/browsertest"
	"github.com/cvbridge/cvbridge/bridge/inbound/oauth"
)

// TestBrowserAuthorizesAClient drives the consent page in a real headless
// Chromium, as the provider's administrator does when Coachview is linked:
// the browser opens the authorization URL (its parameters in the query),
// signs in, clicks Allow and must arrive at the client's redirect URI, on
// another origin, with a code and the state. Chromium found what the
// tests' HTTP client did not: the form posted to the page's own URL, so
// every parameter came twice and the request was refused, and the page's
// CSP (form-action 'self') blocked the redirect to the client.
func TestBrowserAuthorizesAClient(t *testing.T) {
	t.Parallel()
	ctx := browsertest.New(t, browsertest.IgnoreCertificateErrors)
	arrived := make(chan url.Values, 1)
	callback := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- r.URL.Query():
		default:
		}
		_, _ = w.Write([]byte("<!doctype html><title>back at the client</title>"))
	}))
	defer callback.Close()
	e := newEnv(t, func(c *oauth.Config) {
		c.Clients[0].RedirectURIs = append(c.Clients[0].RedirectURIs, callback.URL+"/cb")
	})

	for _, decision := range []string{"deny", "allow"} {
		q := authorizeQuery()
		q.Set("redirect_uri", callback.URL+"/cb")
		q.Set("state", "st-"+decision)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.Navigate(e.srv.URL+"/oauth/authorize?"+q.Encode()),
			chromedp.WaitVisible(chromedp.ID("username")),
			chromedp.SendKeys(chromedp.ID("username"), "admin"),
			chromedp.SendKeys(chromedp.ID("password"), adminPass),
			chromedp.Click(chromedp.CSS(`button[value="`+decision+`"]`)),
		), decision)
		var got url.Values
		select {
		case got = <-arrived:
		case <-time.After(30 * time.Second):
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("%s: the browser did not reach the client's redirect URI; it is at %s showing %q", decision, loc, strings.TrimSpace(body))
		}
		assert.Equal(t, "st-"+decision, got.Get("state"), decision)
		if decision == "deny" {
			assert.Equal(t, "access_denied", got.Get("error"))
			continue
		}
		require.NotEmpty(t, got.Get("code"), "allow: %v", got)
		tr := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")},
			"redirect_uri": {callback.URL + "/cb"}, "code_verifier": {verifier}}, clientID, clientSecret)
		assert.Equal(t, http.StatusOK, tr.status, "the code the browser carried is exchanged")
		assert.NotEmpty(t, tr.Access)
	}
}
