package admin_test

import (
	"encoding/json"
	"html"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/admin"
	"github.com/cvbridge/cvbridge/bridge/delivery"
)

// openCircuit makes beta's circuit open and acme's closed; a target
// named otherwise has no dispatcher here.
func openCircuit(o *admin.Options) {
	o.Circuit = func(target string) (delivery.CircuitState, bool) {
		switch target {
		case "acme":
			return delivery.CircuitState{Failures: 2}, true
		case "beta":
			return delivery.CircuitState{
				Open: true, OpenedAt: epoch, Failures: 7, Openings: 1, Probes: 2,
				Reason:    "could not reach Coachview: dial tcp 10.0.0.1:443: connect: connection refused",
				NextProbe: epoch.Add(4 * time.Minute),
			}, true
		}
		return delivery.CircuitState{}, false
	}
}

func TestReadyzReportsAnOpenCircuit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, openCircuit)
	r := f.get(http.DefaultClient, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Equal(t, "not ready\ntarget beta: circuit open since 2026-03-02T09:00:00Z after 7 transient failures in a row "+
		"(could not reach Coachview: dial tcp 10.0.0.1:443: connect: connection refused); next probe at 2026-03-02T09:04:00Z\n", r.body)
}

func TestCircuitsRoute(t *testing.T) {
	t.Parallel()
	f := newFixture(t, openCircuit)
	r := f.get(http.DefaultClient, "/circuits")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	var got map[string]delivery.CircuitState
	require.NoError(t, json.Unmarshal([]byte(r.body), &got))
	assert.Equal(t, map[string]delivery.CircuitState{
		"acme": {Failures: 2},
		"beta": {Open: true, OpenedAt: epoch, Failures: 7, Openings: 1, Probes: 2,
			Reason:    "could not reach Coachview: dial tcp 10.0.0.1:443: connect: connection refused",
			NextProbe: epoch.Add(4 * time.Minute)},
	}, got)
	assert.NotContains(t, r.body, `"opened_at"`+`:"0001`, "a closed circuit leaves its times out")

	without := newFixture(t, nil)
	r = without.get(http.DefaultClient, "/circuits")
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "{}\n", r.body, "no dispatcher, no circuit")
}

func TestDashboardShowsAnOpenCircuit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, openCircuit)
	r := f.get(f.client(), "/")
	require.Equal(t, http.StatusOK, r.status, r.body)
	body := html.UnescapeString(r.body)
	assert.Contains(t, body, `<span class="ok">active</span>`, "acme's circuit is closed")
	assert.Contains(t, body, `<span class="bad">circuit open</span> since `)
	assert.Contains(t, body, "connection refused, 7 failures in a row")
	assert.Contains(t, body, "one result at a time is sent as a probe; next probe ")
}

// TestReadyzReportsFailingDeliverySteps: a store that answers reads but
// refuses writes (a full disk, a read-only outbox file) left /readyz
// saying "ready" while nothing was delivered; a target whose delivery steps
// fail makes it 503, naming the failure and since when.
func TestReadyzReportsFailingDeliverySteps(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(o *admin.Options) {
		o.Failing = func(target string) (delivery.StepFailure, bool) {
			if target == "acme" {
				return delivery.StepFailure{Err: "claim: attempt to write a readonly database", Since: epoch}, true
			}
			return delivery.StepFailure{}, false
		}
	})
	r := f.get(http.DefaultClient, "/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Contains(t, r.body, "target acme: delivery steps fail since 2026-03-02T09:00:00Z")
	assert.Contains(t, r.body, "attempt to write a readonly database")
}
