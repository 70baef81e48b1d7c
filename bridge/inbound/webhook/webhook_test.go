package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/inbound"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/inbound/internal/fakes"
	"github.com/cvbridge/cvbridge/bridge/inbound/webhook"
)

// vectors is the repository's testdata/inbound, with bodies signed by openssl.
var vectors = filepath.Join("..", "..", "..", "testdata", "inbound")

func vector(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectors, name))
	require.NoError(t, err)
	return string(b)
}

// config is the test subscription: enrolment events mapped, categories not.
func config(secret, token bool) webhook.Config {
	c := webhook.Config{
		Name: "cv", Path: "/webhooks/cv", EventPath: "Event",
		Events: map[string]webhook.Event{
			"deelnemer.aangemeld": {Action: "enrol", PersonID: "Data.PersoonExterneId", ElearningCode: "Data.Elearningcode",
				FirstName: "Data.Voornaam", Infix: "Data.Tussenvoegsels", LastName: "Data.Achternaam", Email: "Data.Email"},
			"deelnemer.afgemeld": {Action: "unenrol", PersonID: "Data.PersoonExterneId", ElearningCode: "Data.Elearningcode"},
			"persoon.gewijzigd":  {Action: "ignore"},
		},
	}
	if secret {
		c.SigningSecretFile = filepath.Join(vectors, "signing_secret.txt")
	}
	if token {
		c.TokenFile = filepath.Join(vectors, "token.txt")
	}
	return c
}

// rig is a receiver on a real SQLite store behind a real HTTP server.
type rig struct {
	store inboundstore.Store
	srv   *httptest.Server
}

func newRig(t *testing.T, cfg webhook.Config, wake func()) *rig {
	t.Helper()
	var s inboundstore.Store = fakes.Store(t, nil)
	r, err := webhook.New(cfg, s, wake, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &rig{store: s, srv: srv}
}

func (r *rig) post(t *testing.T, body string, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.srv.URL+"/webhooks/cv", strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := r.srv.Client().Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *rig) messages(t *testing.T) []inboundstore.Message {
	t.Helper()
	ms, err := r.store.ListMessages(t.Context(), inboundstore.MessageFilter{})
	require.NoError(t, err)
	return ms
}

func TestVerification(t *testing.T) {
	t.Parallel()
	enrol, sig, tok := vector(t, "enrol.json"), vector(t, "enrol.sig"), vector(t, "token.txt")
	tests := []struct {
		name          string
		secret, token bool
		body          string
		headers       map[string]string
		status        int
		verified      string
	}{
		{"valid signature", true, false, enrol, map[string]string{"x-coachview-whsignature": sig}, 200, "signature"},
		{"valid token", false, true, enrol, map[string]string{"x-coachview-whtoken": tok}, 200, "token"},
		{"both required and valid", true, true, enrol, map[string]string{"x-coachview-whsignature": sig, "x-coachview-whtoken": tok}, 200, "signature+token"},
		{"token sent but signature required", true, false, enrol, map[string]string{"x-coachview-whtoken": tok}, 401, ""},
		{"wrong signature", true, false, enrol, map[string]string{"x-coachview-whsignature": vector(t, "unmapped.sig")}, 401, ""},
		{"signature of another secret", true, false, enrol + " ", map[string]string{"x-coachview-whsignature": sig}, 401, ""},
		{"signature not base64", true, false, enrol, map[string]string{"x-coachview-whsignature": "%%%"}, 401, ""},
		{"missing headers", true, true, enrol, nil, 401, ""},
		{"wrong token", false, true, enrol, map[string]string{"x-coachview-whtoken": tok + "x"}, 401, ""},
		{"both required, token missing", true, true, enrol, map[string]string{"x-coachview-whsignature": sig}, 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, config(tc.secret, tc.token), nil)
			status, _ := r.post(t, tc.body, tc.headers)
			assert.Equal(t, tc.status, status)
			ms := r.messages(t)
			if tc.status != 200 {
				assert.Empty(t, ms, "an unverified message is not stored")
				return
			}
			require.Len(t, ms, 1)
			m := ms[0]
			assert.Equal(t, tc.verified, m.Verified)
			assert.Equal(t, "webhook:cv", m.Source)
			assert.Equal(t, inboundstore.ActionEnrol, m.Action)
			assert.Equal(t, inboundstore.StatePending, m.State)
			assert.Equal(t, []string{"p12345", "e12345", "Jan", "", "Jansen", "jan@jansen.nl", "deelnemer.aangemeld"},
				[]string{m.PersonID, m.ElearningCode, m.FirstName, m.Infix, m.LastName, m.Email, m.Event})
			assert.Equal(t, enrol, string(m.Body))
		})
	}
}

func TestBodies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   string
		status int
		state  inboundstore.State
		action inboundstore.Action
		errHas string
	}{
		{"unmapped event kept", vector(t, "unmapped.json"), 200, inboundstore.StateUnmapped, inboundstore.ActionUnmapped, ""},
		{"ignored event", `{"Event":"persoon.gewijzigd"}`, 200, inboundstore.StateIgnored, inboundstore.ActionIgnore, ""},
		{"unenrol", `{"Event":"deelnemer.afgemeld","Data":{"PersoonExterneId":"p1","Elearningcode":7}}`, 200, inboundstore.StatePending, inboundstore.ActionUnenrol, ""},
		{"malformed JSON stored as failed", `{"Event":`, 200, inboundstore.StateFailed, inboundstore.ActionUnmapped, "not JSON"},
		{"mapped event without person", `{"Event":"deelnemer.afgemeld","Data":{"Elearningcode":"e1"}}`, 200, inboundstore.StateFailed, inboundstore.ActionUnenrol, "Data.PersoonExterneId"},
		{"no event name", `{"Something":"else"}`, 200, inboundstore.StateUnmapped, inboundstore.ActionUnmapped, "no event name at Event"},
		{"oversized", `{"Event":"x","Pad":"` + strings.Repeat("a", webhook.DefaultMaxBody) + `"}`, 413, "", "", ""},
		// The enrolment link's checks, with its texts (issue 18, item 5).
		{"person id over 50 characters", `{"Event":"deelnemer.afgemeld","Data":{"PersoonExterneId":"` + strings.Repeat("p", 300) + `","Elearningcode":"e1"}}`,
			200, inboundstore.StateFailed, inboundstore.ActionUnenrol, "PersoonExterneId: longer than 50 characters"},
		{"NUL in a name", `{"Event":"deelnemer.aangemeld","Data":{"PersoonExterneId":"p1","Elearningcode":"e1","Voornaam":"Jan\u0000","Achternaam":"J","Email":"j@example.org"}}`,
			200, inboundstore.StateFailed, inboundstore.ActionEnrol, "PersoonVoornaam: contains control characters"},
		{"newline in a name", `{"Event":"deelnemer.aangemeld","Data":{"PersoonExterneId":"p1","Elearningcode":"e1","Voornaam":"Jan","Achternaam":"J\nX","Email":"j@example.org"}}`,
			200, inboundstore.StateFailed, inboundstore.ActionEnrol, "PersoonAchternaam: contains control characters"},
		{"not an e-mail address", `{"Event":"deelnemer.aangemeld","Data":{"PersoonExterneId":"p1","Elearningcode":"e1","Voornaam":"Jan","Achternaam":"J","Email":"not-an-email"}}`,
			200, inboundstore.StateFailed, inboundstore.ActionEnrol, "PersoonEmailadres: is not an e-mail address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, config(false, true), nil)
			status, _ := r.post(t, tc.body, map[string]string{"x-coachview-whtoken": vector(t, "token.txt")})
			assert.Equal(t, tc.status, status)
			ms := r.messages(t)
			if tc.status != 200 {
				assert.Empty(t, ms)
				return
			}
			require.Len(t, ms, 1)
			assert.Equal(t, tc.state, ms[0].State)
			assert.Equal(t, tc.action, ms[0].Action)
			assert.Contains(t, ms[0].LastError, tc.errHas)
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	t.Parallel()
	r := newRig(t, config(true, false), nil)
	resp, err := r.srv.Client().Get(r.srv.URL + "/webhooks/cv")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestEventIDDedupe(t *testing.T) {
	t.Parallel()
	cfg := config(false, true)
	cfg.EventIDPath = "Id"
	r := newRig(t, cfg, nil)
	h := map[string]string{"x-coachview-whtoken": vector(t, "token.txt")}
	body := vector(t, "enrol.json")
	for _, b := range []string{body, strings.Replace(body, `"Jan"`, `"Johannes"`, 1)} {
		status, _ := r.post(t, b, h)
		require.Equal(t, 200, status)
	}
	ms := r.messages(t)
	require.Len(t, ms, 1, "same event id, one message")
	assert.Equal(t, "id:evt-0001", ms[0].DedupeKey)
	assert.Equal(t, 2, ms[0].Requests)
}

// TestResendSerialisedDifferently: a resend of a message with its keys in
// another order and other white space is the same message.
func TestResendSerialisedDifferently(t *testing.T) {
	t.Parallel()
	r := newRig(t, config(false, true), nil)
	h := map[string]string{"x-coachview-whtoken": vector(t, "token.txt")}
	for _, b := range []string{
		`{"Event":"deelnemer.afgemeld","Data":{"PersoonExterneId":"p1","Elearningcode":"e1"}}`,
		"{ \"Data\": {\"Elearningcode\": \"e1\", \"PersoonExterneId\": \"p1\"},\n  \"Event\": \"deelnemer.afgemeld\" }\n",
	} {
		status, _ := r.post(t, b, h)
		require.Equal(t, 200, status)
	}
	ms := r.messages(t)
	require.Len(t, ms, 1, "one message")
	assert.Equal(t, 2, ms[0].Requests)
	assert.True(t, strings.HasPrefix(ms[0].DedupeKey, "json:"), ms[0].DedupeKey)

	status, _ := r.post(t, `{"Event":"deelnemer.afgemeld","Data":{"PersoonExterneId":"p2","Elearningcode":"e1"}}`, h)
	require.Equal(t, 200, status)
	assert.Len(t, r.messages(t), 2, "other content is another message")
}

// Coachview's 13 sends of one message, acknowledged while the LMS is slow,
// are carried out once.
func TestRetriesProcessedOnce(t *testing.T) {
	t.Parallel()
	enr := &fakes.Enroller{Gate: make(chan struct{}), Called: make(chan struct{}, 20)}
	router, err := inbound.NewCodeRouter([]inbound.CodeRule{{Connection: "moodle", Patterns: []string{"e*"}, Enroller: enr}}, "")
	require.NoError(t, err)
	var (
		s     inboundstore.Store = fakes.Store(t, nil)
		wmu   sync.Mutex
		wakes int
	)
	proc := inbound.NewProcessor(s, router, inbound.WithLogger(slog.New(slog.DiscardHandler)))
	w, err := inbound.NewWorker(s, proc, inbound.WorkerConfig{Owner: "test", Interval: time.Hour})
	require.NoError(t, err)
	recv, err := webhook.New(config(true, false), s, func() { wmu.Lock(); wakes++; wmu.Unlock(); w.Wake() }, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()

	body, sig := vector(t, "enrol.json"), vector(t, "enrol.sig")
	send := func() int {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/hook", bytes.NewReader([]byte(body)))
		require.NoError(t, err)
		req.Header.Set("X-Coachview-Whsignature", sig)
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, 200, send())
	<-enr.Called // the worker is now inside the (blocked) LMS call
	for range 12 {
		require.Equal(t, 200, send(), "acknowledged while the LMS call is still running")
	}
	close(enr.Gate)
	require.Eventually(t, func() bool {
		ms, err := s.ListMessages(t.Context(), inboundstore.MessageFilter{})
		return err == nil && len(ms) == 1 && ms[0].State == inboundstore.StateDone
	}, 10*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	assert.Len(t, enr.Calls(), 1, "13 sends, one enrolment")
	ms, err := s.ListMessages(t.Context(), inboundstore.MessageFilter{})
	require.NoError(t, err)
	assert.Equal(t, 13, ms[0].Requests)
	wmu.Lock()
	assert.Equal(t, 1, wakes, "only the first send wakes the worker")
	wmu.Unlock()
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	s := fakes.Store(t, nil)
	tests := []struct {
		name   string
		mutate func(*webhook.Config)
		errHas string
	}{
		{"no credentials", func(c *webhook.Config) { c.SigningSecretFile = "" }, "unverified webhooks are refused"},
		{"missing secret file", func(c *webhook.Config) { c.SigningSecretFile = "/nonexistent" }, "/nonexistent"},
		{"file and env", func(c *webhook.Config) { c.SigningSecretEnv = "X" }, "not both"},
		{"no event path", func(c *webhook.Config) { c.EventPath = "" }, "event_path"},
		{"bad action", func(c *webhook.Config) { c.Events["x"] = webhook.Event{Action: "delete"} }, `event "x": action "delete"`},
		{"enrol without code path", func(c *webhook.Config) { c.Events["x"] = webhook.Event{Action: "enrol", PersonID: "a"} }, "elearningcode"},
		{"bad path", func(c *webhook.Config) { c.EventPath = "a..b" }, "empty segment"},
		{"relative path", func(c *webhook.Config) { c.Path = "hook" }, "must start with /"},
		{"body cap too big", func(c *webhook.Config) { c.MaxBody = inboundstore.MaxBody + 1 }, "max_body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := config(true, false)
			tc.mutate(&c)
			_, err := webhook.New(c, s, nil, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.errHas)
		})
	}
}

func FuzzReceiver(f *testing.F) {
	f.Add([]byte(`{"Event":"deelnemer.aangemeld","Data":{"PersoonExterneId":"p1","Elearningcode":"e1"}}`))
	f.Add([]byte(`{"Event":"deelnemer.afgemeld","Data":{"PersoonExterneId":[1],"Elearningcode":null}}`))
	f.Add([]byte(`[1,2,{"Event":3}]`))
	f.Add([]byte(`{"Event":`))
	cfg := config(false, true)
	cfg.EventIDPath = "Data.0.Id"
	s := fakes.Store(f, nil)
	r, err := webhook.New(cfg, s, nil, slog.New(slog.DiscardHandler))
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body []byte) {
		p := r.Parse(body)
		switch p.State {
		case inboundstore.StatePending:
			if p.PersonID == "" || p.ElearningCode == "" {
				t.Fatalf("pending message without person or code: %+v", p)
			}
			if p.Action != inboundstore.ActionEnrol && p.Action != inboundstore.ActionUnenrol {
				t.Fatalf("pending message with action %q", p.Action)
			}
		case inboundstore.StateFailed, inboundstore.StateUnmapped, inboundstore.StateIgnored:
		default:
			t.Fatalf("unexpected state %q", p.State)
		}
		if p.State == inboundstore.StateFailed && p.Error == "" {
			t.Fatal("failed without a reason")
		}
	})
}

// TestSigningSecretByTheOneRule: the signing secret file is read as every
// secret is (kit.TrimSecret): one trailing line ending goes, a trailing
// space stays part of the secret, as it does for a target's secret.
func TestSigningSecretByTheOneRule(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(file, []byte("whsec-with-space \r\n"), 0o600))
	cfg := config(false, false)
	cfg.SigningSecretFile = file
	r := newRig(t, cfg, nil)
	enrol := vector(t, "enrol.json")
	sig := func(key string) string {
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte(enrol))
		return base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	status, _ := r.post(t, enrol, map[string]string{"x-coachview-whsignature": sig("whsec-with-space")})
	assert.Equal(t, http.StatusUnauthorized, status, "the space is part of the secret")
	status, _ = r.post(t, enrol, map[string]string{"x-coachview-whsignature": sig("whsec-with-space ")})
	assert.Equal(t, http.StatusOK, status)
}
