//go:build moodlerecord

package moodle

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters/moodle/moodletest"
)

// TestRecordMoodle records a real Moodle's answers to every call the
// adapter and `cvbridge check` make in the recorded scenarios
// (recorded_test.go), as fixtures under moodletest/testdata/<release>.
// Prepare the Moodle with moodletest/record/create_site.php, then:
//
//	MOODLE_SITE=site.json go test -tags moodlerecord -run TestRecordMoodle ./adapters/moodle/
//
// MOODLE_SITE is the JSON create_site.php printed (tokens and ids);
// MOODLE_URL overrides its wwwroot; MOODLE_FIXTURES names the folder
// (default: the release's number, such as 4.5.5). Tokens are written as
// their names, never themselves.
func TestRecordMoodle(t *testing.T) {
	raw, err := os.ReadFile(os.Getenv("MOODLE_SITE"))
	require.NoError(t, err, "MOODLE_SITE: the JSON create_site.php printed")
	var site struct {
		moodletest.SiteInfo
		Tokens  map[string]string `json:"tokens"`
		WWWRoot string            `json:"wwwroot"`
	}
	require.NoError(t, json.Unmarshal(raw, &site))
	wwwroot := strings.TrimRight(site.WWWRoot, "/")
	if u := os.Getenv("MOODLE_URL"); u != "" {
		wwwroot = strings.TrimRight(u, "/")
	}
	folder := os.Getenv("MOODLE_FIXTURES")
	if folder == "" {
		folder = regexp.MustCompile(`^[0-9.]+`).FindString(site.Release)
	}
	names := map[string]string{}
	for name, token := range site.Tokens {
		names[token] = name
	}

	rec := &recorder{moodle: wwwroot, names: names, seen: map[string]moodletest.Exchange{}, byFunction: map[string][]moodletest.Exchange{}}
	proxy := httptest.NewServer(rec)
	defer proxy.Close()
	ctx := context.Background()

	for _, name := range recordedTokens {
		notes, err := recordedSource(t, proxy.URL, site.Tokens[name], nil).Check(ctx)
		t.Logf("check %s: %q %v", name, notes, err)
	}
	for _, name := range recordedTokens {
		if name == "noassign" {
			continue
		}
		sink, logs, err := recordedPoll(t, proxy.URL, site.Tokens[name])
		t.Logf("poll %s: %v %q\n%s", name, err, results(sink), logs)
	}
	err = recordedSource(t, proxy.URL, site.Tokens["noassign"], nil).Enrol(ctx, recordedEnrolment)
	t.Logf("enrol noassign: %v", err)
	require.Empty(t, rec.failures)

	dir := filepath.Join("moodletest", "testdata", folder)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	info := site.SiteInfo
	info.Recorded = fmt.Sprintf("recorded from a real Moodle %s on PostgreSQL on %s by adapters/moodle/record_test.go", site.Release, time.Now().UTC().Format("2006-01-02"))
	info.Tokens = map[string]string{
		"full": "every capability the documentation lists", "noreview": "without moodle/course:enrolreview",
		"nogroups": "without moodle/site:accessallgroups", "nohidden": "without moodle/grade:viewhidden",
		"nodetails": "without moodle/user:viewalldetails", "noassign": "every capability, but its role may not assign the Student role",
	}
	writeJSON(t, filepath.Join(dir, "site.json"), info)
	for function, xs := range rec.byFunction {
		sort.Slice(xs, func(i, j int) bool {
			return moodletest.Key(xs[i].Token, function, xs[i].Params) < moodletest.Key(xs[j].Token, function, xs[j].Params)
		})
		writeJSON(t, filepath.Join(dir, function+".json"), xs)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, append(b, '\n'), 0o644))
}

// recorder passes calls on to a real Moodle and keeps each answer, the
// first one per token, function and parameters.
type recorder struct {
	moodle     string
	names      map[string]string // token → name
	mu         sync.Mutex
	seen       map[string]moodletest.Exchange
	byFunction map[string][]moodletest.Exchange
	failures   []string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if err := req.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := http.PostForm(r.moodle+req.URL.Path, req.PostForm)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)

	function, token, params := moodletest.Split(req.PostForm)
	name, ok := r.names[token]
	r.mu.Lock()
	defer r.mu.Unlock()
	if !ok || resp.StatusCode != http.StatusOK {
		r.failures = append(r.failures, fmt.Sprintf("%s: token known %t, HTTP %d", function, ok, resp.StatusCode))
		return
	}
	var answer any
	if err := json.Unmarshal(body, &answer); err != nil {
		r.failures = append(r.failures, fmt.Sprintf("%s: not JSON: %v", function, err))
		return
	}
	if m, ok := answer.(map[string]any); ok {
		delete(m, "userprivateaccesskey") // a secret of the token's user
	}
	clean, _ := json.Marshal(answer)
	clean = bytes.ReplaceAll(clean, []byte(r.moodle), []byte("{{wwwroot}}"))
	x := moodletest.Exchange{Token: name, Params: params, Response: clean}
	key := moodletest.Key(name, function, params)
	if _, dup := r.seen[key]; dup {
		return
	}
	r.seen[key] = x
	r.byFunction[function] = append(r.byFunction[function], x)
}
