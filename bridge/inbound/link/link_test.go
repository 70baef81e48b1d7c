package link_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/inbound/internal/fakes"
	"github.com/cvbridge/cvbridge/bridge/inbound/link"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// allowAll lets every request through (package oauth's tests cover the
// real bearer check on this endpoint).
type allowAll struct{}

func (allowAll) Authorize(http.ResponseWriter, *http.Request) bool { return true }

const enrolBody = `{"PersoonExterneId":"p12345","PersoonVoornaam":"Jan","PersoonTussenvoegsels":"van","PersoonAchternaam":"Jansen","PersoonEmailadres":"jan@jansen.nl","Elearningcode":"e12345"}`

type rig struct {
	srv   *httptest.Server
	store inboundstore.Store
	enr   *fakes.Enroller
	clk   *clock.Fake
	proc  *inbound.Processor
}

func newRig(t *testing.T) *rig {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	store := fakes.Store(t, clk)
	enr := &fakes.Enroller{}
	router, err := inbound.NewCodeRouter([]inbound.CodeRule{{Connection: "moodle", Patterns: []string{"e*"}, Enroller: enr}}, "")
	require.NoError(t, err)
	log := slog.New(slog.DiscardHandler)
	proc := inbound.NewProcessor(store, router, inbound.WithClock(clk), inbound.WithLogger(log))
	h, err := link.New(link.Config{Owner: "daemon-1"}, store, proc, allowAll{}, clk, log)
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &rig{srv: srv, store: store, enr: enr, clk: clk, proc: proc}
}

func (r *rig) do(t *testing.T, method, query, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, r.srv.URL+"/enrol"+query, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := r.srv.Client().Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func (r *rig) messages(t *testing.T) []inboundstore.Message {
	t.Helper()
	ms, err := r.store.ListMessages(t.Context(), inboundstore.MessageFilter{})
	require.NoError(t, err)
	return ms
}

func TestRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, query, body string
		status                    int
		msgHas                    string
		call                      *fakes.Call
	}{
		{"enrol", "POST", "", enrolBody, 200, "OK", &fakes.Call{Action: "enrol", Enrolment: source.Enrolment{
			PersonID: "p12345", FirstName: "Jan", Infix: "van", LastName: "Jansen", Email: "jan@jansen.nl", ElearningCode: "e12345"}}},
		{"enrol with unknown fields", "POST", "", strings.Replace(enrolBody, "{", `{"Onbekend":[1,2],`, 1), 200, "OK", &fakes.Call{Action: "enrol", Enrolment: source.Enrolment{
			PersonID: "p12345", FirstName: "Jan", Infix: "van", LastName: "Jansen", Email: "jan@jansen.nl", ElearningCode: "e12345"}}},
		{"unenrol by DELETE", "DELETE", "?PersoonExterneId=p12345&Elearningcode=e12345", "", 200, "OK",
			&fakes.Call{Action: "unenrol", Enrolment: source.Enrolment{PersonID: "p12345", ElearningCode: "e12345"}}},
		{"unenrol by body-less POST", "POST", "?PersoonExterneId=p12345&Elearningcode=e12345", "", 200, "OK",
			&fakes.Call{Action: "unenrol", Enrolment: source.Enrolment{PersonID: "p12345", ElearningCode: "e12345"}}},
		{"missing person", "POST", "", strings.Replace(enrolBody, `"PersoonExterneId":"p12345",`, "", 1), 400, "PersoonExterneId: missing", nil},
		{"empty code", "POST", "", strings.Replace(enrolBody, `"e12345"`, `""`, 1), 400, "Elearningcode: missing", nil},
		{"over-long last name", "POST", "", strings.Replace(enrolBody, `"Jansen"`, `"`+strings.Repeat("x", 101)+`"`, 1), 400, "PersoonAchternaam: longer than 100", nil},
		{"person id of 51 characters", "POST", "", strings.Replace(enrolBody, `"p12345"`, `"`+strings.Repeat("p", 51)+`"`, 1), 400, "PersoonExterneId: longer than 50 characters", nil},
		{"unenrol code of 51 characters", "DELETE", "?PersoonExterneId=p12345&Elearningcode=" + strings.Repeat("e", 51), "", 400, "Elearningcode: longer than 50 characters", nil},
		{"C1 control character", "POST", "", strings.Replace(enrolBody, `"Jan"`, `"Ja\u0085n"`, 1), 400, "PersoonVoornaam: contains control characters", nil},
		{"number for a string", "POST", "", strings.Replace(enrolBody, `"p12345"`, `12345`, 1), 400, "PersoonExterneId: must be a string", nil},
		{"bad e-mail", "POST", "", strings.Replace(enrolBody, `jan@jansen.nl`, `jan`, 1), 400, "PersoonEmailadres: is not an e-mail address", nil},
		{"not JSON", "POST", "", `PersoonExterneId=p1`, 400, "body: not a JSON object", nil},
		{"DELETE without code", "DELETE", "?PersoonExterneId=p12345", "", 400, "Elearningcode: missing", nil},
		{"DELETE with two ids", "DELETE", "?PersoonExterneId=a&PersoonExterneId=b&Elearningcode=e1", "", 400, "PersoonExterneId: given more than once", nil},
		{"PUT", "PUT", "", enrolBody, 405, "only POST", nil},
		{"oversized", "POST", "", `{"x":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "larger than", nil},
		{"unrouted code", "POST", "", strings.Replace(enrolBody, `"e12345"`, `"X1"`, 1), 422, `e-learning code "X1" is not linked`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			status, msg := r.do(t, tc.method, tc.query, tc.body)
			assert.Equal(t, tc.status, status, msg)
			assert.Contains(t, msg, tc.msgHas)
			if tc.call == nil {
				assert.Empty(t, r.enr.Calls())
				if status/100 == 4 && status != 422 {
					assert.Empty(t, r.messages(t), "a refused request is not stored")
				}
				return
			}
			assert.Equal(t, []fakes.Call{*tc.call}, r.enr.Calls())
			ms := r.messages(t)
			require.Len(t, ms, 1)
			assert.Equal(t, inboundstore.StateDone, ms[0].State)
			assert.Equal(t, inboundstore.VerifiedBearer, ms[0].Verified)
		})
	}
}

func TestPermanentRefusal(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.enr.Fail(&source.PermanentError{Err: errors.New("course e12345 does not exist in Moodle")})
	status, msg := r.do(t, "POST", "", enrolBody)
	assert.Equal(t, http.StatusUnprocessableEntity, status)
	assert.Contains(t, msg, "course e12345 does not exist in Moodle")
	ms := r.messages(t)
	require.Len(t, ms, 1)
	assert.Equal(t, inboundstore.StateFailed, ms[0].State)

	// Repeating after the provider fixed the course carries it out.
	status, _ = r.do(t, "POST", "", enrolBody)
	assert.Equal(t, http.StatusOK, status)
	ms = r.messages(t)
	require.Len(t, ms, 1, "a repeated request is the same stored message")
	assert.Equal(t, inboundstore.StateDone, ms[0].State)
	assert.Equal(t, 2, ms[0].Requests)
	assert.Len(t, r.enr.Calls(), 2)
}

// An LMS that fails transiently gets the request again from the worker:
// nothing is lost.
func TestTransientThenRetried(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.enr.Fail(errors.New("connection refused"), errors.New("503 from Moodle"))
	status, msg := r.do(t, "POST", "", enrolBody)
	assert.Equal(t, http.StatusAccepted, status)
	assert.Contains(t, msg, "will be retried")
	ms := r.messages(t)
	require.Len(t, ms, 1)
	assert.Equal(t, inboundstore.StatePending, ms[0].State)
	assert.Equal(t, 1, ms[0].Attempts)
	assert.Contains(t, ms[0].LastError, "connection refused")

	w, err := inbound.NewWorker(r.store, r.proc, inbound.WorkerConfig{Owner: "worker"})
	require.NoError(t, err)
	n, err := w.RunOnce(t.Context())
	require.NoError(t, err)
	assert.Zero(t, n, "not due before its backoff")
	r.clk.Advance(time.Minute) // the first retry's delay
	n, err = w.RunOnce(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, inboundstore.StatePending, r.messages(t)[0].State, "the second failure schedules another retry")
	r.clk.Advance(2 * time.Minute)
	n, err = w.RunOnce(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	ms = r.messages(t)
	assert.Equal(t, inboundstore.StateDone, ms[0].State)
	assert.Equal(t, 3, ms[0].Attempts)
	assert.Len(t, r.enr.Calls(), 3)
}

// TestRepeatWhileCarriedOut: Coachview repeats a request whose answer it
// did not get in time while this daemon is still carrying out the first.
// The repeat is answered 202 without calling the LMS a second time: two
// calls at once could create the user twice, and the one that lost might
// record a done enrolment as failed.
func TestRepeatWhileCarriedOut(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.enr.Gate = make(chan struct{})
	r.enr.Called = make(chan struct{}, 2)
	first := make(chan int, 1)
	go func() {
		status, _ := r.do(t, "POST", "", enrolBody)
		first <- status
	}()
	<-r.enr.Called // the first request is inside the LMS call

	status, msg := r.do(t, "POST", "", enrolBody)
	assert.Equal(t, http.StatusAccepted, status)
	assert.Contains(t, msg, "is being carried out now")
	select {
	case <-r.enr.Called:
		t.Error("the repeat called the LMS while the first request was carrying the message out")
	default:
	}
	close(r.enr.Gate)
	assert.Equal(t, http.StatusOK, <-first)
	assert.Len(t, r.enr.Calls(), 1)
	ms := r.messages(t)
	require.Len(t, ms, 1)
	assert.Equal(t, inboundstore.StateDone, ms[0].State)
}

func FuzzParseEnrol(f *testing.F) {
	f.Add([]byte(enrolBody))
	f.Add([]byte(`{"PersoonExterneId":null}`))
	f.Add([]byte(`{"PersoonExterneId":"a\u0000","Elearningcode":"e","PersoonVoornaam":"x","PersoonAchternaam":"y","PersoonEmailadres":"a@b"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := link.ParseEnrol(body)
		if err != nil {
			var fe *link.FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("error %v does not name a field", err)
			}
			return
		}
		for name, v := range map[string]string{"PersoonExterneId": req.PersonID, "Elearningcode": req.ElearningCode,
			"PersoonAchternaam": req.LastName, "PersoonEmailadres": req.Email} {
			if v == "" {
				t.Fatalf("accepted without %s", name)
			}
		}
		if len([]rune(req.PersonID)) > inbound.MaxPersonIDLen || len([]rune(req.Email)) > inbound.MaxEmailLen {
			t.Fatalf("accepted over-long field: %+v", req)
		}
	})
}

// TestLaterUnenrolWins reproduces issue 18's finding: an enrolment answered
// 202 (LMS unreachable) must not be carried out after a later, successful
// unenrolment of the same pair. The last request decides: the worker's retry
// finds the enrolment superseded, and the enrolment list says unenrolled.
func TestLaterUnenrolWins(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.enr.Fail(errors.New("connection refused"))
	status, _ := r.do(t, "POST", "", enrolBody)
	require.Equal(t, http.StatusAccepted, status)

	status, body := r.do(t, "DELETE", "?PersoonExterneId=P12345&Elearningcode=e12345", "")
	require.Equal(t, http.StatusOK, status, body)

	r.clk.Advance(24 * time.Hour)
	w, err := inbound.NewWorker(r.store, r.proc, inbound.WorkerConfig{Owner: "worker"})
	require.NoError(t, err)
	n, err := w.RunOnce(t.Context())
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left to carry out")
	calls := r.enr.Calls()
	require.Len(t, calls, 2)
	assert.Equal(t, "unenrol", calls[1].Action, "the unenrolment was the last call to the LMS")

	list, err := r.store.(inboundstore.EnrolmentList).ListEnrolments(t.Context(), inboundstore.EnrolmentFilter{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, inboundstore.EnrolmentUnenrolled, list[0].State)
	ms := r.messages(t)
	require.Len(t, ms, 2)
	assert.Equal(t, inboundstore.StateSuperseded, ms[1].State, "the enrolment")
}

// TestAnswersNameNoServerFiles: what Coachview's user reads names no file
// or host of the bridge's server, whatever the LMS connection's error says.
func TestAnswersNameNoServerFiles(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.enr.Fail(errors.New("csvdrop: open enrolment export: open /var/lib/cvbridge/outgoing/enrolments.csv: permission denied"))
	status, msg := r.do(t, "POST", "", enrolBody)
	assert.Equal(t, http.StatusAccepted, status)
	assert.NotContains(t, msg, "/var/lib")
	assert.Contains(t, msg, "will be retried")
	ms := r.messages(t)
	require.Len(t, ms, 1)
	assert.Contains(t, ms[0].LastError, "/var/lib/cvbridge/outgoing/enrolments.csv", "the operator sees it in the inbox")
}
