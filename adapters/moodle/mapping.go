package moodle

import (
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"

	"github.com/cvbridge/cvbridge/bridge/result"
)

// facts is what either mode learned about one completed course of one
// user, before the connection's result mapping is applied.
type facts struct {
	UserID, CourseID      int64
	PersonID, Code        string // "" when the user or course has no usable one
	CourseName, ShortName string
	CompletedAt           time.Time // zero when Moodle gives no time
	// Grade, GradeMax and PassMark are decimal texts as Moodle gives them;
	// "" means ungraded, no grade item, or no pass mark.
	Grade, GradeMax, PassMark string
	SourceRef                 string
}

// problem is why a completion cannot be sent yet; the operator fixes it in
// Moodle or in the settings. Subject says whether a user or a course is at fault.
type problem struct {
	Subject string // "user" or "course"
	ID      int64
	Reason  string
}

func (p problem) Error() string { return fmt.Sprintf("moodle %s %d: %s", p.Subject, p.ID, p.Reason) }

// grade is a course total with its maximum, exactly.
type grade struct {
	value, max *big.Rat
}

// ratio returns value/max, or nil when there is no usable maximum.
func (g grade) ratio() *big.Rat {
	if g.max == nil || g.max.Sign() <= 0 {
		return nil
	}
	return new(big.Rat).Quo(g.value, g.max)
}

var numberPattern = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

// parseNumber parses a Moodle number (NUMERIC text from the database or a
// JSON number from the web services) exactly, never through a float.
func parseNumber(v string) (*big.Rat, error) {
	v = strings.TrimSpace(v)
	if !numberPattern.MatchString(v) {
		return nil, fmt.Errorf("%q is not a number", v)
	}
	r, ok := new(big.Rat).SetString(v)
	if !ok {
		return nil, fmt.Errorf("%q is not a number", v)
	}
	return r, nil
}

// complete applies the result mapping to f. A problem says why f cannot be
// sent yet.
func (s *Settings) complete(f facts, loc *time.Location) (result.Completion, *problem) {
	if strings.TrimSpace(f.PersonID) == "" {
		return result.Completion{}, &problem{"user", f.UserID, fmt.Sprintf("has no %s to use as PersoonExterneId", s.PersonField)}
	}
	if strings.TrimSpace(f.Code) == "" {
		return result.Completion{}, &problem{"course", f.CourseID, fmt.Sprintf("has no %s to use as Elearningcode", s.CourseField)}
	}
	var g *grade
	if f.Grade != "" && f.GradeMax != "" {
		v, err := parseNumber(f.Grade)
		if err != nil {
			return result.Completion{}, &problem{"course", f.CourseID, "course total grade " + err.Error()}
		}
		m, err := parseNumber(f.GradeMax)
		if err != nil {
			return result.Completion{}, &problem{"course", f.CourseID, "maximum grade " + err.Error()}
		}
		g = &grade{value: v, max: m}
	}
	c := result.Completion{
		PersonID:      f.PersonID,
		ElearningCode: f.Code,
		CompletedAt:   f.CompletedAt,
		SourceRef:     f.SourceRef,
	}
	switch s.Passed {
	case passedCompletion:
		c.Passed = true
	case passedGradePass:
		pass, err := parseNumber(f.PassMark)
		if f.PassMark == "" || err != nil || pass.Sign() == 0 {
			return result.Completion{}, &problem{"course", f.CourseID, "has no pass mark (grade to pass) on its course total, needed for passed: gradepass"}
		}
		if g == nil {
			return result.Completion{}, &problem{"course", f.CourseID, "has no course total grade for this user, needed for passed: gradepass"}
		}
		c.Passed = g.value.Cmp(pass) >= 0
	case passedThreshold:
		r := (*big.Rat)(nil)
		if g != nil {
			r = g.ratio()
		}
		if r == nil {
			return result.Completion{}, &problem{"course", f.CourseID, "has no course total grade with a positive maximum for this user, needed for passed: threshold"}
		}
		c.Passed = new(big.Rat).Mul(r, big.NewRat(100, 1)).Cmp(s.threshold) >= 0
	}
	var percent string
	if g != nil {
		if r := g.ratio(); r != nil {
			percent = roundHalfUpInt(new(big.Rat).Mul(r, big.NewRat(100, 1)))
			switch s.Result {
			case resultDecimal:
				c.ResultDecimal = exactDecimal(new(big.Rat).Mul(r, s.scaleMax))
			case resultText:
				c.ResultText = strings.NewReplacer(
					"{percent}", percent, "{grade}", trimZeros(f.Grade), "{max}", trimZeros(f.GradeMax),
				).Replace(s.TextFormat)
			}
		}
	}
	if s.remark != nil {
		var b strings.Builder
		data := RemarkData{
			CourseID: f.CourseID, CourseName: f.CourseName, ShortName: f.ShortName, Code: f.Code,
			PersonID: f.PersonID, Completed: f.CompletedAt.In(loc), Percent: percent, Passed: c.Passed,
		}
		if g != nil {
			data.Grade, data.Max = trimZeros(f.Grade), trimZeros(f.GradeMax)
		}
		if f.PassMark != "" {
			if p, err := parseNumber(f.PassMark); err == nil && p.Sign() != 0 {
				data.PassMark = trimZeros(f.PassMark)
			}
		}
		if err := s.remark.Execute(&b, data); err != nil {
			return result.Completion{}, &problem{"course", f.CourseID, "remark template: " + err.Error()}
		}
		c.Remark = strings.TrimSpace(b.String())
	}
	return c, nil
}

// exactDigits is how many fraction digits exactDecimal keeps before it
// marks an inexact value with a sticky digit.
const exactDigits = 12

// exactDecimal formats r as a '.' decimal. A value that does not end within
// exactDigits fraction digits is truncated there and a final 1 appended: the
// result then lies strictly between the same neighbours as r at every
// coarser precision, so the core's rounding to at most 2 digits (half up,
// half even or down) gives exactly what rounding r would.
func exactDecimal(r *big.Rat) string {
	neg := r.Sign() < 0
	num := new(big.Int).Abs(r.Num())
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(exactDigits), nil)
	num.Mul(num, scale)
	q, rem := new(big.Int).QuoRem(num, r.Denom(), new(big.Int))
	digits := exactDigits
	if rem.Sign() != 0 {
		q.Mul(q, big.NewInt(10)).Add(q, big.NewInt(1))
		digits++
	}
	s := q.Text(10)
	if len(s) <= digits {
		s = strings.Repeat("0", digits-len(s)+1) + s
	}
	out := trimZeros(s[:len(s)-digits] + "." + s[len(s)-digits:])
	if neg && out != "0" {
		out = "-" + out
	}
	return out
}

// roundHalfUpInt rounds a non-negative r to a whole number, a tie upwards.
func roundHalfUpInt(r *big.Rat) string {
	twice := new(big.Int).Mul(r.Num(), big.NewInt(2))
	twice.Add(twice, r.Denom())
	q := new(big.Int).Div(twice, new(big.Int).Mul(r.Denom(), big.NewInt(2)))
	return q.Text(10)
}

// trimZeros removes trailing fraction zeros: "75.00000" → "75".
func trimZeros(v string) string {
	v = strings.TrimSpace(v)
	if !strings.Contains(v, ".") || strings.ContainsAny(v, "eE") {
		return v
	}
	v = strings.TrimRight(v, "0")
	return strings.TrimSuffix(v, ".")
}
