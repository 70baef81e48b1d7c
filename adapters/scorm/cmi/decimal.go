package cmi

import (
	"fmt"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// number is the shape of a decimal SCORM value after trimming and after a
// decimal comma became a point: digits with an optional fraction and an
// optional exponent ("1.0E2"). Hex, fractions "a/b", Inf and NaN are refused.
var number = regexp.MustCompile(`^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?$`)

// maxExponent bounds the exponent of a parsed value, so a hostile
// "1e999999999" cannot make an enormous exact number.
const maxExponent = 30

// ParseDecimal parses a SCORM decimal value exactly. It returns nil, nil for
// an absent value (empty or only whitespace). A single decimal comma ("7,5")
// is read as a point; exponents ("1.0E2") are accepted. Anything else is an
// error quoting the value.
func ParseDecimal(s string) (*big.Rat, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, nil
	}
	if strings.Count(t, ",") == 1 && !strings.Contains(t, ".") {
		t = strings.Replace(t, ",", ".", 1)
	}
	m := number.FindStringSubmatch(t)
	if m == nil {
		return nil, fmt.Errorf("%q is not a decimal number", s)
	}
	if m[1] != "" {
		exp, err := strconv.Atoi(m[1])
		if err != nil || exp > maxExponent || exp < -maxExponent {
			return nil, fmt.Errorf("%q has an exponent beyond ±%d", s, maxExponent)
		}
	}
	r, ok := new(big.Rat).SetString(t)
	if !ok {
		return nil, fmt.Errorf("%q is not a decimal number", s)
	}
	return r, nil
}

// TruncateDecimal writes r as a '.' decimal string for a later rounding to
// fewer than digits fraction digits (the core's), trailing zeros dropped. A
// number with a terminating expansion of at most digits places is written
// exactly. Any other is cut toward zero after digits places and a final 1
// appended (a sticky digit), so it has digits+1 fraction digits. Cutting
// alone is not enough: 66.665000033333 cut to 66.665 lands on a tie that r
// lies above, and half-even rounding to 2 places then gives 66.66 instead
// of 66.67. With the sticky digit the result lies strictly between the same
// neighbours as r at every precision coarser than digits places (values and
// ties alike), so half-up, half-even and down rounding to fewer than digits
// places give exactly what rounding r would.
func TruncateDecimal(r *big.Rat, digits int) string {
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits)), nil)
	num := new(big.Int).Mul(r.Num(), scale)
	n, rem := new(big.Int).QuoRem(num, r.Denom(), new(big.Int)) // toward zero
	if rem.Sign() != 0 {
		// The dropped digits are not all zero: mark the value as beyond the
		// cut, on r's side of zero.
		n.Mul(n, big.NewInt(10)).Add(n, big.NewInt(int64(r.Sign())))
		digits++
	}
	return placeDecimal(n, digits)
}

// RoundDecimal writes r as a '.' decimal string rounded half away from
// zero to at most digits fraction digits, trailing zeros dropped.
func RoundDecimal(r *big.Rat, digits int) string {
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(digits)), nil)
	num := new(big.Int).Mul(r.Num(), scale)
	num.Mul(num, big.NewInt(2))
	den := new(big.Int).Mul(r.Denom(), big.NewInt(2))
	if num.Sign() >= 0 {
		num.Add(num, r.Denom())
	} else {
		num.Sub(num, r.Denom())
	}
	n := new(big.Int).Quo(num, den)
	return placeDecimal(n, digits)
}

// placeDecimal writes the integer n scaled down by 10^digits.
func placeDecimal(n *big.Int, digits int) string {
	neg := n.Sign() < 0
	s := new(big.Int).Abs(n).String()
	if digits > 0 {
		if len(s) <= digits {
			s = strings.Repeat("0", digits-len(s)+1) + s
		}
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if neg && s != "0" {
		s = "-" + s
	}
	return s
}
