package csvdrop

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/cvbridge/cvbridge/bridge/result"
)

// field is one completion field a CSV column can fill.
type field int

const (
	fPerson field = iota
	fCode
	fCompletedAt
	fPassed
	fResult
	fResultDecimal
	fRemark
	fResultDate
	fResultRemark
	fAttendance
	fAttendanceDate
	fAttendanceRemark
	numFields
)

// columnKeys are the settings keys of the fields, for messages.
var columnKeys = [numFields]string{
	"person", "elearningcode", "completed_at", "passed", "result", "result_decimal",
	"remark", "result_date", "result_remark", "attendance", "attendance_date", "attendance_remark",
}

// headers returns the configured header name per field ("" = not configured).
func (c Columns) headers() [numFields]string {
	return [numFields]string{
		c.Person, c.ElearningCode, c.CompletedAt, c.Passed, c.Result, c.ResultDecimal,
		c.Remark, c.ResultDate, c.ResultRemark, c.Attendance, c.AttendanceDate, c.AttendanceRemark,
	}
}

// Parser turns the records of one CSV file into completions. It is built from
// the file's header and holds no other state, so it is safe for concurrent use.
type Parser struct {
	idx         [numFields]int // record index per field, -1 = not configured
	names       [numFields]string
	width       int
	defaultCode string
	layouts     []string
	passed      map[string]bool
	failed      map[string]bool
	loc         *time.Location
	thousands   byte
	latest      time.Time // dates after it are implausible
	earliest    time.Time // dates before it are implausible
	gradeMin    *big.Rat  // nil: no bound
	gradeMax    *big.Rat
	gradeRange  [2]string // the bounds as configured, for messages
	absent      []string  // "key (header)" of optional columns the header lacks
}

// HeaderError says why a header cannot be used: configured columns it lacks
// or has more than once. It lists the headers found, so an operator can see
// whether the export or the settings are wrong.
type HeaderError struct {
	Missing    []string // "key (header)" of configured columns not in the header
	Duplicated []string // header names of configured columns found more than once
	Found      []string // the header names as read, cleaned
}

func (e *HeaderError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, "missing columns "+strings.Join(e.Missing, ", "))
	}
	if len(e.Duplicated) > 0 {
		parts = append(parts, "ambiguous columns appear more than once: "+strings.Join(e.Duplicated, ", "))
	}
	return fmt.Sprintf("header unusable: %s; headers found: %s", strings.Join(parts, "; "), quoteAll(e.Found))
}

// NewParser matches the settings' columns against a header record. It returns
// a *HeaderError when a configured column is missing (and not one of
// optional_columns) or ambiguous. loc is the time zone of dates without one;
// now is the time the file is read, which the plausibility checks of dates
// measure from.
func NewParser(s Settings, loc *time.Location, header []string, now time.Time) (*Parser, error) {
	p := &Parser{
		width:       len(header),
		defaultCode: strings.TrimSpace(s.ElearningCodeDefault),
		layouts:     s.DateFormats,
		passed:      valueSet(s.PassedValues),
		failed:      valueSet(s.FailedValues),
		loc:         loc,
		thousands:   s.thousandsByte(),
	}
	if err := p.setPlausible(s.Plausible, now); err != nil {
		return nil, err
	}
	optional := map[string]bool{}
	for _, k := range s.OptionalColumns {
		optional[k] = true
	}
	found := make([]string, len(header))
	for i, h := range header {
		found[i] = cleanHeader(h)
	}
	herr := &HeaderError{Found: found}
	for f, name := range s.Columns.headers() {
		p.idx[f] = -1
		name = cleanHeader(name)
		if name == "" {
			continue
		}
		p.names[f] = name
		for i, h := range found {
			if !strings.EqualFold(h, name) {
				continue
			}
			if p.idx[f] >= 0 {
				herr.Duplicated = append(herr.Duplicated, fmt.Sprintf("%q", name))
				break
			}
			p.idx[f] = i
		}
		if p.idx[f] < 0 {
			if optional[columnKeys[f]] {
				p.absent = append(p.absent, fmt.Sprintf("%s (%q)", columnKeys[f], name))
				continue
			}
			herr.Missing = append(herr.Missing, fmt.Sprintf("%s (%q)", columnKeys[f], name))
		}
	}
	if len(herr.Missing) > 0 || len(herr.Duplicated) > 0 {
		return nil, herr
	}
	return p, nil
}

// Parse turns one data record into a completion, or says in the error what
// is wrong with it (naming the column, never the person). It does not set
// SourceRef.
func (p *Parser) Parse(rec []string) (result.Completion, error) {
	if len(rec) == p.width+1 && strings.TrimSpace(rec[p.width]) == "" {
		rec = rec[:p.width] // a trailing delimiter, as some exports write on data rows only
	}
	if len(rec) != p.width {
		return result.Completion{}, fmt.Errorf("row has %d fields, the header has %d", len(rec), p.width)
	}
	var c result.Completion
	var err error
	if c.PersonID = p.text(rec, fPerson); c.PersonID == "" {
		return result.Completion{}, fmt.Errorf("column %q (person) is empty", p.names[fPerson])
	}
	if c.ElearningCode = p.text(rec, fCode); c.ElearningCode == "" {
		if c.ElearningCode = p.defaultCode; c.ElearningCode == "" {
			return result.Completion{}, fmt.Errorf("column %q (elearningcode) is empty", p.names[fCode])
		}
	}
	if c.Passed, err = p.boolean(rec, fPassed); err != nil {
		return result.Completion{}, err
	}
	if c.CompletedAt, err = p.date(rec, fCompletedAt); err != nil {
		return result.Completion{}, err
	}
	if c.ResultDate, err = p.date(rec, fResultDate); err != nil {
		return result.Completion{}, err
	}
	if c.ResultDecimal, err = p.decimal(rec, fResultDecimal); err != nil {
		return result.Completion{}, err
	}
	c.ResultText = p.text(rec, fResult)
	c.Remark = p.text(rec, fRemark)
	c.ResultRemark = p.text(rec, fResultRemark)
	if c.Attendance, err = p.attendance(rec); err != nil {
		return result.Completion{}, err
	}
	return c, nil
}

// attendance reads the attendance columns; an empty attendance cell means no
// registration, which is wrong when its date or remark is filled.
func (p *Parser) attendance(rec []string) (*result.Attendance, error) {
	if p.idx[fAttendance] < 0 {
		return nil, nil
	}
	date, err := p.date(rec, fAttendanceDate)
	if err != nil {
		return nil, err
	}
	remark := p.text(rec, fAttendanceRemark)
	if p.text(rec, fAttendance) == "" {
		if !date.IsZero() || remark != "" {
			return nil, fmt.Errorf("column %q (attendance) is empty but its date or remark is filled", p.names[fAttendance])
		}
		return nil, nil
	}
	present, err := p.boolean(rec, fAttendance)
	if err != nil {
		return nil, err
	}
	return &result.Attendance{Present: present, Date: date, Remark: remark}, nil
}

// Absent lists the optional columns the header lacks, as "key (header)":
// their fields stay empty in every row of the file.
func (p *Parser) Absent() []string { return p.absent }

// text returns the trimmed cell of f, or "" when f is not configured.
func (p *Parser) text(rec []string, f field) string {
	if p.idx[f] < 0 {
		return ""
	}
	return strings.TrimSpace(rec[p.idx[f]])
}

// boolean reads a required yes/no cell.
func (p *Parser) boolean(rec []string, f field) (bool, error) {
	v := p.text(rec, f)
	if v == "" {
		return false, fmt.Errorf("column %q (%s) is empty", p.names[f], columnKeys[f])
	}
	n := normValue(v)
	switch {
	case p.passed[n]:
		return true, nil
	case p.failed[n]:
		return false, nil
	}
	return false, fmt.Errorf("column %q (%s): %q is neither one of passed_values nor of failed_values", p.names[f], columnKeys[f], v)
}

// date reads an optional date cell.
func (p *Parser) date(rec []string, f field) (time.Time, error) {
	v := p.text(rec, f)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := ParseDate(v, p.layouts, p.loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("column %q (%s): %w", p.names[f], columnKeys[f], err)
	}
	if err := p.plausibleDate(t); err != nil {
		return time.Time{}, fmt.Errorf("column %q (%s): %q %w", p.names[f], columnKeys[f], v, err)
	}
	return t, nil
}

// decimal reads an optional number cell.
func (p *Parser) decimal(rec []string, f field) (string, error) {
	d, err := ParseDecimal(p.text(rec, f), p.thousands)
	if err == nil {
		err = p.plausibleGrade(d)
	}
	if err != nil {
		return "", fmt.Errorf("column %q (%s): %w", p.names[f], columnKeys[f], err)
	}
	return d, nil
}

// ParseDate parses s with the first of layouts that fits. Values without a
// zone are read in loc; the result is expressed in loc, so its calendar date
// is the provider's.
func ParseDate(s string, layouts []string, loc *time.Location) (time.Time, error) {
	for _, layout := range layouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t.In(loc), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date in any of date_formats (%s)", s, strings.Join(layouts, ", "))
}

// ErrDecimal is wrapped by the errors of ParseDecimal.
var ErrDecimal = errors.New("not a decimal number")

// ParseDecimal normalises a number as exports write it to xs:decimal form
// with a '.' separator. thousands is the separator the connection declared
// for thousands ('.' or ','), or 0 for none.
//
// Without a declared thousands separator, a lone '.' or ',' is the decimal
// separator ("7,5" and "7.5" become "7.5"); one separator repeated can only
// group thousands ("1.234.567" becomes "1234567"); a number with both is
// ambiguous ("1.234,5" is 1234.5 in the Netherlands and a typing error in a
// grade column) and refused. With a declared separator, that one groups
// thousands and the other is the decimal separator: "1.234,5" becomes
// "1234.5" with '.'. Groups must be of three digits. Spaces (also
// non-breaking) between digits are dropped. The empty string means no value
// and yields "".
func ParseDecimal(s string, thousands byte) (string, error) {
	orig := s
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\u00a0', '\u202f', '\'':
			return -1
		}
		return r
	}, s)
	if s == "" {
		return "", nil
	}
	fail := func(why string) (string, error) {
		return "", fmt.Errorf("%q: %w: %s", orig, ErrDecimal, why)
	}
	sign := ""
	switch s[0] {
	case '-':
		sign, s = "-", s[1:]
	case '+':
		s = s[1:]
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && c != '.' && c != ',' {
			return fail("only digits, one sign and the separators , and . are allowed")
		}
	}
	commas, dots := strings.Count(s, ","), strings.Count(s, ".")
	switch {
	case thousands == 0 && commas > 0 && dots > 0:
		return fail("both . and , appear, so which one separates thousands is ambiguous; set thousands_separator if the export writes them")
	case thousands == 0 && commas > 1:
		thousands = ','
	case thousands == 0 && dots > 1:
		thousands = '.'
	}
	decimal := byte(',')
	if thousands == ',' {
		decimal = '.'
	}
	intPart, frac := s, ""
	if thousands == 0 {
		decimal = ','
		if dots == 1 {
			decimal = '.'
		}
	}
	if i := strings.IndexByte(s, decimal); i >= 0 {
		intPart, frac = s[:i], s[i+1:]
		if strings.IndexByte(frac, '.') >= 0 || strings.IndexByte(frac, ',') >= 0 {
			return fail("the decimal separator must come once, after the thousands separators")
		}
	}
	if thousands != 0 && strings.IndexByte(intPart, thousands) >= 0 {
		groups := strings.Split(intPart, string(thousands))
		if len(groups[0]) < 1 || len(groups[0]) > 3 {
			return fail("thousands separators must group digits by three")
		}
		for _, g := range groups[1:] {
			if len(g) != 3 {
				return fail("thousands separators must group digits by three")
			}
		}
		intPart = strings.Join(groups, "")
	}
	if intPart == "" && frac == "" {
		return fail("no digits")
	}
	intPart = strings.TrimLeft(intPart, "0")
	if intPart == "" {
		intPart = "0"
	}
	if frac != "" {
		return sign + intPart + "." + frac, nil
	}
	return sign + intPart, nil
}

// normValue is the form passed and failed values are compared in.
func normValue(v string) string {
	return strings.ToLower(strings.Join(strings.Fields(v), " "))
}

func valueSet(values []string) map[string]bool {
	set := make(map[string]bool, len(values))
	for _, v := range values {
		set[normValue(v)] = true
	}
	return set
}

// cleanHeader trims spaces and byte-order marks from a header name.
func cleanHeader(h string) string {
	return strings.TrimSpace(strings.ReplaceAll(h, "\ufeff", ""))
}

// blank reports whether every field of rec is empty or spaces: the trailing
// ";;;;" lines spreadsheets write, which carry no result.
func blank(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
