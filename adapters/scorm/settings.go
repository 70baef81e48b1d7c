package scorm

import (
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/cvbridge/cvbridge/adapters/scorm/cmi"
	"github.com/cvbridge/cvbridge/bridge/config"
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
	prefixRE  = regexp.MustCompile(`^[A-Za-z0-9_]*$`)
	codeKeyRE = regexp.MustCompile(`^(scorm|course):([0-9]+)$`)
)

// compiled is what validation derives from the settings.
type compiled struct {
	Settings
	dsn       string
	rules     cmi.Rules
	scaleMax  *big.Rat
	scormCode map[int64]string
	courseCod map[int64]string
	query     *namedSQL // custom preset
	enrol     *namedSQL
	unenrol   *namedSQL
}

// decodeSettings applies the node over the defaults, validates, and reads
// the DSN. Errors are *config.Error naming file, line and key.
func decodeSettings(file, baseDir string, node *yaml.Node) (*compiled, error) {
	s := DefaultSettings()
	if err := config.DecodeStrict(file, node, &s); err != nil {
		return nil, err
	}
	return s.validate(file, baseDir, node)
}

// validate checks the settings in one place and compiles them.
func (s Settings) validate(file, baseDir string, node *yaml.Node) (*compiled, error) {
	bad := func(key, format string, args ...any) error {
		return &config.Error{File: file, Line: keyLine(node, key), Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	c := &compiled{Settings: s}
	if s.Driver != "postgres" && s.Driver != "mysql" {
		return nil, bad("driver", "must be postgres or mysql (also for MariaDB), got %q", s.Driver)
	}
	switch {
	case (s.DSNFile == "") == (s.DSNEnv == ""):
		return nil, bad("dsn_file", "set exactly one of dsn_file and dsn_env: the DSN holds a password and is never written in the LMS file")
	case s.DSNFile != "":
		p := s.DSNFile
		if !filepath.IsAbs(p) {
			p = filepath.Join(baseDir, p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, bad("dsn_file", "cannot read the DSN: %v", err)
		}
		c.dsn = strings.TrimSpace(string(b))
	default:
		c.dsn = strings.TrimSpace(os.Getenv(s.DSNEnv))
		if c.dsn == "" {
			return nil, bad("dsn_env", "environment variable %s is empty or not set", s.DSNEnv)
		}
	}
	if c.dsn == "" {
		return nil, bad("dsn_file", "the file %s is empty", s.DSNFile)
	}
	switch s.Preset {
	case presetMoodle:
		if !prefixRE.MatchString(s.Prefix) || s.Prefix == "" {
			return nil, bad("prefix", "must be letters, digits and underscores such as mdl_, got %q", s.Prefix)
		}
		if s.Query != "" {
			return nil, bad("query", "only for preset custom")
		}
		switch s.PersonField {
		case "idnumber", "username", "email", "id":
		default:
			return nil, bad("person_field", "must be idnumber, username, email or id, got %q", s.PersonField)
		}
		switch s.CourseField {
		case "idnumber", "shortname", "codes":
		default:
			return nil, bad("course_field", "must be idnumber, shortname or codes, got %q", s.CourseField)
		}
		if s.CourseField == "codes" && len(s.Codes) == 0 {
			return nil, bad("codes", "course_field codes needs a codes map such as {\"scorm:12\": E-1234}")
		}
		c.scormCode, c.courseCod = map[int64]string{}, map[int64]string{}
		for k, v := range s.Codes {
			m := codeKeyRE.FindStringSubmatch(k)
			if m == nil {
				return nil, bad("codes", "key %q must be scorm:<id> or course:<id>", k)
			}
			if strings.TrimSpace(v) == "" {
				return nil, bad("codes", "key %q has an empty code", k)
			}
			id, _ := strconv.ParseInt(m[2], 10, 64)
			if m[1] == "scorm" {
				c.scormCode[id] = strings.TrimSpace(v)
			} else {
				c.courseCod[id] = strings.TrimSpace(v)
			}
		}
	case presetCustom:
		if strings.TrimSpace(s.Query) == "" {
			return nil, bad("query", "required for preset custom: a SELECT returning the documented columns")
		}
		q, err := compileNamed(s.Query, []string{paramCursorTime})
		if err != nil {
			return nil, bad("query", "%v", err)
		}
		if !q.uses(paramCursorTime) {
			return nil, bad("query", "must use :cursor_time (Unix seconds) to read only rows modified at or after it")
		}
		c.query = q
		if len(s.Codes) > 0 {
			return nil, bad("codes", "only for preset moodle: the custom query returns elearning_code")
		}
	default:
		return nil, bad("preset", "must be moodle or custom, got %q", s.Preset)
	}
	if s.Lookback < minLookback {
		return nil, bad("lookback", "must be at least %s (rows arrive late and polls take time), got %s", minLookback, s.Lookback)
	}
	if s.PageSize < 1 || s.PageSize > 10000 {
		return nil, bad("page_size", "must be 1…10000, got %d", s.PageSize)
	}
	switch s.SCORule {
	case "all":
		c.rules.SCOs = cmi.AllSCOs
		if s.SCOIdentifier != "" {
			return nil, bad("sco_identifier", "only with sco_rule named")
		}
	case "named":
		c.rules.SCOs = cmi.NamedSCO
		if strings.TrimSpace(s.SCOIdentifier) == "" {
			return nil, bad("sco_identifier", "required with sco_rule named: the SCO's identifier in the package manifest")
		}
		c.rules.SCOIdentifier = strings.TrimSpace(s.SCOIdentifier)
	default:
		return nil, bad("sco_rule", "must be all or named, got %q", s.SCORule)
	}
	switch s.Attempt {
	case "first_passing":
		c.rules.Attempt = cmi.FirstPassing
	case "best":
		c.rules.Attempt = cmi.Best
	case "last":
		c.rules.Attempt = cmi.Last
	default:
		return nil, bad("attempt", "must be first_passing, best or last, got %q", s.Attempt)
	}
	scaleMax, err := cmi.ParseDecimal(s.ScaleMax)
	if err != nil || scaleMax == nil || scaleMax.Sign() <= 0 {
		return nil, bad("scale_max", "must be a positive number such as 100 or 10, got %q", s.ScaleMax)
	}
	c.scaleMax = scaleMax
	switch s.Passed {
	case "status":
		c.rules.Pass = cmi.ByStatus
		if s.Threshold != "" {
			return nil, bad("threshold", "only with passed: threshold")
		}
	case "threshold":
		c.rules.Pass = cmi.ByThreshold
		th, err := cmi.ParseDecimal(s.Threshold)
		if err != nil || th == nil || th.Sign() < 0 || th.Cmp(scaleMax) > 0 {
			return nil, bad("threshold", "must be a number from 0 to scale_max %s, got %q", s.ScaleMax, s.Threshold)
		}
		c.rules.Threshold = new(big.Rat).Quo(th, scaleMax)
	default:
		return nil, bad("passed", "must be status or threshold, got %q", s.Passed)
	}
	switch s.Result {
	case "decimal", "none":
	case "text":
		if !strings.Contains(s.TextFormat, "{score}") {
			return nil, bad("text_format", "must contain {score}, got %q", s.TextFormat)
		}
	default:
		return nil, bad("result", "must be decimal, text or none, got %q", s.Result)
	}
	if s.EnrolSQL == "" && s.UnenrolSQL != "" {
		return nil, bad("unenrol_sql", "needs enrol_sql: a connection that cannot enrol has nothing to unenrol")
	}
	if s.EnrolSQL != "" {
		if c.enrol, err = compileNamed(s.EnrolSQL, enrolParams); err != nil {
			return nil, bad("enrol_sql", "%v", err)
		}
		if !c.enrol.uses(paramPersonID) || !c.enrol.uses(paramCode) {
			return nil, bad("enrol_sql", "must use :person_id and :elearning_code")
		}
		if s.UnenrolSQL == "" {
			return nil, bad("unenrol_sql", "required with enrol_sql: Coachview also unenrols")
		}
		if c.unenrol, err = compileNamed(s.UnenrolSQL, enrolParams); err != nil {
			return nil, bad("unenrol_sql", "%v", err)
		}
		if !c.unenrol.uses(paramPersonID) || !c.unenrol.uses(paramCode) {
			return nil, bad("unenrol_sql", "must use :person_id and :elearning_code")
		}
	}
	return c, nil
}

// keyLine returns the line of a top-level key in the settings mapping, or
// of the mapping itself, or 0 without a node.
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
