package listen_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/inbound/listen"
)

func TestServer(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		_, _ = io.WriteString(w, "hello")
	})
	s := listen.NewServer(listen.Config{Addr: ":0", MaxBody: 10}, h, log)
	assert.Positive(t, s.ReadHeaderTimeout)
	assert.Positive(t, s.ReadTimeout)
	assert.Positive(t, s.WriteTimeout)
	assert.Positive(t, s.IdleTimeout)
	srv := httptest.NewServer(s.Handler)
	t.Cleanup(srv.Close)

	resp, err := srv.Client().Post(srv.URL+"/enrol?PersoonExterneId=p12345", "text/plain", strings.NewReader("short"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = srv.Client().Post(srv.URL+"/enrol", "text/plain", strings.NewReader("far more than ten bytes"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	// A chunked body of unknown length is cut by the reader.
	resp, err = srv.Client().Post(srv.URL+"/enrol", "text/plain", io.MultiReader(strings.NewReader("far more than "), strings.NewReader("ten bytes")))
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)

	out := logs.String()
	assert.Contains(t, out, `"path":"/enrol"`)
	assert.Contains(t, out, `"status":200`)
	assert.Contains(t, out, `"bytes":5`)
	assert.Contains(t, out, `"status":413`)
	assert.NotContains(t, out, "p12345", "no query string, no person ids")
}
