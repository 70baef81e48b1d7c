package moodle

import (
	"bytes"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cvbridge/cvbridge/adapters/moodle/ws"
	"github.com/cvbridge/cvbridge/bridge/config"
)

// Setting values.
const (
	modeDatabase   = "database"
	modeWebService = "webservice"

	driverPostgres = "postgres"
	driverMySQL    = "mysql"

	fieldIDNumber  = "idnumber"
	fieldUsername  = "username"
	fieldEmail     = "email"
	fieldShortname = "shortname"
	fieldCourses   = "courses"
	profilePrefix  = "profile:"

	changesLog    = "log"
	changesWindow = "window"

	passedCompletion = "completion"
	passedGradePass  = "gradepass"
	passedThreshold  = "threshold"

	resultDecimal = "decimal"
	resultText    = "text"
	resultNone    = "none"

	splitDutch = "dutch"
	splitNone  = "none"

	maxConcurrency = 4
)

// Settings is the moodle section of an LMS file. See the package
// documentation for an annotated example with the defaults.
type Settings struct {
	// Mode is how the bridge reads Moodle: database (read-only SQL access)
	// or webservice (a REST token only). Required.
	Mode string `yaml:"mode"`

	// Driver is the database kind, postgres or mysql (MariaDB included).
	Driver string `yaml:"driver"`
	// DSNFile is a file holding the database DSN (relative to cvbridge.yaml's directory);
	// DSNEnv names an environment variable holding it. Exactly one in database mode.
	DSNFile string `yaml:"dsn_file"`
	DSNEnv  string `yaml:"dsn_env"`
	// Prefix is Moodle's table prefix, $CFG->prefix in config.php (default mdl_).
	Prefix string `yaml:"prefix"`
	// Lookback is how far behind the newest completion time a completion
	// may lie and still be sent when cron writes it back-dated, or sent again
	// when its course total is regraded (default 72h).
	Lookback time.Duration `yaml:"lookback"`
	// Changes is how database mode finds back-dated completions and regrades
	// behind its cursor: log (default) reads what was written since the last
	// poll in logstore_standard_log and grade_grades_history; window reads
	// the whole lookback window again on every poll, for a Moodle whose
	// standard log store is off or whose grade history is disabled.
	Changes string `yaml:"changes"`
	// PageSize is the most rows read, or enrolments checked, per committed
	// batch (default 500).
	PageSize int `yaml:"page_size"`
	// Since, when set, is the earliest completion time ever sent: older
	// completions are never sent (in webservice mode: older completion
	// dates), so a provider moving to the bridge does not post years of
	// history on the first poll. A date (2025-01-01, midnight in the
	// provider's time zone) or an RFC 3339 time. In database mode it is also
	// where the first poll starts; without it the first poll starts at its
	// own time and sends no completion dated before (an existing cursor is
	// kept either way). In webservice mode the default is none: every
	// completion of a watched enrolment is sent.
	Since string `yaml:"since"`

	// URL is Moodle's wwwroot. Required in webservice mode; in database mode
	// it enables the enroller. HTTPS unless the host is a loopback address.
	URL string `yaml:"url"`
	// TokenFile is a file holding the web-service token (relative to
	// cvbridge.yaml's directory); TokenEnv names an environment variable holding it. Exactly one
	// when URL is set.
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
	// Concurrency is the most web-service calls in flight (default 2, at most 4).
	Concurrency int `yaml:"concurrency"`
	// TrackCourseUsers makes webservice mode also poll the users enrolled in
	// the mapped courses outside the bridge (by a teacher, a cohort sync),
	// not only those in the bridge's enrolment list (default false). The
	// course member lists are read at most once per DiscoverEvery.
	TrackCourseUsers bool `yaml:"track_course_users"`
	// DiscoverEvery is how often the member lists of the mapped courses are
	// read with TrackCourseUsers (default 1h); without it, it is not used.
	DiscoverEvery time.Duration `yaml:"discover_every"`
	// CheckUsername is the username of a Moodle user whose person field
	// (PersonField) is filled in. `cvbridge check` looks this user up to
	// prove the token can see that field; without it the check cannot tell
	// an invisible ID number from a missing one.
	CheckUsername string `yaml:"check_username"`

	// PersonField is the user field holding Coachview's PersoonExterneId:
	// idnumber (default), username, email or profile:<shortname> of a custom
	// profile field.
	PersonField string `yaml:"person_field"`
	// CourseField is the course field holding the Elearningcode: idnumber
	// (default), shortname, or courses to use the Courses table.
	CourseField string `yaml:"course_field"`
	// Courses maps Elearningcodes to Moodle course ids (course_field: courses).
	// Courses not in the table are ignored.
	Courses map[string]int64 `yaml:"courses"`

	// Passed decides Geslaagd: completion (the course is completed; default),
	// gradepass (course total ≥ the course's pass mark; database mode only,
	// the web services do not return it) or threshold (course total ≥
	// Threshold percent of the maximum).
	Passed string `yaml:"passed"`
	// Threshold is a percentage of the maximum grade, such as 55.
	Threshold string `yaml:"threshold"`
	// Result is what is sent as the result: decimal (ResultaatDecimaal =
	// grade/max × ScaleMax; the core rounds it), text (Resultaat from
	// TextFormat) or none (default).
	Result string `yaml:"result"`
	// ScaleMax is the top of the decimal scale (default 10).
	ScaleMax string `yaml:"scale_max"`
	// TextFormat is the Resultaat text; {percent} (whole percent, half up),
	// {grade} and {max} are replaced (default "{percent}%").
	TextFormat string `yaml:"text_format"`
	// Remark is a text/template for Opmerking over a RemarkData; empty sends none.
	Remark string `yaml:"remark"`

	// Auth is the authentication method of users the enroller creates (default manual).
	Auth string `yaml:"auth"`
	// RoleID is the role the enroller gives (default 5, student).
	RoleID int64 `yaml:"role_id"`
	// NameSplit is how the tussenvoegsel is stored: dutch puts it in the last
	// name ("van der Berg", default); none keeps the last name as sent and
	// puts the tussenvoegsel in Moodle's middlename field.
	NameSplit string `yaml:"name_split"`

	// Derived by validate.
	threshold *big.Rat
	scaleMax  *big.Rat
	remark    *template.Template
	profile   string // custom profile field short name, or ""
	codeOf    map[int64]string
	since     time.Time // zero without Since
}

// RemarkData is what the remark template sees.
type RemarkData struct {
	// CourseID, CourseName (full name) and ShortName describe the course.
	CourseID   int64
	CourseName string
	ShortName  string
	// Code is the Elearningcode, PersonID the PersoonExterneId.
	Code, PersonID string
	// Completed is the completion time in the provider's time zone.
	Completed time.Time
	// Grade and Max are the course total and its maximum as Moodle stores
	// them ("" when ungraded); Percent is the whole percentage ("" when
	// ungraded); PassMark is the course's pass mark ("" when none or unknown).
	Grade, Max, Percent, PassMark string
	// Passed is the Geslaagd value.
	Passed bool
}

// DefaultSettings returns the settings a connection starts from before its
// LMS file is applied.
func DefaultSettings() Settings {
	return Settings{
		Prefix:        "mdl_",
		Lookback:      72 * time.Hour,
		Changes:       changesLog,
		PageSize:      500,
		Concurrency:   2,
		DiscoverEvery: time.Hour,
		PersonField:   fieldIDNumber,
		CourseField:   fieldIDNumber,
		Passed:        passedCompletion,
		Result:        resultNone,
		ScaleMax:      "10",
		TextFormat:    "{percent}%",
		Auth:          "manual",
		RoleID:        5,
		NameSplit:     splitDutch,
	}
}

// decodeSettings applies the settings node over the defaults and validates
// the result; loc is the provider's time zone, for a since date. Errors are
// *config.Error naming file, line and key.
func decodeSettings(file string, node *yaml.Node, loc *time.Location) (Settings, error) {
	s := DefaultSettings()
	if err := config.DecodeStrict(file, node, &s); err != nil {
		return Settings{}, err
	}
	if err := s.validate(file, node, loc); err != nil {
		return Settings{}, err
	}
	return s, nil
}

var (
	prefixPattern  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,20}$`)
	decimalPattern = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
	placeholder    = regexp.MustCompile(`\{[^{}]*\}`)
)

// validate checks the settings in one place and fills the derived fields.
// node is only used to find the line of the offending key.
func (s *Settings) validate(file string, node *yaml.Node, loc *time.Location) error {
	bad := func(key, format string, args ...any) error {
		return &config.Error{File: file, Line: keyLine(node, key), Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	switch s.Mode {
	case modeDatabase:
		if s.Driver == "mariadb" {
			s.Driver = driverMySQL
		}
		if s.Driver != driverPostgres && s.Driver != driverMySQL {
			return bad("driver", "must be postgres or mysql (MariaDB included) in database mode, got %q", s.Driver)
		}
		if (s.DSNFile == "") == (s.DSNEnv == "") {
			return bad("dsn_file", "set exactly one of dsn_file and dsn_env: where the read-only database DSN is kept")
		}
		if !prefixPattern.MatchString(s.Prefix) {
			return bad("prefix", "must be Moodle's table prefix ($CFG->prefix, lower-case letters, digits and _), got %q", s.Prefix)
		}
		if s.Lookback < 0 {
			return bad("lookback", "must not be negative, got %s", s.Lookback)
		}
		if s.Changes != changesLog && s.Changes != changesWindow {
			return bad("changes", "must be log or window, got %q", s.Changes)
		}
	case modeWebService:
		if s.URL == "" {
			return bad("url", "required in webservice mode: Moodle's wwwroot, such as https://learn.example.nl")
		}
		if s.Passed == passedGradePass {
			return bad("passed", "gradepass needs database mode: Moodle's web services do not return a course's pass mark; use threshold")
		}
	default:
		return bad("mode", "must be database or webservice, got %q", s.Mode)
	}
	if s.PageSize < 1 || s.PageSize > 10000 {
		return bad("page_size", "must be 1 to 10000, got %d", s.PageSize)
	}
	if s.URL != "" {
		if _, err := ws.New(s.URL, "placeholder", ws.Options{}); err != nil {
			return bad("url", "%v", err)
		}
		if (s.TokenFile == "") == (s.TokenEnv == "") {
			return bad("token_file", "set exactly one of token_file and token_env: where the web-service token is kept")
		}
	} else if s.TokenFile != "" || s.TokenEnv != "" {
		return bad("url", "required with token_file/token_env: Moodle's wwwroot")
	}
	if s.Concurrency < 1 || s.Concurrency > maxConcurrency {
		return bad("concurrency", "must be 1 to %d (every call boots Moodle), got %d", maxConcurrency, s.Concurrency)
	}
	if s.TrackCourseUsers && s.Mode != modeWebService {
		return bad("track_course_users", "only applies to webservice mode; database mode reads every completion")
	}
	if s.DiscoverEvery < time.Minute {
		return bad("discover_every", "must be at least 1m, got %s", s.DiscoverEvery)
	}
	if s.Since != "" {
		t, err := parseSince(s.Since, loc)
		if err != nil {
			return bad("since", "%v", err)
		}
		s.since = t
	}
	if s.CheckUsername != "" && s.URL == "" {
		return bad("check_username", "only applies with url and a token: it checks what the web services show")
	}

	switch {
	case s.PersonField == fieldIDNumber, s.PersonField == fieldUsername, s.PersonField == fieldEmail:
	case strings.HasPrefix(s.PersonField, profilePrefix) && len(s.PersonField) > len(profilePrefix):
		s.profile = strings.TrimPrefix(s.PersonField, profilePrefix)
	default:
		return bad("person_field", "must be idnumber, username, email or profile:<shortname>, got %q", s.PersonField)
	}
	switch s.CourseField {
	case fieldIDNumber, fieldShortname:
		if len(s.Courses) > 0 {
			return bad("courses", "needs course_field: courses (course_field is %s)", s.CourseField)
		}
	case fieldCourses:
		if len(s.Courses) == 0 {
			return bad("courses", "course_field courses needs a table of Elearningcode: Moodle course id")
		}
		s.codeOf = map[int64]string{}
		for code, id := range s.Courses {
			if strings.TrimSpace(code) == "" || len(code) > 50 {
				return bad("courses", "Elearningcode %q must be 1 to 50 characters", code)
			}
			if id <= 0 {
				return bad("courses", "course id for %q must be a positive Moodle course id, got %d", code, id)
			}
			if other, dup := s.codeOf[id]; dup {
				return bad("courses", "course id %d is mapped twice (%q and %q)", id, other, code)
			}
			s.codeOf[id] = code
		}
	default:
		return bad("course_field", "must be idnumber, shortname or courses, got %q", s.CourseField)
	}

	switch s.Passed {
	case passedCompletion, passedGradePass:
	case passedThreshold:
		t, err := parsePlainDecimal(s.Threshold)
		if err != nil || t.Sign() <= 0 || t.Cmp(big.NewRat(100, 1)) > 0 {
			return bad("threshold", "must be a percentage of the maximum grade above 0 and at most 100, such as 55, got %q", s.Threshold)
		}
		s.threshold = t
	default:
		return bad("passed", "must be completion, gradepass or threshold, got %q", s.Passed)
	}
	if s.Passed != passedThreshold && s.Threshold != "" {
		return bad("threshold", "only applies with passed: threshold")
	}
	switch s.Result {
	case resultNone:
	case resultDecimal:
		m, err := parsePlainDecimal(s.ScaleMax)
		if err != nil || m.Sign() <= 0 {
			return bad("scale_max", "must be a positive number such as 10 or 100, got %q", s.ScaleMax)
		}
		s.scaleMax = m
	case resultText:
		if strings.TrimSpace(s.TextFormat) == "" {
			return bad("text_format", "must not be empty with result: text, e.g. \"{percent}%%\"")
		}
		for _, p := range placeholder.FindAllString(s.TextFormat, -1) {
			if p != "{percent}" && p != "{grade}" && p != "{max}" {
				return bad("text_format", "unknown placeholder %s: use {percent}, {grade} or {max}", p)
			}
		}
	default:
		return bad("result", "must be decimal, text or none, got %q", s.Result)
	}
	if s.Remark != "" {
		tmpl, err := template.New("remark").Option("missingkey=error").Parse(s.Remark)
		if err != nil {
			return bad("remark", "not a valid template: %v", err)
		}
		if err := tmpl.Execute(&bytes.Buffer{}, RemarkData{}); err != nil {
			return bad("remark", "template fails on an example completion: %v (fields: see RemarkData)", err)
		}
		s.remark = tmpl
	}
	if strings.TrimSpace(s.Auth) == "" {
		return bad("auth", "must name Moodle's authentication plugin for created users, such as manual")
	}
	if s.RoleID <= 0 {
		return bad("role_id", "must be a Moodle role id (student is usually 5), got %d", s.RoleID)
	}
	if s.NameSplit != splitDutch && s.NameSplit != splitNone {
		return bad("name_split", "must be dutch or none, got %q", s.NameSplit)
	}
	return nil
}

// parseSince parses a since value: a date (midnight in loc) or an RFC 3339 time.
func parseSince(v string, loc *time.Location) (time.Time, error) {
	v = strings.TrimSpace(v)
	if t, err := time.ParseInLocation(time.DateOnly, v, loc); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("must be a date such as 2025-01-01 or a time such as 2025-01-01T00:00:00+01:00, got %q", v)
}

// parsePlainDecimal parses digits with an optional '.' fraction exactly.
func parsePlainDecimal(v string) (*big.Rat, error) {
	v = strings.TrimSpace(v)
	if !decimalPattern.MatchString(v) {
		return nil, fmt.Errorf("%q is not a number such as 55 or 7.5", v)
	}
	r, ok := new(big.Rat).SetString(v)
	if !ok {
		return nil, fmt.Errorf("%q is not a number", v)
	}
	return r, nil
}

// readSecret reads a secret from the file (relative to baseDir) or the
// environment variable; key names the setting for the error message. The
// secret itself never appears in an error.
func readSecret(file string, node *yaml.Node, baseDir, key, path, env string) (string, error) {
	bad := func(format string, args ...any) error {
		return &config.Error{File: file, Line: keyLine(node, key), Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if env != "" {
		v := strings.TrimSpace(os.Getenv(env))
		if v == "" {
			return "", bad("environment variable %s is not set or empty", env)
		}
		return v, nil
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", bad("cannot read %s: %v", path, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", bad("%s is empty", path)
	}
	return v, nil
}

// keyLine returns the line of the key in a settings mapping, or of the
// mapping itself, or 0 without a node.
func keyLine(node *yaml.Node, key string) int {
	if node == nil {
		return 0
	}
	if node.Kind == yaml.DocumentNode && len(node.Content) > 0 {
		node = node.Content[0]
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value == key {
			return node.Content[i].Line
		}
	}
	return node.Line
}
