package cmi

import (
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDecimal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want, err string
	}{
		{name: "empty is absent", in: ""},
		{name: "whitespace is absent", in: "  \t"},
		{name: "integer", in: "80", want: "80"},
		{name: "point", in: " 7.25 ", want: "29/4"},
		{name: "comma", in: "7,5", want: "15/2"},
		{name: "exponent", in: "1.0E2", want: "100"},
		{name: "negative exponent", in: "5e-1", want: "1/2"},
		{name: "leading point", in: ".5", want: "1/2"},
		{name: "junk", in: "abc", err: `"abc" is not a decimal number`},
		{name: "thousands and comma", in: "1.234,5", err: "is not a decimal number"},
		{name: "two commas", in: "1,2,3", err: "is not a decimal number"},
		{name: "fraction form refused", in: "1/2", err: "is not a decimal number"},
		{name: "hex refused", in: "0x10", err: "is not a decimal number"},
		{name: "infinity refused", in: "Inf", err: "is not a decimal number"},
		{name: "huge exponent", in: "1e999999999", err: "exponent beyond"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := ParseDecimal(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			if tc.want == "" {
				assert.Nil(t, r)
				return
			}
			require.NotNil(t, r)
			assert.Equal(t, tc.want, r.RatString())
		})
	}
}

func TestTruncateAndRoundDecimal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		r          *big.Rat
		digits     int
		trunc, rnd string
	}{
		// trunc: cut after digits places, plus a sticky 1 when the cut drops
		// non-zero digits.
		{name: "two thirds", r: big.NewRat(200, 3), digits: 2, trunc: "66.661", rnd: "66.67"},
		{name: "exact half", r: big.NewRat(1235, 1000), digits: 2, trunc: "1.231", rnd: "1.24"},
		{name: "trailing zeros dropped", r: big.NewRat(15, 2), digits: 4, trunc: "7.5", rnd: "7.5"},
		{name: "whole", r: big.NewRat(80, 1), digits: 2, trunc: "80", rnd: "80"},
		{name: "small", r: big.NewRat(1, 1000), digits: 2, trunc: "0.001", rnd: "0"},
		{name: "small negative", r: big.NewRat(-1, 1000), digits: 2, trunc: "-0.001", rnd: "0"},
		{name: "zero digits", r: big.NewRat(5, 2), digits: 0, trunc: "2.1", rnd: "3"},
		{name: "negative", r: big.NewRat(-5, 2), digits: 0, trunc: "-2.1", rnd: "-3"},
		{name: "tie at six digits stays exact", r: big.NewRat(66665, 1000), digits: 6, trunc: "66.665", rnd: "66.665"},
		{name: "just above a tie at six digits", r: big.NewRat(66665000033333, 1000000000000), digits: 6, trunc: "66.6650001", rnd: "66.665"},
		{name: "just below a tie at six digits", r: big.NewRat(66664999966667, 1000000000000), digits: 6, trunc: "66.6649991", rnd: "66.665"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.trunc, TruncateDecimal(tc.r, tc.digits))
			assert.Equal(t, tc.rnd, RoundDecimal(tc.r, tc.digits))
		})
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		in         Values
		done, pass bool
		score      string // RatString, "" for none
		err        string
	}{
		{name: "1.2 passed", in: Values{LessonStatus: "passed", ScoreRaw: "80"}, done: true, pass: true, score: "4/5"},
		{name: "1.2 completed no mastery", in: Values{LessonStatus: "completed"}, done: true, pass: true},
		{name: "1.2 failed", in: Values{LessonStatus: "failed", ScoreRaw: "40", ScoreMax: "100"}, done: true, score: "2/5"},
		{name: "1.2 incomplete", in: Values{LessonStatus: "incomplete"}},
		{name: "1.2 browsed", in: Values{LessonStatus: "browsed"}},
		{name: "1.2 not attempted spelled three ways", in: Values{LessonStatus: "Not_Attempted"}},
		{name: "1.2 status case and spaces", in: Values{LessonStatus: "  PASSED "}, done: true, pass: true},
		{name: "1.2 unknown status", in: Values{LessonStatus: "finished"}, err: `cmi.core.lesson_status = "finished"`},
		{name: "2004 completed passed", in: Values{CompletionStatus: "completed", SuccessStatus: "passed", ScoreScaled: "0.85"}, done: true, pass: true, score: "17/20"},
		{name: "2004 completed unknown success", in: Values{CompletionStatus: "completed", SuccessStatus: "unknown"}, done: true, pass: true},
		{name: "2004 completed failed", in: Values{CompletionStatus: "completed", SuccessStatus: "failed"}, done: true},
		{name: "2004 incomplete but judged passed", in: Values{CompletionStatus: "incomplete", SuccessStatus: "passed"}, done: true, pass: true},
		{name: "2004 incomplete", in: Values{CompletionStatus: "incomplete", SuccessStatus: "unknown"}},
		{name: "2004 bad completion", in: Values{CompletionStatus: "done"}, err: "cmi.completion_status"},
		{name: "2004 bad success", in: Values{CompletionStatus: "completed", SuccessStatus: "yes"}, err: "cmi.success_status"},
		{name: "raw min max", in: Values{LessonStatus: "passed", ScoreRaw: "15", ScoreMin: "5", ScoreMax: "25"}, done: true, pass: true, score: "1/2"},
		{name: "raw comma with max", in: Values{LessonStatus: "passed", ScoreRaw: "7,5", ScoreMax: "10"}, done: true, pass: true, score: "3/4"},
		{name: "raw exponent", in: Values{LessonStatus: "passed", ScoreRaw: "1.0E2"}, done: true, pass: true, score: "1"},
		{name: "scaled wins over raw", in: Values{CompletionStatus: "completed", ScoreScaled: "0.5", ScoreRaw: "90", ScoreMax: "100"}, done: true, pass: true, score: "1/2"},
		{name: "negative scaled reads as zero", in: Values{CompletionStatus: "completed", ScoreScaled: "-0.5"}, done: true, pass: true, score: "0"},
		{name: "scaled out of range", in: Values{CompletionStatus: "completed", ScoreScaled: "1.5"}, err: "outside −1…1"},
		{name: "raw above max", in: Values{LessonStatus: "passed", ScoreRaw: "105", ScoreMax: "100"}, err: "outside score.min"},
		{name: "raw over 100 without max", in: Values{LessonStatus: "passed", ScoreRaw: "250"}, err: "outside 0…100"},
		{name: "max not above min", in: Values{LessonStatus: "passed", ScoreRaw: "5", ScoreMin: "10", ScoreMax: "10"}, err: "not above score.min"},
		{name: "junk raw", in: Values{LessonStatus: "passed", ScoreRaw: "eighty"}, err: `score.raw = "eighty"`},
		{name: "empty score is absent", in: Values{LessonStatus: "passed", ScoreRaw: " ", ScoreMax: ""}, done: true, pass: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, err := Parse(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.done, st.Done(), "done")
			assert.Equal(t, tc.pass, st.PassedByStatus(), "passed by status")
			if tc.score == "" {
				assert.Nil(t, st.Score)
			} else {
				require.NotNil(t, st.Score)
				assert.Equal(t, tc.score, st.Score.RatString())
			}
		})
	}
}

func sco(key, status, raw string, minute int) SCO {
	return SCO{Key: key, Identifier: "item_" + key, Values: Values{LessonStatus: status, ScoreRaw: raw},
		Modified: time.Date(2025, 3, 1, 10, minute, 0, 0, time.UTC)}
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	retake := []Attempt{
		{Key: "1", SCOs: []SCO{sco("a", "failed", "40", 1)}},
		{Key: "2", SCOs: []SCO{sco("a", "passed", "70", 2)}},
		{Key: "3", SCOs: []SCO{sco("a", "passed", "90", 3)}},
		{Key: "10", SCOs: []SCO{sco("a", "incomplete", "", 4)}},
	}
	multi := []Attempt{
		{Key: "1", SCOs: []SCO{sco("a", "passed", "100", 1), sco("b", "incomplete", "", 2)}},
		{Key: "2", SCOs: []SCO{sco("a", "passed", "80", 3), sco("b", "completed", "60", 4)}},
	}
	tests := []struct {
		name     string
		attempts []Attempt
		rules    Rules
		ok       bool
		attempt  string
		passed   bool
		score    string
		minute   int
		err      string
	}{
		{name: "first passing skips the failure", attempts: retake, rules: Rules{Attempt: FirstPassing}, ok: true, attempt: "2", passed: true, score: "7/10", minute: 2},
		{name: "best takes the highest passed", attempts: retake, rules: Rules{Attempt: Best}, ok: true, attempt: "3", passed: true, score: "9/10", minute: 3},
		{name: "last skips the unfinished attempt 10 (numeric order)", attempts: retake, rules: Rules{Attempt: Last}, ok: true, attempt: "3", passed: true, score: "9/10", minute: 3},
		{name: "only a failure: first passing reports it", attempts: retake[:1], rules: Rules{Attempt: FirstPassing}, ok: true, attempt: "1", score: "2/5", minute: 1},
		{name: "nothing done", attempts: retake[3:], rules: Rules{Attempt: FirstPassing}},
		{name: "no attempts", rules: Rules{Attempt: Best}},
		{name: "all SCOs: attempt 1 is not done", attempts: multi, rules: Rules{Attempt: FirstPassing}, ok: true, attempt: "2", passed: true, score: "7/10", minute: 4},
		{name: "all SCOs with a package SCO never launched", attempts: multi, rules: Rules{Attempt: FirstPassing, PackageSCOs: []string{"a", "b", "c"}}},
		{name: "named SCO done in attempt 1", attempts: multi, rules: Rules{SCOs: NamedSCO, SCOIdentifier: "item_a", Attempt: FirstPassing}, ok: true, attempt: "1", passed: true, score: "1", minute: 1},
		{name: "named SCO absent", attempts: multi, rules: Rules{SCOs: NamedSCO, SCOIdentifier: "item_z"}},
		{name: "threshold fails a passed status", attempts: retake, rules: Rules{Attempt: FirstPassing, Pass: ByThreshold, Threshold: big.NewRat(3, 4)}, ok: true, attempt: "3", passed: true, score: "9/10", minute: 3},
		{name: "threshold never reached", attempts: retake[:2], rules: Rules{Attempt: FirstPassing, Pass: ByThreshold, Threshold: big.NewRat(3, 4)}, ok: true, attempt: "2", score: "7/10", minute: 2},
		{
			name:     "threshold without a score is reported",
			attempts: []Attempt{{Key: "1", SCOs: []SCO{sco("a", "completed", "", 1)}}},
			rules:    Rules{Pass: ByThreshold, Threshold: big.NewRat(1, 2)},
			err:      "has no score",
		},
		{
			name:     "malformed value in a needed attempt is reported",
			attempts: []Attempt{{Key: "1", SCOs: []SCO{sco("a", "passed", "lots", 1)}}, {Key: "2", SCOs: []SCO{sco("a", "passed", "80", 2)}}},
			rules:    Rules{Attempt: FirstPassing},
			err:      `attempt 1, SCO a: score.raw = "lots"`,
		},
		{
			name:     "malformed value after the first pass does not matter",
			attempts: []Attempt{{Key: "1", SCOs: []SCO{sco("a", "passed", "80", 1)}}, {Key: "2", SCOs: []SCO{sco("a", "weird", "", 2)}}},
			rules:    Rules{Attempt: FirstPassing},
			ok:       true, attempt: "1", passed: true, score: "4/5", minute: 1,
		},
		{
			name:     "malformed value anywhere matters for best",
			attempts: []Attempt{{Key: "1", SCOs: []SCO{sco("a", "passed", "80", 1)}}, {Key: "2", SCOs: []SCO{sco("a", "weird", "", 2)}}},
			rules:    Rules{Attempt: Best},
			err:      "attempt 2, SCO a: cmi.core.lesson_status",
		},
		{
			name: "best prefers passed over a higher failed score",
			attempts: []Attempt{
				{Key: "1", SCOs: []SCO{{Key: "a", Values: Values{CompletionStatus: "completed", SuccessStatus: "failed", ScoreScaled: "0.9"}}}},
				{Key: "2", SCOs: []SCO{{Key: "a", Values: Values{CompletionStatus: "completed", SuccessStatus: "passed", ScoreScaled: "0.6"}}}},
			},
			rules: Rules{Attempt: Best}, ok: true, attempt: "2", passed: true, score: "3/5",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, ok, err := Evaluate(tc.attempts, tc.rules)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				var ve *ValueError
				assert.ErrorAs(t, err, &ve)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.ok, ok)
			if !ok {
				return
			}
			assert.Equal(t, tc.attempt, out.Attempt)
			assert.Equal(t, tc.passed, out.Passed)
			if tc.score == "" {
				assert.Nil(t, out.Score)
			} else {
				require.NotNil(t, out.Score)
				assert.Equal(t, tc.score, out.Score.RatString())
			}
			if tc.minute > 0 {
				assert.Equal(t, tc.minute, out.Modified.Minute())
			}
		})
	}
}

func TestCompareKeys(t *testing.T) {
	t.Parallel()
	assert.Negative(t, CompareKeys("2", "10"))
	assert.Positive(t, CompareKeys("b", "a"))
	assert.Zero(t, CompareKeys(" 3", "3"))
	assert.Negative(t, CompareKeys("2025-01-02T10:00", "2025-01-10T09:00"))
}

func FuzzParse(f *testing.F) {
	f.Add("passed", "", "", "80", "", "100", "")
	f.Add("", "completed", "failed", "7,5", "0", "10", "0.75")
	f.Fuzz(func(t *testing.T, ls, cs, ss, raw, lo, hi, scaled string) {
		st, err := Parse(Values{LessonStatus: ls, CompletionStatus: cs, SuccessStatus: ss, ScoreRaw: raw, ScoreMin: lo, ScoreMax: hi, ScoreScaled: scaled})
		if err == nil && st.Score != nil && (st.Score.Sign() < 0 || st.Score.Cmp(big.NewRat(1, 1)) > 0) {
			t.Fatalf("score %s outside 0…1", st.Score.RatString())
		}
	})
}
