package simulator_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/sign"
	"github.com/cvbridge/cvbridge/bridge/simulator"
)

var secret = []byte("geheim-van-coachview")

// resultURL is a path like the one Coachview shows as "URL Resultaten".
const resultURL = "/elearning/result.aspx?plugin=abc123"

var start = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

// rejectInvalid stands in for the XSD check: it rejects a body containing
// INVALID, with a message like libxml2's.
func rejectInvalid(body []byte) error {
	if bytes.Contains(body, []byte("INVALID")) {
		return errors.New("element 'Geslaagd': 'INVALID' is not a valid value of the atomic type 'xs:boolean'")
	}
	return nil
}

func resultXML(code, person string) []byte {
	return fmt.Appendf(nil, `<?xml version="1.0" encoding="UTF-8"?>
<CoachviewResultaat xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" Datum="2019-01-03" Elearningcode=%q PersoonExterneId=%q>
  <Geslaagd Resultaat="67%%">true</Geslaagd>
</CoachviewResultaat>`, code, person)
}

type harness struct {
	sim   *simulator.Simulator
	srv   *httptest.Server
	clock *clock.Fake
	alg   sign.Algorithm
}

func newHarness(t *testing.T, o simulator.Options) *harness {
	t.Helper()
	fake := clock.NewFake(start)
	if o.Secret == nil {
		o.Secret = secret
	}
	if o.Validate == nil {
		o.Validate = rejectInvalid
	}
	o.Clock = fake
	sim := simulator.New(o)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &harness{sim: sim, srv: srv, clock: fake, alg: o.Algorithm}
}

type reply struct {
	status int
	text   string
	header http.Header
}

// send makes one request; sig "" sends no signature header.
func (h *harness) send(t *testing.T, method, path string, body []byte, sig string) reply {
	t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	if sig != "" {
		req.Header.Set(sign.Header, sig)
	}
	resp, err := h.srv.Client().Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	text, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{status: resp.StatusCode, text: string(text), header: resp.Header}
}

// post sends body signed as the bridge would.
func (h *harness) post(t *testing.T, body []byte) reply {
	t.Helper()
	return h.send(t, http.MethodPost, resultURL, body, sign.Sign(h.alg, secret, body))
}

func TestStatusPaths(t *testing.T) {
	t.Parallel()
	good := resultXML("e12345", "p12345")
	signed := func(b []byte) string { return sign.Sign(sign.SHA512, secret, b) }
	tests := []struct {
		name     string
		method   string
		body     []byte
		sig      string
		want     int
		wantText string
	}{
		{name: "valid result", method: http.MethodPost, body: good, sig: signed(good), want: 200, wantText: "OK"},
		{name: "GET", method: http.MethodGet, body: nil, sig: signed(nil), want: 405, wantText: "Request method not supported"},
		{name: "PUT with valid result", method: http.MethodPut, body: good, sig: signed(good), want: 405},
		{name: "method checked before signature", method: http.MethodGet, body: good, sig: "", want: 405},
		{name: "no signature", method: http.MethodPost, body: good, sig: "", want: 403, wantText: "Webhook validation failed"},
		{name: "wrong secret", method: http.MethodPost, body: good, sig: sign.Sign(sign.SHA512, []byte("other"), good), want: 403, wantText: "Webhook validation failed"},
		{name: "signature of another body", method: http.MethodPost, body: good, sig: signed(resultXML("e12345", "p2")), want: 403},
		{name: "signature not base64", method: http.MethodPost, body: good, sig: "%%%", want: 403},
		{name: "signature checked before body", method: http.MethodPost, body: []byte("not xml"), sig: "", want: 403},
		{name: "empty body", method: http.MethodPost, body: []byte{}, sig: signed([]byte{}), want: 400, wantText: "no data received"},
		{name: "blank body", method: http.MethodPost, body: []byte(" \n"), sig: signed([]byte(" \n")), want: 400, wantText: "no data received"},
		{name: "not XML", method: http.MethodPost, body: []byte("Geslaagd=true"), sig: signed([]byte("Geslaagd=true")), want: 400, wantText: "cannot be read as XML: text outside the root element"},
		{name: "unclosed element", method: http.MethodPost, body: good[:len(good)-5], sig: signed(good[:len(good)-5]), want: 400, wantText: "cannot be read as XML"},
		{name: "second root", method: http.MethodPost, body: append(bytes.Clone(good), "<x/>"...), sig: signed(append(bytes.Clone(good), "<x/>"...)), want: 400, wantText: "second root element x"},
		{name: "XSD check fails", method: http.MethodPost, body: []byte(`<CoachviewResultaat Elearningcode="e" PersoonExterneId="p"><Geslaagd>INVALID</Geslaagd></CoachviewResultaat>`), sig: signed([]byte(`<CoachviewResultaat Elearningcode="e" PersoonExterneId="p"><Geslaagd>INVALID</Geslaagd></CoachviewResultaat>`)), want: 400, wantText: "does not conform to the XSD: element 'Geslaagd': 'INVALID'"},
		{name: "wrong root", method: http.MethodPost, body: []byte(`<Resultaat Elearningcode="e" PersoonExterneId="p"/>`), sig: signed([]byte(`<Resultaat Elearningcode="e" PersoonExterneId="p"/>`)), want: 400, wantText: "root element is Resultaat"},
		{name: "no person", method: http.MethodPost, body: []byte(`<CoachviewResultaat Elearningcode="e"/>`), sig: signed([]byte(`<CoachviewResultaat Elearningcode="e"/>`)), want: 400, wantText: "PersoonExterneId is missing"},
		{name: "no code", method: http.MethodPost, body: []byte(`<CoachviewResultaat PersoonExterneId="p"/>`), sig: signed([]byte(`<CoachviewResultaat PersoonExterneId="p"/>`)), want: 400, wantText: "Elearningcode is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, simulator.Options{})
			got := h.send(t, tt.method, resultURL, tt.body, tt.sig)
			assert.Equal(t, tt.want, got.status, "response text: %s", got.text)
			assert.Contains(t, got.text, tt.wantText)
			assert.Equal(t, "text/plain; charset=utf-8", got.header.Get("Content-Type"))
			if tt.want == 405 {
				assert.Equal(t, http.MethodPost, got.header.Get("Allow"))
			}

			st := h.sim.Stats()
			assert.Equal(t, 1, st.Requests)
			assert.Equal(t, map[int]int{tt.want: 1}, st.ByStatus)
			if tt.want == 200 {
				assert.Equal(t, 1, st.Accepted)
				assert.Len(t, h.sim.Accepted(), 1)
			} else {
				assert.Zero(t, st.Accepted)
				assert.Empty(t, h.sim.Accepted())
			}
		})
	}
}

func TestAlgorithms(t *testing.T) {
	t.Parallel()
	body := resultXML("e12345", "p12345")
	all := []sign.Algorithm{sign.SHA512, sign.SHA256, sign.SHA1}
	for _, alg := range append(all, "") {
		t.Run("simulator "+string(alg), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, simulator.Options{Algorithm: alg})
			want := alg
			if want == "" {
				want = sign.SHA512
			}
			for _, by := range all {
				got := h.send(t, http.MethodPost, resultURL, body, sign.Sign(by, secret, body))
				if by == want {
					assert.Equal(t, 200, got.status, "signed with %s", by)
				} else {
					assert.Equal(t, 403, got.status, "signed with %s", by)
				}
			}
		})
	}
}

func TestNewPanicsOnUnknownAlgorithm(t *testing.T) {
	t.Parallel()
	assert.Panics(t, func() { simulator.New(simulator.Options{Algorithm: "md5"}) })
}

func TestDuplicates(t *testing.T) {
	t.Parallel()
	h := newHarness(t, simulator.Options{})

	first := resultXML("e1", "p12345")
	require.Equal(t, 200, h.post(t, first).status)
	h.clock.Advance(time.Minute)
	retake := bytes.Replace(resultXML("e1", "P12345"), []byte("67%"), []byte("90%"), 1)
	got := h.post(t, retake)
	assert.Equal(t, 200, got.status, "Coachview answers 200 and ignores the later result")
	otherPart := resultXML("E1", "p12345")
	assert.Equal(t, 200, h.post(t, otherPart).status)

	st := h.sim.Stats()
	assert.Equal(t, simulator.Stats{Requests: 3, Accepted: 2, Duplicates: 1, ByStatus: map[int]int{200: 3}}, st)
	acc := h.sim.Accepted()
	require.Len(t, acc, 2)
	assert.Equal(t, simulator.Received{
		PersonID: "p12345", ElearningCode: "e1", Body: first,
		Signature: sign.Sign(sign.SHA512, secret, first), At: start,
	}, acc[0])
	assert.Equal(t, "E1", acc[1].ElearningCode, "Elearningcode is compared exactly")
	assert.Equal(t, start.Add(time.Minute), acc[1].At)

	acc[0].Body[0] = 'X'
	assert.Equal(t, first, h.sim.Accepted()[0].Body, "Accepted returns copies")
}

func TestFailFirst(t *testing.T) {
	t.Parallel()
	h := newHarness(t, simulator.Options{})
	h.sim.FailFirst(2, http.StatusServiceUnavailable)
	h.sim.SetRetryAfter("120")
	body := resultXML("e1", "p1")

	unsigned := h.send(t, http.MethodPost, resultURL, body, "")
	assert.Equal(t, 403, unsigned.status, "checks before the script still apply")
	for i := range 2 {
		got := h.post(t, body)
		assert.Equal(t, 503, got.status, "request %d", i)
		assert.Equal(t, "120", got.header.Get("Retry-After"))
		assert.Contains(t, got.text, "Coachview is currently unavailable")
	}
	got := h.post(t, body)
	assert.Equal(t, 200, got.status)
	assert.Empty(t, got.header.Get("Retry-After"))

	st := h.sim.Stats()
	assert.Equal(t, simulator.Stats{Requests: 4, Accepted: 1, ByStatus: map[int]int{403: 1, 503: 2, 200: 1}}, st,
		"a failed result is not registered, so the retry is accepted, not a duplicate")
}

func TestFailFirstZeroClears(t *testing.T) {
	t.Parallel()
	h := newHarness(t, simulator.Options{})
	h.sim.FailFirst(5, 500)
	h.sim.FailFirst(0, 0)
	assert.Equal(t, 200, h.post(t, resultXML("e1", "p1")).status)
}

func TestSetPersonStatus(t *testing.T) {
	t.Parallel()
	h := newHarness(t, simulator.Options{})
	h.sim.SetPersonStatus("P1", http.StatusNotFound)
	h.sim.SetRetryAfter("60")

	got := h.post(t, resultXML("e1", "p1"))
	assert.Equal(t, 404, got.status)
	assert.Contains(t, got.text, "not found")
	assert.Empty(t, got.header.Get("Retry-After"), "Retry-After goes with 503 only")
	assert.Equal(t, 200, h.post(t, resultXML("e1", "p2")).status)

	h.sim.SetPersonStatus("p1", 0)
	assert.Equal(t, 200, h.post(t, resultXML("e1", "p1")).status)
	assert.Equal(t, 2, h.sim.Stats().Accepted)
}

func TestScriptPrecedence(t *testing.T) {
	t.Parallel()
	h := newHarness(t, simulator.Options{})
	h.sim.SetStatus(500)
	h.sim.FailFirst(1, 503)
	h.sim.SetPersonStatus("p1", 404)
	body := resultXML("e1", "p1")

	for range 3 {
		got := h.post(t, body)
		assert.Equal(t, 500, got.status, "SetStatus wins and does not consume FailFirst")
		assert.Contains(t, got.text, "contact Coachview")
	}
	h.sim.SetStatus(0)
	assert.Equal(t, 503, h.post(t, body).status, "then FailFirst")
	assert.Equal(t, 404, h.post(t, body).status, "then the person's status")
	h.sim.SetPersonStatus("p1", 0)
	assert.Equal(t, 200, h.post(t, body).status)
}

func TestSetStatus403Storm(t *testing.T) {
	t.Parallel()
	h := newHarness(t, simulator.Options{})
	h.sim.SetStatus(403)
	for _, p := range []string{"p1", "p2", "p3"} {
		got := h.post(t, resultXML("e1", p))
		assert.Equal(t, 403, got.status)
		assert.Equal(t, "Webhook validation failed", got.text)
	}
	assert.Empty(t, h.sim.Accepted())
}

func TestSetterPanics(t *testing.T) {
	t.Parallel()
	sim := simulator.New(simulator.Options{Secret: secret})
	assert.Panics(t, func() { sim.SetStatus(42) })
	assert.Panics(t, func() { sim.SetStatus(600) })
	assert.Panics(t, func() { sim.FailFirst(1, 0) })
	assert.Panics(t, func() { sim.SetPersonStatus("p1", 1000) })
	assert.NotPanics(t, func() { sim.FailFirst(0, 0) })
}

func TestBodyCap(t *testing.T) {
	t.Parallel()
	body := resultXML("e1", "p1")
	tests := []struct {
		name    string
		maxBody int64
		body    []byte
		want    int
	}{
		{name: "at the cap", maxBody: int64(len(body)), body: body, want: 200},
		{name: "one byte over", maxBody: int64(len(body)) - 1, body: body, want: 413},
		{name: "default cap", body: append(bytes.Clone(body), bytes.Repeat([]byte(" "), simulator.DefaultMaxBody)...), want: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, simulator.Options{MaxBody: tt.maxBody})
			got := h.post(t, tt.body)
			assert.Equal(t, tt.want, got.status, got.text)
			if tt.want == 413 {
				assert.Contains(t, got.text, "larger than")
			}
			assert.Equal(t, map[int]int{tt.want: 1}, h.sim.Stats().ByStatus)
		})
	}
}

func TestConcurrentDuplicates(t *testing.T) {
	t.Parallel()
	h := newHarness(t, simulator.Options{})
	const workers, pairs = 6, 15

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range pairs {
				person := fmt.Sprintf("p%d", i)
				if w%2 == 1 {
					person = strings.ToUpper(person)
				}
				if got := h.post(t, resultXML("e1", person)); got.status != 200 {
					t.Errorf("worker %d pair %d: status %d", w, i, got.status)
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			h.sim.Stats()
			h.sim.Accepted()
			h.sim.SetPersonStatus("nobody", 404)
			h.sim.SetRetryAfter("1")
		}
	})
	wg.Wait()

	st := h.sim.Stats()
	assert.Equal(t, workers*pairs, st.Requests)
	assert.Equal(t, pairs, st.Accepted, "each pair registered once")
	assert.Equal(t, workers*pairs-pairs, st.Duplicates)
	assert.Len(t, h.sim.Accepted(), pairs)
}

func TestConcurrentFailFirst(t *testing.T) {
	t.Parallel()
	h := newHarness(t, simulator.Options{})
	h.sim.FailFirst(10, 503)
	const n = 40

	var mu sync.Mutex
	byStatus := map[int]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got := h.post(t, resultXML("e1", fmt.Sprintf("p%d", i)))
			mu.Lock()
			byStatus[got.status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	assert.Equal(t, map[int]int{503: 10, 200: n - 10}, byStatus)
	assert.Equal(t, byStatus, h.sim.Stats().ByStatus)
}

func TestReset(t *testing.T) {
	t.Parallel()
	h := newHarness(t, simulator.Options{})
	body := resultXML("e1", "p1")
	require.Equal(t, 200, h.post(t, body).status)
	h.sim.SetStatus(500)
	h.sim.FailFirst(3, 503)
	h.sim.SetPersonStatus("p1", 404)

	h.sim.Reset()
	assert.Equal(t, simulator.Stats{ByStatus: map[int]int{}}, h.sim.Stats())
	assert.Empty(t, h.sim.Accepted())
	assert.Equal(t, 200, h.post(t, body).status, "script cleared and pair forgotten")
	assert.Equal(t, 1, h.sim.Stats().Accepted)
}

func TestObservationEndpoints(t *testing.T) {
	t.Parallel()
	h := newHarness(t, simulator.Options{})

	empty := h.send(t, http.MethodGet, "/_sim/accepted", nil, "")
	assert.Equal(t, 200, empty.status)
	assert.JSONEq(t, `[]`, empty.text)

	body := resultXML("e1", "p1")
	require.Equal(t, 200, h.post(t, body).status)
	require.Equal(t, 200, h.post(t, body).status)
	require.Equal(t, 403, h.send(t, http.MethodPost, resultURL, body, "").status)

	stats := h.send(t, http.MethodGet, "/_sim/stats", nil, "")
	require.Equal(t, 200, stats.status)
	assert.Equal(t, "application/json", stats.header.Get("Content-Type"))
	assert.JSONEq(t, `{"requests":3,"accepted":1,"duplicates":1,"by_status":{"200":2,"403":1}}`, stats.text)

	accepted := h.send(t, http.MethodGet, "/_sim/accepted", nil, "")
	require.Equal(t, 200, accepted.status)
	var got []simulator.Received
	require.NoError(t, json.Unmarshal([]byte(accepted.text), &got))
	assert.Equal(t, h.sim.Accepted(), got)
	assert.Contains(t, accepted.text, `"person":"p1"`)

	notGet := h.send(t, http.MethodPost, "/_sim/stats", body, sign.Sign(sign.SHA512, secret, body))
	assert.Equal(t, 405, notGet.status)
	assert.Equal(t, http.MethodGet, notGet.header.Get("Allow"))

	other := h.post(t, resultXML("e1", "p2"))
	require.Equal(t, 200, other.status)
	elsewhere := h.send(t, http.MethodPost, "/_sim/other", resultXML("e2", "p2"), sign.Sign(sign.SHA512, secret, resultXML("e2", "p2")))
	assert.Equal(t, 200, elsewhere.status, "any other path is the results endpoint")

	assert.Equal(t, 5, h.sim.Stats().Requests, "observation requests are not counted")
}

func TestOutAndLog(t *testing.T) {
	t.Parallel()
	var out, logs bytes.Buffer
	h := newHarness(t, simulator.Options{
		Out: &out,
		Log: slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	body := resultXML("e12345", "p12345")
	h.post(t, body)
	h.post(t, body)
	h.send(t, http.MethodGet, resultURL, nil, "")
	h.send(t, http.MethodGet, "/_sim/stats", nil, "")

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Len(t, lines, 3, out.String())
	assert.Equal(t, `09:30:00 200 accepted elearningcode="e12345" person="p12345"`, lines[0])
	assert.Equal(t, `09:30:00 200 duplicate elearningcode="e12345" person="p12345" (pair already registered; result ignored)`, lines[1])
	assert.Equal(t, `09:30:00 405 rejected (method GET)`, lines[2])

	dec := json.NewDecoder(&logs)
	var records []map[string]any
	for dec.More() {
		var rec map[string]any
		require.NoError(t, dec.Decode(&rec))
		records = append(records, rec)
	}
	require.Len(t, records, 3)
	assert.Equal(t, float64(200), records[0]["status"])
	assert.Equal(t, "e12345", records[0]["elearningcode"])
	assert.Equal(t, "p12345", records[0]["person"])
	assert.Equal(t, "duplicate", records[1]["outcome"])
	assert.NotContains(t, logs.String(), string(secret))
}

// FuzzResultsEndpoint feeds arbitrary signed bodies to the results
// endpoint: it must answer 200 or 400, never panic, and register only
// results that name a person and a code.
func FuzzResultsEndpoint(f *testing.F) {
	f.Add(resultXML("e12345", "p12345"))
	f.Add([]byte(`<CoachviewResultaat Elearningcode="e" PersoonExterneId="p"><Geslaagd>true</Geslaagd></CoachviewResultaat>`))
	f.Add([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><CoachviewResultaat/>`))
	f.Add([]byte(`<a><b></a>`))
	f.Add([]byte{})
	sim := simulator.New(simulator.Options{Secret: secret, Validate: rejectInvalid})
	f.Fuzz(func(t *testing.T, body []byte) {
		before := sim.Stats().Accepted
		req := httptest.NewRequest(http.MethodPost, resultURL, bytes.NewReader(body))
		req.Header.Set(sign.Header, sign.Sign(sign.SHA512, secret, body))
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		switch rec.Code {
		case 200:
			if acc := sim.Accepted(); sim.Stats().Accepted > before {
				last := acc[len(acc)-1]
				if last.PersonID == "" || last.ElearningCode == "" {
					t.Fatalf("registered a result without person or code: %+v", last)
				}
			}
		case 400:
		default:
			t.Fatalf("status %d for a signed body: %s", rec.Code, rec.Body)
		}
	})
}
