package csvdrop

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Plausibility bounds the values a row may carry. A value outside them is
// almost always a typing or export error (a date in 2099, a grade of -1), and
// Coachview keeps the first result it registers, so such a row is reported as
// bad instead of being sent.
type Plausibility struct {
	// FutureTolerance is how far past the moment a file is read a date may
	// lie, for clocks that disagree and time zones ahead of ours (default 24h).
	FutureTolerance time.Duration `yaml:"future_tolerance"`
	// EarliestDate is the first date accepted, as YYYY-MM-DD (default
	// 2000-01-01); "" accepts any.
	EarliestDate string `yaml:"earliest_date"`
	// GradeMin is the lowest result_decimal accepted (default 0); "" accepts any.
	GradeMin string `yaml:"grade_min"`
	// GradeMax is the highest result_decimal accepted (default none, as
	// grades may be 1 to 10 or percentages); "" accepts any.
	GradeMax string `yaml:"grade_max"`
}

// defaultPlausibility is the default of Settings.Plausible.
func defaultPlausibility() Plausibility {
	return Plausibility{FutureTolerance: 24 * time.Hour, EarliestDate: "2000-01-01", GradeMin: "0"}
}

// validate reports the first bound that cannot be read, as key and message.
func (b Plausibility) validate() (key, msg string) {
	if b.FutureTolerance < 0 {
		return "plausible.future_tolerance", fmt.Sprintf("must not be negative, got %s", b.FutureTolerance)
	}
	if b.EarliestDate != "" {
		if _, err := time.Parse(time.DateOnly, b.EarliestDate); err != nil {
			return "plausible.earliest_date", fmt.Sprintf("must be a date as YYYY-MM-DD, got %q", b.EarliestDate)
		}
	}
	lo, err := bound(b.GradeMin)
	if err != nil {
		return "plausible.grade_min", err.Error()
	}
	hi, err := bound(b.GradeMax)
	if err != nil {
		return "plausible.grade_max", err.Error()
	}
	if lo != nil && hi != nil && lo.Cmp(hi) > 0 {
		return "plausible.grade_max", fmt.Sprintf("%s is below grade_min %s", b.GradeMax, b.GradeMin)
	}
	return "", ""
}

// bound reads a grade bound as written in the settings ("" is none).
func bound(s string) (*big.Rat, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("must be a number such as 0 or 10, got %q", s)
	}
	return r, nil
}

// setPlausible prepares the bounds for a file read at now.
func (p *Parser) setPlausible(b Plausibility, now time.Time) error {
	if key, msg := b.validate(); key != "" {
		return errors.New(key + ": " + msg)
	}
	p.latest = now.Add(b.FutureTolerance)
	if b.EarliestDate != "" {
		p.earliest, _ = time.ParseInLocation(time.DateOnly, b.EarliestDate, p.loc) // validated above
	}
	p.gradeMin, _ = bound(b.GradeMin)
	p.gradeMax, _ = bound(b.GradeMax)
	p.gradeRange = [2]string{strings.TrimSpace(b.GradeMin), strings.TrimSpace(b.GradeMax)}
	return nil
}

// plausibleDate says why a date cannot be a real completion, or nil.
func (p *Parser) plausibleDate(t time.Time) error {
	switch {
	case t.After(p.latest):
		return fmt.Errorf("lies in the future (later than %s; see plausible.future_tolerance)", p.latest.In(p.loc).Format("2006-01-02 15:04"))
	case !p.earliest.IsZero() && t.Before(p.earliest):
		return fmt.Errorf("is before %s (see plausible.earliest_date)", p.earliest.Format(time.DateOnly))
	}
	return nil
}

// plausibleGrade says why a normalised decimal is out of the configured
// range, or nil. The empty decimal is no grade and always plausible.
func (p *Parser) plausibleGrade(d string) error {
	if d == "" || p.gradeMin == nil && p.gradeMax == nil {
		return nil
	}
	r, ok := new(big.Rat).SetString(d)
	if !ok {
		return fmt.Errorf("%q: %w", d, ErrDecimal)
	}
	switch {
	case p.gradeMin != nil && r.Cmp(p.gradeMin) < 0:
		return fmt.Errorf("%s is below plausible.grade_min %s", d, p.gradeRange[0])
	case p.gradeMax != nil && r.Cmp(p.gradeMax) > 0:
		return fmt.Errorf("%s is above plausible.grade_max %s", d, p.gradeRange[1])
	}
	return nil
}
