package scorm

import (
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/cvbridge/cvbridge/adapters/scorm/cmi"
	"github.com/cvbridge/cvbridge/bridge/result"
)

// TestCompletionDecimalUnderCoreRounding checks that the ResultDecimal the
// adapter hands over rounds, in the core, as the exact score does. A score
// of 66.665000033333 lies just above the tie 66.665: cut to six digits
// without a sticky digit it would land on the tie, and half_even would
// round it down.
func TestCompletionDecimalUnderCoreRounding(t *testing.T) {
	t.Parallel()
	src, _ := newTestSource(t, "postgres", "postgres://nowhere/x", "") // never connects
	s := src.(*Source)
	score := big.NewRat(66665000033333, 100000000000000) // 0.66665000033333 of scale_max 100
	c := s.completion(unit{personID: "P1", code: "E-1"}, cmi.Outcome{Attempt: "1", Passed: true, Score: score})
	assert.Equal(t, "66.6650001", c.ResultDecimal, "cut after six digits, then a sticky 1")

	tests := []struct {
		mode result.Rounding
		want string
	}{
		{mode: result.RoundHalfEven, want: "66.67"},
		{mode: result.RoundHalfUp, want: "66.67"},
		{mode: result.RoundDown, want: "66.66"},
	}
	for _, tc := range tests {
		t.Run(string(tc.mode), func(t *testing.T) {
			t.Parallel()
			assert.Contains(t, render(t, time.UTC, tc.mode, c), ` ResultaatDecimaal="`+tc.want+`"`)
		})
	}
}
