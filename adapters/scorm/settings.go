package scorm

import (
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/adapters/scorm/cmi"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// Settings is the scorm section of an LMS file.
type Settings struct {
	// Driver is the database: postgres or mysql (MySQL and MariaDB).
	Driver string `yaml:"driver"`
	// DSNFile is a file holding the DSN (relative to cvbridge.yaml's directory), read at
	// start; DSNEnv names an environment variable holding it. Exactly one.
	DSNFile string `yaml:"dsn_file"`
	DSNEnv  string `yaml:"dsn_env"`
	// Preset is moodle (Moodle's SCORM tables, both schemas, detected) or
	// custom (Query). Default moodle.
	Preset string `yaml:"preset"`
	// Prefix is Moodle's table prefix (default mdl_).
	Prefix string `yaml:"prefix"`
	// Query is the custom preset's SELECT (see the package documentation).
	Query string `yaml:"query"`
	// Lookback is how far before the cursor each poll reads again, for rows
	// written late with an earlier time (default 24h, at least 1m).
	Lookback time.Duration `yaml:"lookback"`
	// PageSize is how many (person, package) pairs a page reads (default 500).
	PageSize int `yaml:"page_size"`
	// SCORule is all (every SCO of the package done) or named (the SCO
	// SCOIdentifier done). Default all.
	SCORule       string `yaml:"sco_rule"`
	SCOIdentifier string `yaml:"sco_identifier"`
	// Attempt is first_passing, best or last (default first_passing).
	Attempt string `yaml:"attempt"`
	// PersonField is the Moodle user field holding Coachview's
	// PersoonExterneId: idnumber, username, email or id (default idnumber).
	PersonField string `yaml:"person_field"`
	// CourseField is where the Elearningcode comes from in Moodle:
	// idnumber or shortname of the course, or codes (only the Codes map).
	// Default idnumber.
	CourseField string `yaml:"course_field"`
	// Codes maps "scorm:<id>" or "course:<id>" to an Elearningcode; it wins
	// over CourseField (scorm before course).
	Codes map[string]string `yaml:"codes"`
	// Passed is status (SCORM statuses) or threshold (score at or above
	// Threshold). Default status.
	Passed string `yaml:"passed"`
	// Threshold is the pass mark on the 0…ScaleMax scale.
	Threshold string `yaml:"threshold"`
	// Result is decimal (ResultaatDecimaal), text (Resultaat via
	// TextFormat) or none. Default decimal.
	Result string `yaml:"result"`
	// ScaleMax is what a full score is worth in the result (default 100).
	ScaleMax string `yaml:"scale_max"`
	// TextFormat renders the text result; {score} is the score on the
	// ScaleMax scale rounded to two decimals (default "{score}%").
	TextFormat string `yaml:"text_format"`
	// SendFailed sends a failed result (default true). Coachview keeps the
	// first result per person and part, so false holds failures back while
	// learners may still retake.
	SendFailed bool `yaml:"send_failed"`
	// EnrolSQL and UnenrolSQL are statements run to enrol and unenrol, with
	// :person_id, :elearning_code, :first_name, :infix, :last_name, :email.
	// Without EnrolSQL the connection cannot enrol.
	EnrolSQL   string `yaml:"enrol_sql"`
	UnenrolSQL string `yaml:"unenrol_sql"`

	// Derived by validate.
	rules      cmi.Rules
	scaleMax   *big.Rat
	scormCode  map[int64]string
	courseCode map[int64]string
	query      *namedSQL // custom preset
	enrol      *namedSQL
	unenrol    *namedSQL
}

// DefaultSettings returns the settings a connection starts from.
func DefaultSettings() Settings {
	return Settings{
		Preset: presetMoodle, Prefix: "mdl_", Lookback: 24 * time.Hour, PageSize: 500,
		SCORule: "all", Attempt: "first_passing", PersonField: "idnumber", CourseField: "idnumber",
		Passed: "status", Result: "decimal", ScaleMax: "100", TextFormat: "{score}%", SendFailed: true,
	}
}

const (
	presetMoodle = "moodle"
	presetCustom = "custom"
)

// minLookback keeps a poll from missing rows written, with earlier times,
// to pairs an earlier page of the same poll already read.
const minLookback = time.Minute

var (
	codeKeyRE = regexp.MustCompile(`^(scorm|course):([0-9]+)$`)
)

// Validate checks the settings an LMS file gave, fills the derived fields
// and records every mistake in p by its key (adapters.Settings).
func (s *Settings) Validate(_ adapters.Connection, p *kit.Problems) {
	s.validate(p)
}

// Capabilities declares what a SCORM source does: it checks its link,
// never writes when polled (dry or not), and enrols only with enrol_sql.
// It does not watch: the schedule polls it.
func (s *Settings) Capabilities() source.Capabilities {
	return source.Capabilities{Check: true, DryRun: true, Enrol: s.EnrolSQL != ""}
}

// validate checks the settings in one place, fills the derived fields and
// records every mistake in p; the DSN is read when the source is built. A
// check that needs a value an earlier one refused (scale_max for a
// threshold) is skipped.
func (s *Settings) validate(p *kit.Problems) {
	if s.Driver != "postgres" && s.Driver != "mysql" {
		p.Addf("driver", "must be postgres or mysql (also for MariaDB), got %q", s.Driver)
	}
	if (s.DSNFile == "") == (s.DSNEnv == "") {
		p.Addf("dsn_file", "set exactly one of dsn_file and dsn_env: the DSN holds a password and is never written in the LMS file")
	}
	switch s.Preset {
	case presetMoodle:
		if msg := kit.CheckPrefix(s.Prefix); msg != "" {
			p.Addf("prefix", "%s", msg)
		}
		if s.Query != "" {
			p.Addf("query", "only for preset custom")
		}
		switch s.PersonField {
		case "idnumber", "username", "email", "id":
		default:
			p.Addf("person_field", "must be idnumber, username, email or id, got %q", s.PersonField)
		}
		switch s.CourseField {
		case "idnumber", "shortname", "codes":
		default:
			p.Addf("course_field", "must be idnumber, shortname or codes, got %q", s.CourseField)
		}
		if s.CourseField == "codes" && len(s.Codes) == 0 {
			p.Addf("codes", "course_field codes needs a codes map such as {\"scorm:12\": E-1234}")
		}
		s.scormCode, s.courseCode = map[int64]string{}, map[int64]string{}
		for k, v := range s.Codes {
			m := codeKeyRE.FindStringSubmatch(k)
			if m == nil {
				p.Addf("codes", "key %q must be scorm:<id> or course:<id>", k)
				continue
			}
			if strings.TrimSpace(v) == "" {
				p.Addf("codes", "key %q has an empty code", k)
				continue
			}
			id, _ := strconv.ParseInt(m[2], 10, 64)
			if m[1] == "scorm" {
				s.scormCode[id] = strings.TrimSpace(v)
			} else {
				s.courseCode[id] = strings.TrimSpace(v)
			}
		}
	case presetCustom:
		if strings.TrimSpace(s.Query) == "" {
			p.Addf("query", "required for preset custom: a SELECT returning the documented columns")
		}
		q, err := compileNamed(s.Query, []string{paramCursorTime})
		switch {
		case err != nil:
			p.Addf("query", "%v", err)
		case !q.uses(paramCursorTime):
			p.Addf("query", "must use :cursor_time (Unix seconds) to read only rows modified at or after it")
		default:
			s.query = q
		}
		if len(s.Codes) > 0 {
			p.Addf("codes", "only for preset moodle: the custom query returns elearning_code")
		}
	default:
		p.Addf("preset", "must be moodle or custom, got %q", s.Preset)
	}
	if s.Lookback < minLookback {
		p.Addf("lookback", "must be at least %s (rows arrive late and polls take time), got %s", minLookback, s.Lookback)
	}
	if s.PageSize < 1 || s.PageSize > 10000 {
		p.Addf("page_size", "must be 1…10000, got %d", s.PageSize)
	}
	switch s.SCORule {
	case "all":
		s.rules.SCOs = cmi.AllSCOs
		if s.SCOIdentifier != "" {
			p.Addf("sco_identifier", "only with sco_rule named")
		}
	case "named":
		s.rules.SCOs = cmi.NamedSCO
		if strings.TrimSpace(s.SCOIdentifier) == "" {
			p.Addf("sco_identifier", "required with sco_rule named: the SCO's identifier in the package manifest")
		}
		s.rules.SCOIdentifier = strings.TrimSpace(s.SCOIdentifier)
	default:
		p.Addf("sco_rule", "must be all or named, got %q", s.SCORule)
	}
	switch s.Attempt {
	case "first_passing":
		s.rules.Attempt = cmi.FirstPassing
	case "best":
		s.rules.Attempt = cmi.Best
	case "last":
		s.rules.Attempt = cmi.Last
	default:
		p.Addf("attempt", "must be first_passing, best or last, got %q", s.Attempt)
	}
	scaleMax, err := cmi.ParseDecimal(s.ScaleMax)
	if err != nil || scaleMax == nil || scaleMax.Sign() <= 0 {
		p.Addf("scale_max", "must be a positive number such as 100 or 10, got %q", s.ScaleMax)
		scaleMax = nil
	}
	s.scaleMax = scaleMax
	switch s.Passed {
	case "status":
		s.rules.Pass = cmi.ByStatus
		if s.Threshold != "" {
			p.Addf("threshold", "only with passed: threshold")
		}
	case "threshold":
		s.rules.Pass = cmi.ByThreshold
		if scaleMax == nil {
			break // the threshold is on the scale_max scale, which was refused
		}
		th, err := cmi.ParseDecimal(s.Threshold)
		if err != nil || th == nil || th.Sign() < 0 || th.Cmp(scaleMax) > 0 {
			p.Addf("threshold", "must be a number from 0 to scale_max %s, got %q", s.ScaleMax, s.Threshold)
			break
		}
		s.rules.Threshold = new(big.Rat).Quo(th, scaleMax)
	default:
		p.Addf("passed", "must be status or threshold, got %q", s.Passed)
	}
	switch s.Result {
	case "decimal", "none":
	case "text":
		if !strings.Contains(s.TextFormat, "{score}") {
			p.Addf("text_format", "must contain {score}, got %q", s.TextFormat)
		}
	default:
		p.Addf("result", "must be decimal, text or none, got %q", s.Result)
	}
	if s.EnrolSQL == "" && s.UnenrolSQL != "" {
		p.Addf("unenrol_sql", "needs enrol_sql: a connection that cannot enrol has nothing to unenrol")
	}
	if s.EnrolSQL != "" {
		if s.enrol, err = compileNamed(s.EnrolSQL, enrolParams); err != nil {
			p.Addf("enrol_sql", "%v", err)
		} else if !s.enrol.uses(paramPersonID) || !s.enrol.uses(paramCode) {
			p.Addf("enrol_sql", "must use :person_id and :elearning_code")
		}
		if s.UnenrolSQL == "" {
			p.Addf("unenrol_sql", "required with enrol_sql: Coachview also unenrols")
		} else if s.unenrol, err = compileNamed(s.UnenrolSQL, enrolParams); err != nil {
			p.Addf("unenrol_sql", "%v", err)
		} else if !s.unenrol.uses(paramPersonID) || !s.unenrol.uses(paramCode) {
			p.Addf("unenrol_sql", "must use :person_id and :elearning_code")
		}
	}
}
