package moodletest

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"sort"
	"strings"
	"sync"
	"testing"
)

// recorded holds the answers of real Moodle sites, one folder per release
// (testdata/<release>/): site.json says which Moodle answered and what the
// recorder created in it; every other file is a list of Exchanges of one
// web-service function. record_test.go (build tag moodlerecord) writes them.
//
//go:embed testdata
var recorded embed.FS

// SiteInfo describes the Moodle a folder of fixtures was recorded from.
type SiteInfo struct {
	// Release and Version are Moodle's $CFG->release and $CFG->version.
	Release string `json:"release"`
	Version string `json:"version"`
	// Recorded says how the fixtures came to be: from a real Moodle, or
	// written by hand from documentation.
	Recorded string `json:"recorded"`
	// Tokens names the recorder's tokens (each a capability set); the
	// fixtures use these names in place of the secret tokens.
	Tokens map[string]string `json:"tokens"`
	// Users and Courses are the ids of what create_site.php created, by
	// username and course short name.
	Users   map[string]int64 `json:"users"`
	Courses map[string]int64 `json:"courses"`
}

// Exchange is one recorded call: the token's name, the form parameters
// without wstoken, wsfunction and moodlewsrestformat, and Moodle's answer
// with its web root written as {{wwwroot}}.
type Exchange struct {
	Token    string            `json:"token"`
	Params   map[string]string `json:"params"`
	Response json.RawMessage   `json:"response"`
}

// Key identifies an exchange by token name, function and parameters.
func Key(token, function string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(token + " " + function)
	for _, k := range keys {
		b.WriteString(" " + k + "=" + params[k])
	}
	return b.String()
}

// Replay is a stand-in Moodle that answers only with what a real Moodle
// answered to the same token, function and parameters. A call that was
// never recorded fails the test: it means the bridge asks Moodle something
// the fixtures cannot vouch for.
type Replay struct {
	*httptest.Server
	Site SiteInfo

	t       testing.TB
	answers map[string]json.RawMessage
	mu      sync.Mutex
	calls   map[string]int
}

// NewReplay serves the fixtures recorded from Moodle release (a folder
// under testdata, such as "4.5.5"); it stops when the test ends. Tokens are
// the recorder's token names (SiteInfo.Tokens).
func NewReplay(t testing.TB, release string) *Replay {
	t.Helper()
	dir := path.Join("testdata", release)
	r := &Replay{t: t, answers: map[string]json.RawMessage{}, calls: map[string]int{}}
	raw, err := recorded.ReadFile(path.Join(dir, "site.json"))
	if err != nil {
		t.Fatalf("moodletest: no fixtures for Moodle %s: %v", release, err)
	}
	if err := json.Unmarshal(raw, &r.Site); err != nil {
		t.Fatalf("moodletest: %s/site.json: %v", dir, err)
	}
	entries, err := fs.ReadDir(recorded, dir)
	if err != nil {
		t.Fatalf("moodletest: %v", err)
	}
	for _, e := range entries {
		name := e.Name()
		if name == "site.json" || !strings.HasSuffix(name, ".json") {
			continue
		}
		raw, err := recorded.ReadFile(path.Join(dir, name))
		if err != nil {
			t.Fatalf("moodletest: %v", err)
		}
		var xs []Exchange
		if err := json.Unmarshal(raw, &xs); err != nil {
			t.Fatalf("moodletest: %s/%s: %v", dir, name, err)
		}
		function := strings.TrimSuffix(name, ".json")
		for _, x := range xs {
			r.answers[Key(x.Token, function, x.Params)] = x.Response
		}
	}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

// Calls returns how often function was called; "" counts all calls.
func (r *Replay) Calls(function string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return countCalls(r.calls, function)
}

func (r *Replay) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/webservice/rest/server.php" {
		http.NotFound(w, req)
		return
	}
	if req.Method != http.MethodPost || !strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		writeJSON(w, fail("invalidparameter", "the bridge must POST a form-encoded body"))
		return
	}
	if err := req.ParseForm(); err != nil || req.PostForm.Get("moodlewsrestformat") != "json" {
		writeJSON(w, fail("invalidparameter", "a form with moodlewsrestformat=json is expected"))
		return
	}
	function, token, params := Split(req.PostForm)
	r.mu.Lock()
	r.calls[function]++
	r.mu.Unlock()
	answer, ok := r.answers[Key(token, function, params)]
	if !ok {
		r.t.Errorf("moodletest: Moodle %s was never asked this, so its answer is unknown: %s", r.Site.Release, Key(token, function, params))
		writeJSON(w, fail("notrecorded", "no recorded answer"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(strings.ReplaceAll(string(answer), "{{wwwroot}}", r.URL)))
}

// Split takes a web-service form apart into the function, the token and
// the function's parameters.
func Split(form url.Values) (function, token string, params map[string]string) {
	params = map[string]string{}
	for k, v := range form {
		switch k {
		case "wsfunction":
			function = v[0]
		case "wstoken":
			token = v[0]
		case "moodlewsrestformat":
		default:
			params[k] = v[len(v)-1]
		}
	}
	return function, token, params
}

// String describes the fixtures' origin for test logs.
func (s SiteInfo) String() string {
	return fmt.Sprintf("Moodle %s (version %s), %s", s.Release, s.Version, s.Recorded)
}
