package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConcurrentWebhooksStoredOnce: many signed messages at once, among
// them resends of one message, are each answered 200 and stored once (the
// receiver commits concurrent messages together); the worker is woken for
// each new message.
func TestConcurrentWebhooksStoredOnce(t *testing.T) {
	t.Parallel()
	var wakes atomic.Int32
	r := newRig(t, config(true, false), func() { wakes.Add(1) })
	secret := strings.TrimSpace(vector(t, "signing_secret.txt"))
	sign := func(body string) string {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(body))
		return base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	body := func(person string) string {
		return fmt.Sprintf(`{"Event":"deelnemer.aangemeld","Data":{"PersoonExterneId":"%s","Elearningcode":"E1"}}`, person)
	}
	const distinct, resends = 60, 10
	var bodies []string
	for i := range distinct {
		bodies = append(bodies, body(fmt.Sprintf("p%d", i)))
	}
	for range resends {
		bodies = append(bodies, body("p7"))
	}
	var wg sync.WaitGroup
	for _, b := range bodies {
		wg.Go(func() {
			// r.post stops the test on error, which only the test's own
			// goroutine may do.
			req, err := http.NewRequest(http.MethodPost, r.srv.URL+"/webhooks/cv", strings.NewReader(b))
			if !assert.NoError(t, err) {
				return
			}
			req.Header.Set("X-Coachview-Whsignature", sign(b))
			resp, err := r.srv.Client().Do(req)
			if !assert.NoError(t, err) {
				return
			}
			_ = resp.Body.Close()
			assert.Equal(t, http.StatusOK, resp.StatusCode)
		})
	}
	wg.Wait()
	stored := r.messages(t)
	require.Len(t, stored, distinct)
	for _, m := range stored {
		want := 1
		if m.PersonID == "p7" {
			want = 1 + resends
		}
		assert.Equal(t, want, m.Requests, "requests of %s", m.PersonID)
	}
	assert.Equal(t, int32(distinct), wakes.Load())
}
