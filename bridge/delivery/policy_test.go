package delivery

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		status int
		err    error
		want   Class
	}{
		{"200 processed", 200, nil, Delivered},
		{"204 other success", 204, nil, Delivered},
		{"400 invalid message", 400, nil, Rejected},
		{"401 unused by the results link", 401, nil, Misconfigured},
		{"403 signature refused", 403, nil, Forbidden},
		{"404 person or enrolment unknown", 404, nil, NotFound},
		{"405 not a POST", 405, nil, Misconfigured},
		{"408 request timeout", 408, nil, Transient},
		{"410 gone", 410, nil, Misconfigured},
		{"429 too many requests", 429, nil, Transient},
		{"500 processing error", 500, nil, ServerError},
		{"502 bad gateway", 502, nil, Transient},
		{"503 unavailable", 503, nil, Transient},
		{"504 gateway timeout", 504, nil, Transient},
		{"599 other 5xx", 599, nil, Transient},
		{"301 redirect", 301, nil, Misconfigured},
		{"302 redirect", 302, nil, Misconfigured},
		{"308 redirect", 308, nil, Misconfigured},
		{"connection error wins over status", 0, errors.New("connection refused"), Transient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, Classify(tc.status, tc.err))
		})
	}
}

func TestBaseDelay(t *testing.T) {
	t.Parallel()
	r := DefaultSettings().Retry
	cases := []struct {
		name   string
		class  Class
		streak int
		want   time.Duration
	}{
		{"transient first", Transient, 1, 30 * time.Second},
		{"transient second doubles", Transient, 2, time.Minute},
		{"transient seventh", Transient, 7, 32 * time.Minute},
		{"transient eighth is capped", Transient, 8, time.Hour},
		{"transient far past overflow stays capped", Transient, 500, time.Hour},
		{"not found is constant", NotFound, 1, time.Hour},
		{"not found later is constant", NotFound, 100, time.Hour},
		{"server error is constant", ServerError, 2, 30 * time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, r.baseDelay(tc.class, tc.streak))
		})
	}
}

func TestJittered(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		j    float64
		want time.Duration
	}{
		{"zero is exact", 0, 100 * time.Second},
		{"plus one is +20%", 1, 120 * time.Second},
		{"minus one is -20%", -1, 80 * time.Second},
		{"out of range is clamped", 7, 120 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, jittered(100*time.Second, tc.j))
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 3, 9, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		header string
		want   time.Duration
		ok     bool
	}{
		{"absent", "", 0, false},
		{"seconds", "120", 2 * time.Minute, true},
		{"seconds with space", " 5 ", 5 * time.Second, true},
		{"negative seconds", "-5", 0, false},
		{"http date", now.Add(90 * time.Minute).Format(http.TimeFormat), 90 * time.Minute, true},
		{"http date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"garbage", "soon", 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := parseRetryAfter(tc.header, now)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestHumanDuration(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "14 days", humanDuration(14*24*time.Hour))
	assert.Equal(t, "1 day", humanDuration(24*time.Hour))
	assert.Equal(t, "36h0m0s", humanDuration(36*time.Hour))
}
