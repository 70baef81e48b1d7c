package moodle

import (
	"bytes"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/adapters/moodle/ws"
	"github.com/cvbridge/cvbridge/bridge/source"
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

// Validate checks the settings an LMS file gave, fills the derived fields
// and records every mistake in p by its key (adapters.Settings). Since
// dates without a zone are in the connection's time zone.
func (s *Settings) Validate(c adapters.Connection, p *kit.Problems) {
	loc := c.Location
	if loc == nil {
		loc = time.UTC
	}
	s.validate(p, loc)
}

// Capabilities declares what a Moodle source does: it watches for the
// enrolments it makes, checks its link, changes nothing when polled dry,
// and enrols only with a url and token (the enroller calls the web
// services, in either mode).
func (s *Settings) Capabilities() source.Capabilities {
	return source.Capabilities{Watch: true, Check: true, DryRun: true, Enrol: s.URL != ""}
}

var (
	decimalPattern = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
	placeholder    = regexp.MustCompile(`\{[^{}]*\}`)
)

// validate checks the settings in one place, fills the derived fields and
// records every mistake in p. A check that needs a value an earlier one
// refused (the mode, passed, result) is skipped.
func (s *Settings) validate(p *kit.Problems, loc *time.Location) {
	switch s.Mode {
	case modeDatabase:
		if s.Driver == "mariadb" {
			s.Driver = driverMySQL
		}
		if s.Driver != driverPostgres && s.Driver != driverMySQL {
			p.Addf("driver", "must be postgres or mysql (MariaDB included) in database mode, got %q", s.Driver)
		}
		if (s.DSNFile == "") == (s.DSNEnv == "") {
			p.Addf("dsn_file", "set exactly one of dsn_file and dsn_env: where the read-only database DSN is kept")
		}
		if msg := kit.CheckPrefix(s.Prefix); msg != "" {
			p.Addf("prefix", "%s", msg)
		}
		if s.Lookback < 0 {
			p.Addf("lookback", "must not be negative, got %s", s.Lookback)
		}
		if s.Changes != changesLog && s.Changes != changesWindow {
			p.Addf("changes", "must be log or window, got %q", s.Changes)
		}
	case modeWebService:
		if s.URL == "" {
			p.Addf("url", "required in webservice mode: Moodle's wwwroot, such as https://learn.example.nl")
		}
		if s.Passed == passedGradePass {
			p.Addf("passed", "gradepass needs database mode: Moodle's web services do not return a course's pass mark; use threshold")
		}
	default:
		p.Addf("mode", "must be database or webservice, got %q", s.Mode)
	}
	if s.PageSize < 1 || s.PageSize > 10000 {
		p.Addf("page_size", "must be 1 to 10000, got %d", s.PageSize)
	}
	if s.URL != "" {
		if _, err := ws.New(s.URL, "placeholder", ws.Options{}); err != nil {
			p.Addf("url", "%v", err)
		}
		if (s.TokenFile == "") == (s.TokenEnv == "") {
			p.Addf("token_file", "set exactly one of token_file and token_env: where the web-service token is kept")
		}
	} else if s.TokenFile != "" || s.TokenEnv != "" {
		p.Addf("url", "required with token_file/token_env: Moodle's wwwroot")
	}
	if s.Concurrency < 1 || s.Concurrency > maxConcurrency {
		p.Addf("concurrency", "must be 1 to %d (every call boots Moodle), got %d", maxConcurrency, s.Concurrency)
	}
	if s.TrackCourseUsers && s.Mode != modeWebService {
		p.Addf("track_course_users", "only applies to webservice mode; database mode reads every completion")
	}
	if s.DiscoverEvery < time.Minute {
		p.Addf("discover_every", "must be at least 1m, got %s", s.DiscoverEvery)
	}
	if s.Since != "" {
		if t, err := parseSince(s.Since, loc); err != nil {
			p.Addf("since", "%v", err)
		} else {
			s.since = t
		}
	}
	if s.CheckUsername != "" && s.URL == "" {
		p.Addf("check_username", "only applies with url and a token: it checks what the web services show")
	}

	switch {
	case s.PersonField == fieldIDNumber, s.PersonField == fieldUsername, s.PersonField == fieldEmail:
	case strings.HasPrefix(s.PersonField, profilePrefix) && len(s.PersonField) > len(profilePrefix):
		s.profile = strings.TrimPrefix(s.PersonField, profilePrefix)
	default:
		p.Addf("person_field", "must be idnumber, username, email or profile:<shortname>, got %q", s.PersonField)
	}
	switch s.CourseField {
	case fieldIDNumber, fieldShortname:
		if len(s.Courses) > 0 {
			p.Addf("courses", "needs course_field: courses (course_field is %s)", s.CourseField)
		}
	case fieldCourses:
		if len(s.Courses) == 0 {
			p.Addf("courses", "course_field courses needs a table of Elearningcode: Moodle course id")
		}
		s.codeOf = map[int64]string{}
		for code, id := range s.Courses {
			switch other, dup := s.codeOf[id]; {
			case strings.TrimSpace(code) == "" || len(code) > 50:
				p.Addf("courses", "Elearningcode %q must be 1 to 50 characters", code)
			case id <= 0:
				p.Addf("courses", "course id for %q must be a positive Moodle course id, got %d", code, id)
			case dup:
				p.Addf("courses", "course id %d is mapped twice (%q and %q)", id, other, code)
			default:
				s.codeOf[id] = code
			}
		}
	default:
		p.Addf("course_field", "must be idnumber, shortname or courses, got %q", s.CourseField)
	}

	switch s.Passed {
	case passedCompletion, passedGradePass:
		if s.Threshold != "" {
			p.Addf("threshold", "only applies with passed: threshold")
		}
	case passedThreshold:
		t, err := parsePlainDecimal(s.Threshold)
		if err != nil || t.Sign() <= 0 || t.Cmp(big.NewRat(100, 1)) > 0 {
			p.Addf("threshold", "must be a percentage of the maximum grade above 0 and at most 100, such as 55, got %q", s.Threshold)
		} else {
			s.threshold = t
		}
	default:
		p.Addf("passed", "must be completion, gradepass or threshold, got %q", s.Passed)
	}
	switch s.Result {
	case resultNone:
	case resultDecimal:
		m, err := parsePlainDecimal(s.ScaleMax)
		if err != nil || m.Sign() <= 0 {
			p.Addf("scale_max", "must be a positive number such as 10 or 100, got %q", s.ScaleMax)
		} else {
			s.scaleMax = m
		}
	case resultText:
		if strings.TrimSpace(s.TextFormat) == "" {
			p.Addf("text_format", "must not be empty with result: text, e.g. \"{percent}%%\"")
		}
		for _, ph := range placeholder.FindAllString(s.TextFormat, -1) {
			if ph != "{percent}" && ph != "{grade}" && ph != "{max}" {
				p.Addf("text_format", "unknown placeholder %s: use {percent}, {grade} or {max}", ph)
			}
		}
	default:
		p.Addf("result", "must be decimal, text or none, got %q", s.Result)
	}
	if s.Remark != "" {
		if tmpl, err := template.New("remark").Option("missingkey=error").Parse(s.Remark); err != nil {
			p.Addf("remark", "not a valid template: %v", err)
		} else if err := tmpl.Execute(&bytes.Buffer{}, RemarkData{}); err != nil {
			p.Addf("remark", "template fails on an example completion: %v (fields: see RemarkData)", err)
		} else {
			s.remark = tmpl
		}
	}
	if strings.TrimSpace(s.Auth) == "" {
		p.Addf("auth", "must name Moodle's authentication plugin for created users, such as manual")
	}
	if s.RoleID <= 0 {
		p.Addf("role_id", "must be a Moodle role id (student is usually 5), got %d", s.RoleID)
	}
	if s.NameSplit != splitDutch && s.NameSplit != splitNone {
		p.Addf("name_split", "must be dutch or none, got %q", s.NameSplit)
	}
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
