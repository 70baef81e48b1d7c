// Package cmi owns the meaning of SCORM runtime data (the cmi.* elements an
// LMS or SCORM player stores as strings): SCORM 1.2 lesson_status, SCORM
// 2004 completion_status and success_status, scores from raw/min/max or
// scaled, the aggregation of a multi-SCO package per attempt, and the choice
// of the attempt that counts.
//
// It is pure: no database, no clock, no logging. Values are parsed
// defensively (an empty string is absent, "1.0E2" and "7,5" are numbers, case and
// whitespace do not matter) and anything unreadable is a *ValueError naming
// the attempt, SCO, element and value. Scores are exact (math/big.Rat).
package cmi

import (
	"cmp"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Element names as SCORM 1.2 and SCORM 2004 runtimes store them.
const (
	LessonStatus12     = "cmi.core.lesson_status"
	ScoreRaw12         = "cmi.core.score.raw"
	ScoreMin12         = "cmi.core.score.min"
	ScoreMax12         = "cmi.core.score.max"
	CompletionStatus04 = "cmi.completion_status"
	SuccessStatus04    = "cmi.success_status"
	ScoreRaw04         = "cmi.score.raw"
	ScoreMin04         = "cmi.score.min"
	ScoreMax04         = "cmi.score.max"
	ScoreScaled04      = "cmi.score.scaled"
)

// Elements lists every element this package reads, for queries that fetch
// only those.
var Elements = []string{
	LessonStatus12, ScoreRaw12, ScoreMin12, ScoreMax12,
	CompletionStatus04, SuccessStatus04, ScoreRaw04, ScoreMin04, ScoreMax04, ScoreScaled04,
}

// Values are the raw strings one SCO stored in one attempt; an empty string means absent.
// SCORM 1.2 runtimes fill LessonStatus, SCORM 2004 runtimes
// CompletionStatus and SuccessStatus; both fill the score fields they have.
type Values struct {
	LessonStatus     string
	CompletionStatus string
	SuccessStatus    string
	ScoreRaw         string
	ScoreMin         string
	ScoreMax         string
	ScoreScaled      string
}

// Set stores the value of a SCORM 1.2 or 2004 element by its name and
// reports whether the element is one Values holds.
func (v *Values) Set(element, value string) bool {
	switch element {
	case LessonStatus12:
		v.LessonStatus = value
	case CompletionStatus04:
		v.CompletionStatus = value
	case SuccessStatus04:
		v.SuccessStatus = value
	case ScoreRaw12, ScoreRaw04:
		v.ScoreRaw = value
	case ScoreMin12, ScoreMin04:
		v.ScoreMin = value
	case ScoreMax12, ScoreMax04:
		v.ScoreMax = value
	case ScoreScaled04:
		v.ScoreScaled = value
	default:
		return false
	}
	return true
}

// Completion is a normalised completion status.
type Completion int

// The completion states; SCORM 1.2's browsed counts as incomplete.
const (
	CompletionUnknown Completion = iota
	NotAttempted
	Incomplete
	Completed
)

// Success is a normalised success status.
type Success int

// The success states.
const (
	SuccessUnknown Success = iota
	Passed
	Failed
)

// State is what one SCO's values mean.
type State struct {
	Completion Completion
	Success    Success
	// Score is the score as a fraction from 0 to 1, or nil when the SCO
	// reported none.
	Score *big.Rat
}

// Done reports whether the SCO was finished in this attempt: completed, or
// judged passed or failed.
func (s State) Done() bool {
	return s.Completion == Completed || s.Success != SuccessUnknown
}

// PassedByStatus reports whether the SCO counts as passed by its status:
// judged passed, or completed without a judgement (a SCO with no mastery
// test).
func (s State) PassedByStatus() bool {
	return s.Success == Passed || (s.Success == SuccessUnknown && s.Completion == Completed)
}

// key normalises a vocabulary value: lower case, no spaces, underscores or
// hyphens, so "Not Attempted", "not_attempted" and "notattempted" agree.
func key(s string) string {
	return strings.NewReplacer(" ", "", "_", "", "-", "", "\t", "").Replace(strings.ToLower(strings.TrimSpace(s)))
}

// FieldError is one unreadable value of a SCO.
type FieldError struct {
	Element string // the element, e.g. cmi.core.lesson_status
	Value   string
	Reason  string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s = %q: %s", e.Element, e.Value, e.Reason)
}

// Parse reads one SCO's values. SCORM 1.2's lesson_status is used when set;
// otherwise SCORM 2004's completion_status and success_status. The score is
// scaled when scaled is given (−1…1, negative read as 0), else
// (raw−min)/(max−min) when max is given (min defaults to 0), else raw/100
// when only raw is given (SCORM 1.2 recommends 0…100 then).
func Parse(v Values) (State, error) {
	var st State
	switch ls := key(v.LessonStatus); ls {
	case "":
		c, err := parseCompletion(v.CompletionStatus)
		if err != nil {
			return State{}, err
		}
		s, err := parseSuccess(v.SuccessStatus)
		if err != nil {
			return State{}, err
		}
		st.Completion, st.Success = c, s
	case "passed":
		st.Completion, st.Success = Completed, Passed
	case "failed":
		st.Completion, st.Success = Completed, Failed
	case "completed":
		st.Completion = Completed
	case "incomplete", "browsed":
		st.Completion = Incomplete
	case "notattempted":
		st.Completion = NotAttempted
	default:
		return State{}, &FieldError{Element: LessonStatus12, Value: v.LessonStatus,
			Reason: "expected passed, completed, failed, incomplete, browsed or not attempted"}
	}
	score, err := parseScore(v)
	if err != nil {
		return State{}, err
	}
	st.Score = score
	return st, nil
}

func parseCompletion(s string) (Completion, error) {
	switch key(s) {
	case "", "unknown":
		return CompletionUnknown, nil
	case "completed":
		return Completed, nil
	case "incomplete":
		return Incomplete, nil
	case "notattempted":
		return NotAttempted, nil
	}
	return 0, &FieldError{Element: CompletionStatus04, Value: s, Reason: "expected completed, incomplete, not attempted or unknown"}
}

func parseSuccess(s string) (Success, error) {
	switch key(s) {
	case "", "unknown":
		return SuccessUnknown, nil
	case "passed":
		return Passed, nil
	case "failed":
		return Failed, nil
	}
	return 0, &FieldError{Element: SuccessStatus04, Value: s, Reason: "expected passed, failed or unknown"}
}

var (
	ratZero    = new(big.Rat)
	ratOne     = big.NewRat(1, 1)
	ratHundred = big.NewRat(100, 1)
)

func parseScore(v Values) (*big.Rat, error) {
	num := func(element, s string) (*big.Rat, error) {
		r, err := ParseDecimal(s)
		if err != nil {
			return nil, &FieldError{Element: element, Value: s, Reason: err.Error()}
		}
		return r, nil
	}
	scaled, err := num(ScoreScaled04, v.ScoreScaled)
	if err != nil {
		return nil, err
	}
	raw, err := num("score.raw", v.ScoreRaw)
	if err != nil {
		return nil, err
	}
	lo, err := num("score.min", v.ScoreMin)
	if err != nil {
		return nil, err
	}
	hi, err := num("score.max", v.ScoreMax)
	if err != nil {
		return nil, err
	}
	switch {
	case scaled != nil:
		if scaled.Cmp(big.NewRat(-1, 1)) < 0 || scaled.Cmp(ratOne) > 0 {
			return nil, &FieldError{Element: ScoreScaled04, Value: v.ScoreScaled, Reason: "outside −1…1"}
		}
		if scaled.Sign() < 0 {
			return new(big.Rat), nil
		}
		return scaled, nil
	case raw == nil:
		return nil, nil
	case hi != nil:
		if lo == nil {
			lo = ratZero
		}
		if hi.Cmp(lo) <= 0 {
			return nil, &FieldError{Element: "score.max", Value: v.ScoreMax, Reason: fmt.Sprintf("not above score.min %q", v.ScoreMin)}
		}
		if raw.Cmp(lo) < 0 || raw.Cmp(hi) > 0 {
			return nil, &FieldError{Element: "score.raw", Value: v.ScoreRaw,
				Reason: fmt.Sprintf("outside score.min %s … score.max %s", lo.RatString(), hi.RatString())}
		}
		f := new(big.Rat).Sub(raw, lo)
		return f.Quo(f, new(big.Rat).Sub(hi, lo)), nil
	default:
		if raw.Sign() < 0 || raw.Cmp(ratHundred) > 0 {
			return nil, &FieldError{Element: "score.raw", Value: v.ScoreRaw, Reason: "outside 0…100 and no score.max given"}
		}
		return new(big.Rat).Quo(raw, ratHundred), nil
	}
}

// SCO is one SCO's data in one attempt.
type SCO struct {
	// Key identifies the SCO within its package (a Moodle scorm_scoes.id or
	// a custom query's sco_key).
	Key string
	// Identifier is the SCO's manifest identifier, matched by the named rule
	// (may equal Key).
	Identifier string
	Values     Values
	// Modified is the latest modification time of the SCO's values.
	Modified time.Time
}

// Attempt is one attempt of a person at a package.
type Attempt struct {
	Key  string
	SCOs []SCO
}

// SCORule says when a package counts as done in an attempt.
type SCORule int

// The SCO rules.
const (
	AllSCOs  SCORule = iota // every SCO of the package done
	NamedSCO                // the one SCO with the configured identifier done
)

// AttemptRule says which attempt counts.
type AttemptRule int

// The attempt rules.
const (
	FirstPassing AttemptRule = iota // the first passed attempt, else the latest done one
	Best                            // the best done attempt: passed before failed, then the highest score, then the earliest
	Last                            // the latest done attempt
)

// PassRule says how passing is decided.
type PassRule int

// The pass rules.
const (
	ByStatus    PassRule = iota // SCO statuses: every counted SCO passed, or completed without judgement
	ByThreshold                 // score at or above Rules.Threshold
)

// Rules configure Evaluate.
type Rules struct {
	SCOs SCORule
	// SCOIdentifier is the SCO that counts under NamedSCO.
	SCOIdentifier string
	// PackageSCOs are the keys of every SCO of the package, when known (the
	// Moodle preset knows them); otherwise AllSCOs uses the SCOs seen in
	// any attempt.
	PackageSCOs []string
	Attempt     AttemptRule
	Pass        PassRule
	// Threshold is the pass mark as a fraction from 0 to 1 (ByThreshold).
	Threshold *big.Rat
}

// Outcome is the attempt that counts.
type Outcome struct {
	Attempt string
	Passed  bool
	// Score is a fraction from 0 to 1, or nil when no counted SCO had one.
	// With several SCOs it is the mean of those that had one.
	Score *big.Rat
	// Modified is the latest modification of the counted SCOs' values.
	Modified time.Time
}

// ValueError is an unreadable value that decides a person's result.
type ValueError struct {
	Attempt string
	SCO     string
	Err     error
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("attempt %s, SCO %s: %v", e.Attempt, e.SCO, e.Err)
}

func (e *ValueError) Unwrap() error { return e.Err }

// judged is an attempt after evaluation.
type judged struct {
	Outcome
	done bool
}

// Evaluate returns the attempt that counts and whether there is one (no
// attempt done means nothing to report yet). Attempts are ordered by key,
// numerically when both keys are whole numbers. An unreadable value in an
// attempt the rule has to look at is a *ValueError, never a guess: under
// FirstPassing the attempts up to the first passed one, under Last those
// from the latest back to the latest done one, under Best all of them.
func Evaluate(attempts []Attempt, r Rules) (Outcome, bool, error) {
	sorted := slices.Clone(attempts)
	slices.SortStableFunc(sorted, func(a, b Attempt) int { return CompareKeys(a.Key, b.Key) })
	required := r.PackageSCOs
	if r.SCOs == AllSCOs && len(required) == 0 {
		required = seenSCOs(sorted)
	}
	switch r.Attempt {
	case Last:
		for i := len(sorted) - 1; i >= 0; i-- {
			j, err := judge(sorted[i], r, required)
			if err != nil {
				return Outcome{}, false, err
			}
			if j.done {
				return j.Outcome, true, nil
			}
		}
		return Outcome{}, false, nil
	case Best:
		var best *judged
		for _, a := range sorted {
			j, err := judge(a, r, required)
			if err != nil {
				return Outcome{}, false, err
			}
			if j.done && (best == nil || better(j, *best)) {
				best = &j
			}
		}
		if best == nil {
			return Outcome{}, false, nil
		}
		return best.Outcome, true, nil
	default: // FirstPassing
		var last *judged
		for _, a := range sorted {
			j, err := judge(a, r, required)
			if err != nil {
				return Outcome{}, false, err
			}
			if !j.done {
				continue
			}
			if j.Passed {
				return j.Outcome, true, nil
			}
			last = &j
		}
		if last == nil {
			return Outcome{}, false, nil
		}
		return last.Outcome, true, nil
	}
}

// better reports whether a beats b under Best (b came earlier).
func better(a, b judged) bool {
	if a.Passed != b.Passed {
		return a.Passed
	}
	switch {
	case a.Score == nil:
		return false
	case b.Score == nil:
		return true
	}
	return a.Score.Cmp(b.Score) > 0
}

// judge decides whether one attempt is done, passed, and its score.
func judge(a Attempt, r Rules, required []string) (judged, error) {
	bySCO := map[string]SCO{}
	for _, s := range a.SCOs {
		if r.SCOs == NamedSCO && s.Identifier != r.SCOIdentifier {
			continue
		}
		bySCO[s.Key] = s
	}
	keys := required
	if r.SCOs == NamedSCO {
		keys = slices.Sorted(maps.Keys(bySCO))
	}
	j := judged{Outcome: Outcome{Attempt: a.Key}}
	if len(keys) == 0 {
		return j, nil
	}
	done, passed := true, true
	var sum *big.Rat
	scored := 0
	for _, k := range keys {
		s, ok := bySCO[k]
		if !ok {
			done = false
			continue
		}
		st, err := Parse(s.Values)
		if err != nil {
			return judged{}, &ValueError{Attempt: a.Key, SCO: k, Err: err}
		}
		if s.Modified.After(j.Modified) {
			j.Modified = s.Modified
		}
		done = done && st.Done()
		passed = passed && st.PassedByStatus()
		if st.Score != nil {
			if sum == nil {
				sum = new(big.Rat)
			}
			sum.Add(sum, st.Score)
			scored++
		}
	}
	if sum != nil {
		j.Score = sum.Quo(sum, big.NewRat(int64(scored), 1))
	}
	j.done = done
	if r.Pass == ByThreshold {
		if done && j.Score == nil {
			return judged{}, &ValueError{Attempt: a.Key, SCO: strings.Join(keys, ","),
				Err: fmt.Errorf("the attempt is done but has no score, and passing is decided by a score threshold")}
		}
		passed = j.Score != nil && r.Threshold != nil && j.Score.Cmp(r.Threshold) >= 0
	}
	j.Passed = passed
	return j, nil
}

func seenSCOs(attempts []Attempt) []string {
	seen := map[string]bool{}
	for _, a := range attempts {
		for _, s := range a.SCOs {
			seen[s.Key] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// CompareKeys orders attempt keys: numerically when both are whole numbers,
// otherwise as strings (ISO timestamps sort correctly that way).
func CompareKeys(a, b string) int {
	ai, errA := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	bi, errB := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
	if errA == nil && errB == nil {
		return cmp.Compare(ai, bi)
	}
	return strings.Compare(a, b)
}
