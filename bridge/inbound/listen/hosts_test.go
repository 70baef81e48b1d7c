package listen_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cvbridge/cvbridge/bridge/inbound/listen"
)

func TestHostPolicy(t *testing.T) {
	t.Parallel()
	p := listen.HostPolicy{Names: []string{"bridge.example.nl", "*.opleider.nl"}}
	for host, want := range map[string]bool{
		"127.0.0.1:8080":         true,
		"[::1]:9090":             true,
		"10.0.0.5":               true,
		"localhost:9090":         true,
		"app.localhost":          true,
		"bridge.example.nl":      true,
		"BRIDGE.example.nl.:443": true,
		"cv.opleider.nl":         true,
		"opleider.nl":            false,
		"evil.example":           false,
		"bridge.example.nl.evil": false,
		"":                       false,
	} {
		assert.Equal(t, want, p.Allows(host), host)
	}
	assert.True(t, listen.HostPolicy{Any: true}.Allows("evil.example"))
}

// TestHostCheckRefusesForeignHost: a DNS-rebinding page reaches the listener
// with its own name as Host and gets 421 before any handler runs.
func TestHostCheckRefusesForeignHost(t *testing.T) {
	t.Parallel()
	ran := false
	h := listen.NewHostCheck(listen.HostPolicy{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran = true }))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/results/1/cancel", nil)
	req.Host = "rebind.attacker.example"
	resp, err := srv.Client().Do(req)
	assert.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)
	assert.False(t, ran)

	h.Set(listen.HostPolicy{Names: []string{"rebind.attacker.example"}})
	resp, err = srv.Client().Do(req)
	assert.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, ran)
}
