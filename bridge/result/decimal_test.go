package result

import (
	"encoding/xml"
	"math/big"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoundDecimal(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		in       string
		decimals int
		mode     Rounding
		want     string
	}{
		{"half up rounds a tie away from zero", "6.745", 2, RoundHalfUp, "6.75"},
		{"half up rounds below a tie down", "6.744", 2, RoundHalfUp, "6.74"},
		{"half up rounds a negative tie away from zero", "-1.005", 2, RoundHalfUp, "-1.01"},
		{"half up is exact where float64 is not (0.285)", "0.285", 2, RoundHalfUp, "0.29"},
		{"half up is exact where float64 is not (1.015)", "1.015", 2, RoundHalfUp, "1.02"},
		{"half up carries into the integer part", "9.995", 2, RoundHalfUp, "10"},
		{"half up to whole numbers", "2.5", 0, RoundHalfUp, "3"},
		{"half up to whole numbers, negative", "-2.5", 0, RoundHalfUp, "-3"},
		{"half up to one decimal", "6.75", 1, RoundHalfUp, "6.8"},
		{"rounding happens once, not digit by digit", "6.749", 1, RoundHalfUp, "6.7"},
		{"three decimals are rounded, not rejected", "7.456", 2, RoundHalfUp, "7.46"},
		{"half even rounds a tie to even (down)", "6.745", 2, RoundHalfEven, "6.74"},
		{"half even rounds a tie to even (up)", "6.755", 2, RoundHalfEven, "6.76"},
		{"half even rounds above a tie up", "6.7451", 2, RoundHalfEven, "6.75"},
		{"half even negative tie", "-1.005", 2, RoundHalfEven, "-1"},
		{"half even whole 2.5", "2.5", 0, RoundHalfEven, "2"},
		{"half even whole 3.5", "3.5", 0, RoundHalfEven, "4"},
		{"down truncates", "6.749", 2, RoundDown, "6.74"},
		{"down truncates toward zero", "-6.749", 2, RoundDown, "-6.74"},
		{"down keeps short values", "9.99", 2, RoundDown, "9.99"},
		{"seed example 2 stays as is", "6.7", 2, RoundHalfUp, "6.7"},
		{"trailing zero dropped", "7.50", 2, RoundHalfUp, "7.5"},
		{"zero fraction dropped", "8.00", 2, RoundHalfUp, "8"},
		{"negative integer", "-1", 2, RoundHalfUp, "-1"},
		{"integer", "10", 2, RoundHalfUp, "10"},
		{"plus sign and leading zeros dropped", "+007.10", 2, RoundHalfUp, "7.1"},
		{"leading point", ".5", 2, RoundHalfUp, "0.5"},
		{"trailing point", "5.", 2, RoundHalfUp, "5"},
		{"zero", "0", 2, RoundHalfUp, "0"},
		{"negative zero has no sign", "-0.00", 2, RoundHalfUp, "0"},
		{"negative value rounding to zero has no sign", "-0.001", 2, RoundHalfUp, "0"},
		{"sixteen integer digits fit", "9999999999999999.99", 2, RoundHalfUp, "9999999999999999.99"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := roundDecimal(tc.in, tc.decimals, tc.mode)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestRoundDecimalRejects(t *testing.T) {
	t.Parallel()
	const grammar = "is not a decimal number: expected digits with an optional sign and a '.' separator, such as 7.5"
	cases := []struct {
		name string
		in   string
		want string
	}{
		{"letters", "abc", `"abc" ` + grammar},
		{"decimal comma", "7,5", `"7,5" ` + grammar},
		{"exponent", "1e3", `"1e3" ` + grammar},
		{"fraction", "1/3", `"1/3" ` + grammar},
		{"two points", "1.2.3", `"1.2.3" ` + grammar},
		{"point only", ".", `"." ` + grammar},
		{"sign only", "-", `"-" ` + grammar},
		{"double sign", "--1", `"--1" ` + grammar},
		{"inner space", "7 5", `"7 5" ` + grammar},
		{"percent", "67%", `"67%" ` + grammar},
		{"too long", strings.Repeat("1", 41), "is 41 characters long; at most 40 allowed"},
		{"too many integer digits", "12345678901234567", "has 17 digits before the decimal point; at most 16 allowed"},
		{"rounding carries past sixteen digits", "9999999999999999.995", "has 17 digits before the decimal point; at most 16 allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := roundDecimal(tc.in, 2, RoundHalfUp)
			require.Error(t, err)
			assert.Equal(t, tc.want, err.Error())
		})
	}
}

func TestAppendEscapedMatchesEncodingXML(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"",
		"plain",
		`Jan & "Piet" <de 'Vries'>`,
		"regel 1\nregel 2\tmet tab\r\n",
		"Ä ë ĳ Ørsted",
		"&&&",
	} {
		var want strings.Builder
		require.NoError(t, xml.EscapeText(&want, []byte(s)))
		assert.Equal(t, want.String(), string(appendEscaped(nil, s)), "escaping %q", s)
	}
}

func FuzzRoundDecimal(f *testing.F) {
	for _, s := range []string{"6.745", "-1.005", "7.50", "8.00", "+007.10", ".5", "5.", "-0.001", "1e3", "7,5", "9999999999999999.995"} {
		f.Add(s, uint8(2), uint8(0))
	}
	modes := []Rounding{RoundHalfUp, RoundHalfEven, RoundDown}
	f.Fuzz(func(t *testing.T, s string, decimals, mode uint8) {
		d := int(decimals % (maxDecimals + 1))
		m := modes[int(mode)%len(modes)]
		got, err := roundDecimal(s, d, m)
		if err != nil {
			return
		}
		in, ok := new(big.Rat).SetString(s)
		require.True(t, ok, "accepted %q that math/big cannot read", s)
		out, ok := new(big.Rat).SetString(got)
		require.True(t, ok, "produced %q from %q", got, s)

		// Rounding moves the value by less than one unit of the last kept digit.
		unit := new(big.Rat).SetFrac(big.NewInt(1), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d)), nil))
		diff := new(big.Rat).Sub(out, in)
		assert.Negative(t, new(big.Rat).Abs(diff).Cmp(unit), "%q rounded to %q", s, got)

		// The output is canonical: rounding it again changes nothing.
		again, err := roundDecimal(got, d, m)
		require.NoError(t, err)
		assert.Equal(t, got, again)
		assert.False(t, strings.HasPrefix(got, "+") || strings.HasSuffix(got, ".") || got == "-0", "non-canonical %q", got)
		if _, frac, ok := strings.Cut(got, "."); ok {
			assert.LessOrEqual(t, len(frac), d)
			assert.False(t, strings.HasSuffix(frac, "0"), "trailing zero in %q", got)
		}
	})
}
