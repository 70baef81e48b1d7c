package oauth_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// postToken is e.token for other goroutines: it reports failures as an
// error instead of stopping the test.
func (e *env) postToken(form url.Values, id, secret string) (tokenResp, error) {
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return tokenResp{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := e.client.Do(req)
	if err != nil {
		return tokenResp{}, err
	}
	b, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return tokenResp{}, err
	}
	var tr tokenResp
	if err := json.Unmarshal(b, &tr); err != nil {
		return tokenResp{}, fmt.Errorf("%d %s: %w", resp.StatusCode, b, err)
	}
	tr.status = resp.StatusCode
	return tr, nil
}

// TestRefreshRetriedWithinTheGraceWindow: a refresh whose answer was lost
// is retried with the same refresh token and gets the same new pair; the
// grant lives on. After the window, the old token is reuse and revokes
// the grant.
func TestRefreshRetriedWithinTheGraceWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	issued := e.exchange(e.code(authorizeQuery()), verifier)
	require.Equal(t, http.StatusOK, issued.status)

	lost := e.refresh(issued.Refresh)
	require.Equal(t, http.StatusOK, lost.status, lost.Error)
	e.clk.Advance(10 * time.Second)
	retry := e.refresh(issued.Refresh)
	require.Equal(t, http.StatusOK, retry.status, retry.Error)
	assert.Equal(t, lost.Access, retry.Access, "the same pair")
	assert.Equal(t, lost.Refresh, retry.Refresh, "the same pair")
	assert.InDelta(t, 3600-10, retry.Expires, 1, "expires_in counts from the first answer")
	resp, body := e.enrol(retry.Access)
	requireAccepted(t, resp, body)

	e.clk.Advance(21 * time.Second)
	late := e.refresh(issued.Refresh)
	assert.Equal(t, http.StatusBadRequest, late.status)
	assert.Equal(t, "invalid_grant", late.Error)
	resp, _ = e.enrol(retry.Access)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "reuse after the window revokes the grant")
	assert.Equal(t, "invalid_grant", e.refresh(retry.Refresh).Error)
}

// TestRefreshGraceOnlyForTheSameClient: another client presenting a
// rotated refresh token gets no grace: it is reuse, and the grant goes.
func TestRefreshGraceOnlyForTheSameClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	issued := e.exchange(e.code(authorizeQuery()), verifier)
	require.Equal(t, http.StatusOK, issued.status)
	next := e.refresh(issued.Refresh)
	require.Equal(t, http.StatusOK, next.status)
	other := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {issued.Refresh}}, singleID, url.QueryEscape(singleSecret))
	assert.Equal(t, "invalid_grant", other.Error)
	resp, _ := e.enrol(next.Access)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// TestConcurrentRefreshes: twenty Coachview workers refreshing with the
// same token at once all get the same new pair and the grant lives on;
// the old token presented after the window revokes the grant.
func TestConcurrentRefreshes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	issued := e.exchange(e.code(authorizeQuery()), verifier)
	require.Equal(t, http.StatusOK, issued.status)

	const n = 20
	results := make([]tokenResp, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = e.postToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {issued.Refresh}}, clientID, clientSecret)
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, r := range results {
		require.NoError(t, errs[i])
		if r.status == http.StatusOK {
			ok++
		}
		assert.Equal(t, results[0].Access, r.Access, "refresh %d", i)
		assert.Equal(t, results[0].Refresh, r.Refresh, "refresh %d", i)
	}
	require.Equal(t, n, ok, "every concurrent refresh succeeds")
	resp, body := e.enrol(results[0].Access)
	requireAccepted(t, resp, body)
	next := e.refresh(results[0].Refresh)
	require.Equal(t, http.StatusOK, next.status, "the grant is alive")

	e.clk.Advance(31 * time.Second)
	assert.Equal(t, "invalid_grant", e.refresh(issued.Refresh).Error)
	resp, _ = e.enrol(next.Access)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "reuse after the window revokes the grant")
}

// TestRefreshGraceConfigurable: the window is a setting; 0 turns it off.
func TestRefreshGraceConfigurable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, refreshGrace(0))
	issued := e.exchange(e.code(authorizeQuery()), verifier)
	require.Equal(t, http.StatusOK, issued.status)
	next := e.refresh(issued.Refresh)
	require.Equal(t, http.StatusOK, next.status)
	assert.Equal(t, "invalid_grant", e.refresh(issued.Refresh).Error)
	resp, _ := e.enrol(next.Access)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	e = newEnv(t, refreshGrace(2*time.Minute))
	issued = e.exchange(e.code(authorizeQuery()), verifier)
	require.Equal(t, http.StatusOK, issued.status)
	next = e.refresh(issued.Refresh)
	require.Equal(t, http.StatusOK, next.status)
	e.clk.Advance(90 * time.Second)
	assert.Equal(t, next.Refresh, e.refresh(issued.Refresh).Refresh)
}

// requireAccepted checks that the enrolment endpoint let a request
// through: any 2xx (the LMS's own answer is not under test here).
func requireAccepted(t *testing.T, resp *http.Response, body string) {
	t.Helper()
	require.True(t, resp.StatusCode >= 200 && resp.StatusCode < 300, "%d %s", resp.StatusCode, body)
}
