// Package moodletest is a stand-in Moodle for tests: an httptest server that
// speaks Moodle's REST web-service wire format exactly (form-encoded POST to
// /webservice/rest/server.php with PHP bracket arrays, JSON answers, errors
// as HTTP 200 exception objects, the literal null for functions that return
// nothing, 403 with an empty body when web services are off) over a small
// in-memory site of users, courses, enrolments, completions and grades.
//
// It checks what a real Moodle checks that matters to the bridge: the token,
// the functions the token's service allows, who may see ID numbers, unique
// usernames and e-mail addresses, and the manual enrolment instance.
package moodletest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Token is one web-service token and what its user may do.
type Token struct {
	// Functions the token's external service allows, and
	// core_webservice_get_site_info lists; nil allows all.
	Functions []string
	// UserID is the token's user (default 2, the admin). Moodle shows a
	// user their own ID number whatever their capabilities.
	UserID int64
	// ViewIDNumbers is moodle/user:viewalldetails: without it users are
	// neither found by idnumber nor returned with one (Moodle's gotcha).
	ViewIDNumbers bool
	// CourseUpdate is moodle/course:update: without it courses are returned
	// without their idnumber.
	CourseUpdate bool
}

// User is a Moodle user.
type User struct {
	ID                                        int64
	Username, FirstName, MiddleName, LastName string
	Email, IDNumber, Auth                     string
	// Profile holds custom profile fields by short name.
	Profile map[string]string
}

// Course is a Moodle course.
type Course struct {
	ID                            int64
	ShortName, FullName, IDNumber string
	// NoManualEnrol means the course has no enabled manual enrolment instance.
	NoManualEnrol bool
	// NoCriteria means completion tracking has no criteria set.
	NoCriteria bool
}

// Progress is a user's completion state and grade in a course.
type Progress struct {
	// CriteriaDone holds the timecompleted of each criterion (0 = not done).
	CriteriaDone []int64
	// Completed is the course completion status.
	Completed bool
	// Grade is the course total (graderaw) as Moodle's JSON number text; ""
	// means ungraded (null).
	Grade string
	// GradeMax is the course total's maximum (default 100).
	GradeMax string
}

// Server is a running stand-in Moodle. Its fields may be changed between
// calls while holding no lock only when no call is in flight; use the
// methods otherwise.
type Server struct {
	*httptest.Server

	mu          sync.Mutex
	tokens      map[string]Token
	wsOff       bool
	users       []*User
	courses     []*Course
	enrolled    map[[2]int64]int64 // (user, course) → role
	progress    map[[2]int64]*Progress
	calls       map[string]int
	nextUserID  int64
	lastRequest url.Values
	lastOf      map[string]url.Values // by function
}

// New starts a stand-in Moodle with the given tokens; it stops when the test ends.
func New(t testing.TB, tokens map[string]Token) *Server {
	s := &Server{
		tokens:     tokens,
		enrolled:   map[[2]int64]int64{},
		progress:   map[[2]int64]*Progress{},
		calls:      map[string]int{},
		lastOf:     map[string]url.Values{},
		nextUserID: 100,
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// AddUser adds a user and returns its id (u.ID is assigned when zero).
func (s *Server) AddUser(u User) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.ID == 0 {
		u.ID = s.nextUserID
		s.nextUserID++
	}
	if u.Auth == "" {
		u.Auth = "manual"
	}
	s.users = append(s.users, &u)
	return u.ID
}

// AddCourse adds a course.
func (s *Server) AddCourse(c Course) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.courses = append(s.courses, &c)
}

// Enrol enrols a user in a course with role 5, as a teacher would.
func (s *Server) Enrol(userID, courseID int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enrolled[[2]int64{userID, courseID}] = 5
}

// SetProgress sets a user's completion state and grade in a course.
func (s *Server) SetProgress(userID, courseID int64, p Progress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.progress[[2]int64{userID, courseID}] = &p
}

// SetWebServicesOff makes every call answer 403 with an empty body.
func (s *Server) SetWebServicesOff(off bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wsOff = off
}

// Calls returns how often function was called; "" counts all calls.
func (s *Server) Calls(function string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return countCalls(s.calls, function)
}

// ResetCalls sets all call counters to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
}

// LastRequest returns the form of the last call, token removed.
func (s *Server) LastRequest() url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastRequest
}

// LastRequestOf returns the form of the last call of function, token removed.
func (s *Server) LastRequestOf(function string) url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastOf[function]
}

// User returns a copy of the user with id, or false.
func (s *Server) User(id int64) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.ID == id {
			return *u, true
		}
	}
	return User{}, false
}

// UserCount returns the number of users.
func (s *Server) UserCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.users)
}

// Enrolled reports whether the user is enrolled in the course, and with which role.
func (s *Server) Enrolled(userID, courseID int64) (role int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	role, ok = s.enrolled[[2]int64{userID, courseID}]
	return role, ok
}

// moodleError is an exception answer.
type moodleError struct {
	Exception string `json:"exception"`
	ErrorCode string `json:"errorcode"`
	Message   string `json:"message"`
}

func fail(code, message string) *moodleError {
	return &moodleError{Exception: "moodle_exception", ErrorCode: code, Message: message}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/webservice/rest/server.php" {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wsOff {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		writeJSON(w, fail("invalidparameter", "the bridge must POST a form-encoded body"))
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, fail("invalidparameter", err.Error()))
		return
	}
	form := r.PostForm
	if len(r.URL.Query()) > 0 {
		writeJSON(w, fail("invalidparameter", "parameters must be in the body, not the URL"))
		return
	}
	if form.Get("moodlewsrestformat") != "json" {
		// Moodle would answer XML; the bridge must always ask for JSON.
		w.Header().Set("Content-Type", "application/xml")
		_, _ = w.Write([]byte("<?xml version=\"1.0\"?><RESPONSE/>"))
		return
	}
	function := form.Get("wsfunction")
	s.calls[function]++
	tok, ok := s.tokens[form.Get("wstoken")]
	if !ok {
		writeJSON(w, &moodleError{Exception: "moodle_exception", ErrorCode: "invalidtoken", Message: "Invalid token - token not found"})
		return
	}
	if tok.Functions != nil && !contains(tok.Functions, function) {
		writeJSON(w, &moodleError{Exception: "webservice_access_exception", ErrorCode: "accessexception", Message: "Access control exception"})
		return
	}
	params, err := ParseBrackets(form)
	if err != nil {
		writeJSON(w, fail("invalidparameter", err.Error()))
		return
	}
	clean := url.Values{}
	for k, v := range form {
		if k != "wstoken" {
			clean[k] = v
		}
	}
	s.lastRequest = clean
	s.lastOf[function] = clean
	out, merr := s.dispatch(tok, function, params)
	if merr != nil {
		writeJSON(w, merr)
		return
	}
	writeJSON(w, out)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v) // nil encodes as the literal null, as Moodle answers void functions
}

var bracketKey = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)((?:\[[A-Za-z0-9_]*\])*)$`)

// ParseBrackets turns PHP bracket keys into nested maps, as PHP does for
// Moodle: users[0][username]=jdoe becomes {"users": {"0": {"username":
// "jdoe"}}}. Lists are maps with keys "0", "1", …; the last value of a
// repeated key wins.
func ParseBrackets(form url.Values) (map[string]any, error) {
	root := map[string]any{}
	for key, values := range form {
		m := bracketKey.FindStringSubmatch(key)
		if m == nil {
			return nil, fmt.Errorf("malformed parameter name %q", key)
		}
		path := []string{m[1]}
		if m[2] != "" {
			path = append(path, strings.Split(strings.Trim(m[2], "[]"), "][")...)
		}
		node := root
		for i, p := range path {
			if i == len(path)-1 {
				node[p] = values[len(values)-1]
				break
			}
			next, ok := node[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				node[p] = next
			}
			node = next
		}
	}
	return root, nil
}

// list returns the elements of a PHP list parameter in index order.
func list(v any) []any {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	idx := make([]int, 0, len(m))
	for k := range m {
		n, err := strconv.Atoi(k)
		if err != nil {
			return nil
		}
		idx = append(idx, n)
	}
	sort.Ints(idx)
	out := make([]any, 0, len(idx))
	for _, i := range idx {
		out = append(out, m[strconv.Itoa(i)])
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func num(v any) int64 {
	n, _ := strconv.ParseInt(str(v), 10, 64)
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// countCalls is how often function was called according to calls; ""
// counts all calls.
func countCalls(calls map[string]int, function string) int {
	if function != "" {
		return calls[function]
	}
	n := 0
	for _, c := range calls {
		n += c
	}
	return n
}
