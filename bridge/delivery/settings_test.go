package delivery_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/cvbridge/cvbridge/bridge/delivery"
)

func TestDefaultSettings(t *testing.T) {
	t.Parallel()
	s := delivery.DefaultSettings()
	require.NoError(t, s.Validate())
	assert.Equal(t, 90*time.Second, s.LeaseDuration(), "2×timeout+30s")
	assert.Equal(t, 18, s.BatchSize(), "concurrency×(record_ahead+1)")
	s.RecordAhead = 0
	assert.Equal(t, 4, s.BatchSize(), "at least 2×concurrency")
	assert.Equal(t, "text/xml; charset=utf-8", s.ContentType)
	assert.Equal(t, 14*24*time.Hour, s.Retry.Transient.MaxAge)
}

func TestSettingsDecodeYAML(t *testing.T) {
	t.Parallel()
	const doc = `
concurrency: 4
rate_limit: 1.5
timeout: 1m
lease: 3m
poll_interval: 2s
content_type: application/xml; charset=utf-8
retry:
  transient: {base: 10s, cap: 30m, max_age: 72h}
  not_found: {interval: 2h}
  server_error: {max_tries: 5}
  pause_probe: 5m
`
	s := delivery.DefaultSettings()
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&s))
	require.NoError(t, s.Validate())

	assert.Equal(t, 4, s.Concurrency)
	assert.Equal(t, 1.5, s.RateLimit)
	assert.Equal(t, time.Minute, s.Timeout)
	assert.Equal(t, 10*time.Second, s.ConnectTimeout, "default kept")
	assert.Equal(t, 3*time.Minute, s.LeaseDuration())
	assert.Equal(t, 36, s.BatchSize(), "derived from the decoded concurrency and the default record_ahead")
	assert.Equal(t, "application/xml; charset=utf-8", s.ContentType)
	assert.Equal(t, delivery.TransientRetry{Base: 10 * time.Second, Cap: 30 * time.Minute, MaxAge: 72 * time.Hour}, s.Retry.Transient)
	assert.Equal(t, delivery.NotFoundRetry{Interval: 2 * time.Hour, MaxAge: 7 * 24 * time.Hour}, s.Retry.NotFound)
	assert.Equal(t, delivery.ServerErrorRetry{Interval: 30 * time.Minute, MaxTries: 5}, s.Retry.ServerError)
	assert.Equal(t, 5*time.Minute, s.Retry.PauseProbe)
	assert.Equal(t, 6*time.Hour, s.Retry.RetryAfterCap, "default kept")
}

func TestSettingsValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		change func(*delivery.Settings)
		want   string
	}{
		{"no workers", func(s *delivery.Settings) { s.Concurrency = 0 }, "concurrency: must be at least 1"},
		{"negative rate", func(s *delivery.Settings) { s.RateLimit = -1 }, "rate_limit: must be 0"},
		{"zero timeout", func(s *delivery.Settings) { s.Timeout = 0 }, "timeout: must be a positive duration"},
		{"connect longer than total", func(s *delivery.Settings) { s.ConnectTimeout = time.Minute }, "connect_timeout: must not exceed timeout"},
		{"lease shorter than a request", func(s *delivery.Settings) { s.Lease = 20 * time.Second }, "lease: must exceed timeout"},
		{"negative batch", func(s *delivery.Settings) { s.Batch = -1 }, "batch: must be 0"},
		{"zero poll interval", func(s *delivery.Settings) { s.PollInterval = 0 }, "poll_interval: must be a positive duration"},
		{"content type", func(s *delivery.Settings) { s.ContentType = "xml;;" }, "content_type:"},
		{"cap below base", func(s *delivery.Settings) { s.Retry.Transient.Cap = time.Second }, "retry.transient.cap: must be at least retry.transient.base"},
		{"transient max age", func(s *delivery.Settings) { s.Retry.Transient.MaxAge = 0 }, "retry.transient.max_age"},
		{"not found interval", func(s *delivery.Settings) { s.Retry.NotFound.Interval = 0 }, "retry.not_found.interval"},
		{"server error tries", func(s *delivery.Settings) { s.Retry.ServerError.MaxTries = 0 }, "retry.server_error.max_tries: must be at least 1"},
		{"pause probe", func(s *delivery.Settings) { s.Retry.PauseProbe = -time.Second }, "retry.pause_probe"},
		{"retry-after cap", func(s *delivery.Settings) { s.Retry.RetryAfterCap = 0 }, "retry.retry_after_cap"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := delivery.DefaultSettings()
			tc.change(&s)
			err := s.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}

	t.Run("every fault is reported", func(t *testing.T) {
		t.Parallel()
		s := delivery.DefaultSettings()
		s.Concurrency, s.PollInterval = 0, 0
		err := s.Validate()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "concurrency")
		assert.Contains(t, err.Error(), "poll_interval")
	})
}
