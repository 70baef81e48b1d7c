package ws_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters/moodle/moodletest"
	"github.com/cvbridge/cvbridge/adapters/moodle/ws"
)

func TestEncodeUsesPHPBrackets(t *testing.T) {
	t.Parallel()
	v, err := ws.Encode(map[string]any{
		"users":   []map[string]any{{"username": "jdoe", "createpassword": 1}},
		"values":  []string{"a", "b"},
		"options": []map[string]any{{"name": "onlyactive", "value": true}},
	})
	require.NoError(t, err)
	assert.Equal(t, "options%5B0%5D%5Bname%5D=onlyactive&options%5B0%5D%5Bvalue%5D=1&users%5B0%5D%5Bcreatepassword%5D=1&users%5B0%5D%5Busername%5D=jdoe&values%5B0%5D=a&values%5B1%5D=b", v.Encode())
}

func TestCallClassifiesMoodleAnswers(t *testing.T) {
	t.Parallel()
	site := moodletest.New(t, map[string]moodletest.Token{
		"good":    {},
		"limited": {Functions: []string{"core_webservice_get_site_info"}},
	})
	ctx := context.Background()
	call := func(token, function string, out any) error {
		c, err := ws.New(site.URL, token, ws.Options{})
		require.NoError(t, err)
		return c.Call(ctx, function, map[string]any{"field": "id", "values": []string{"1"}}, out)
	}

	var users []map[string]any
	require.NoError(t, call("good", "core_user_get_users_by_field", &users))
	assert.Equal(t, "json", site.LastRequest().Get("moodlewsrestformat"))
	assert.Equal(t, "1", site.LastRequest().Get("values[0]"))
	assert.Empty(t, site.LastRequest().Get("wstoken"), "the fake hides the token")
	require.NoError(t, call("good", "enrol_manual_unenrol_users", nil), "a null answer is success")

	cases := []struct {
		name, token, function, code, says string
		permanent                         bool
	}{
		{"invalid token", "wrong", "core_webservice_get_site_info", "invalidtoken", "token_file/token_env", true},
		{"function not in service", "limited", "core_user_get_users_by_field", "accessexception", "External services", true},
		{"unknown function", "good", "no_such_function", "invalidrecord", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := call(tc.token, tc.function, nil)
			require.Error(t, err)
			assert.Equal(t, tc.code, ws.Code(err))
			assert.Equal(t, tc.permanent, ws.IsPermanent(err))
			assert.Contains(t, err.Error(), tc.says)
		})
	}

	t.Run("web services off", func(t *testing.T) {
		site.SetWebServicesOff(true)
		defer site.SetWebServicesOff(false)
		err := call("good", "core_webservice_get_site_info", nil)
		require.Error(t, err)
		assert.True(t, ws.IsPermanent(err))
		assert.Contains(t, err.Error(), "Enable web services")
	})
}

func TestCallTransientFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"server error", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }},
		{"maintenance page", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>Site maintenance</html>")) }},
		{"database hiccup", func(w http.ResponseWriter, _ *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]string{"exception": "dml_read_exception", "errorcode": "dmlreadexception", "message": "Error reading from database"})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			c, err := ws.New(srv.URL, "tok", ws.Options{})
			require.NoError(t, err)
			err = c.Call(context.Background(), "core_webservice_get_site_info", nil, nil)
			require.Error(t, err)
			assert.False(t, ws.IsPermanent(err))
		})
	}
	t.Run("no server", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		c, err := ws.New(url, "tok", ws.Options{})
		require.NoError(t, err)
		err = c.Call(context.Background(), "core_webservice_get_site_info", nil, nil)
		require.Error(t, err)
		assert.False(t, ws.IsPermanent(err))
	})
}

func TestNewRequiresHTTPSExceptLoopback(t *testing.T) {
	t.Parallel()
	cases := []struct {
		url string
		ok  bool
	}{
		{"https://learn.example.nl", true},
		{"http://127.0.0.1:8080/moodle", true},
		{"http://localhost", true},
		{"http://learn.example.nl", false},
		{"learn.example.nl", false},
		{"https://learn.example.nl/?x=1", false},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			_, err := ws.New(tc.url, "tok", ws.Options{})
			assert.Equal(t, tc.ok, err == nil, "%v", err)
		})
	}
}

// TestRedirectsAreNotFollowed: a site that answers 307 or 308 (a moved
// Moodle, or someone in between) must not receive the token a second time
// at the address it names, which may be plain http; the call fails saying
// where the site points.
func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	var leaked atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Add(1)
		_, _ = w.Write([]byte(`{"sitename":"x"}`))
	}))
	defer elsewhere.Close()
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		site := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+"/webservice/rest/server.php?x=secret", status)
		}))
		c, err := ws.New(site.URL, "tok-SECRET", ws.Options{HTTPClient: site.Client()})
		require.NoError(t, err)
		err = c.Call(context.Background(), "core_webservice_get_site_info", nil, nil)
		site.Close()
		require.Error(t, err)
		assert.True(t, ws.IsPermanent(err), "a redirect is the configuration's to fix")
		assert.ErrorContains(t, err, "redirects (HTTP "+strconv.Itoa(status)+") to "+elsewhere.URL+"/webservice/rest/server.php: set url")
		assert.NotContains(t, err.Error(), "secret")
	}
	assert.Zero(t, leaked.Load(), "the token was posted to the address the site redirected to")
}
