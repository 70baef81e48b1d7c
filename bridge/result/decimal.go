package result

import (
	"fmt"
	"math/big"
	"strings"
)

const (
	// maxDecimalInput bounds the text of a ResultDecimal so a corrupt value
	// cannot make rounding expensive.
	maxDecimalInput = 40
	// maxIntegerDigits bounds the digits before the decimal point: 16 plus 2
	// fraction digits fits a decimal(18,2) column and stays well inside
	// libxml2's xs:decimal limit of 24 digits.
	maxIntegerDigits = 16
)

var bigOne = big.NewInt(1)

// roundDecimal parses s exactly as an xs:decimal lexical value (optional sign,
// digits, optional '.' and digits) and returns its canonical form rounded to
// decimals fraction digits with mode: no '+' sign, no leading zeros, no
// trailing fraction zeros, no '.' without a fraction and no "-0". An error
// says why s is not acceptable, without repeating more of s than needed.
func roundDecimal(s string, decimals int, mode Rounding) (string, error) {
	if len(s) > maxDecimalInput {
		return "", fmt.Errorf("is %d characters long; at most %d allowed", len(s), maxDecimalInput)
	}
	neg := false
	body := s
	if body != "" && (body[0] == '+' || body[0] == '-') {
		neg = body[0] == '-'
		body = body[1:]
	}
	intPart, fracPart, _ := strings.Cut(body, ".")
	if len(intPart)+len(fracPart) == 0 || !allDigits(intPart) || !allDigits(fracPart) {
		return "", fmt.Errorf("%q is not a decimal number: expected digits with an optional sign and a '.' separator, such as 7.5", s)
	}

	var n big.Int
	n.SetString(intPart+fracPart, 10) // cannot fail: non-empty and all digits
	scale := len(fracPart)
	if scale > decimals {
		var div, rem big.Int
		div.Exp(big.NewInt(10), big.NewInt(int64(scale-decimals)), nil)
		n.QuoRem(&n, &div, &rem)
		if rem.Sign() != 0 {
			// Compare twice the remainder with the divisor: above means the
			// dropped part exceeds one half, equal means a tie.
			half := rem.Lsh(&rem, 1).Cmp(&div)
			switch mode {
			case RoundHalfUp:
				if half >= 0 {
					n.Add(&n, bigOne)
				}
			case RoundHalfEven:
				if half > 0 || (half == 0 && n.Bit(0) == 1) {
					n.Add(&n, bigOne)
				}
			case RoundDown:
			}
		}
		scale = decimals
	}

	digits := n.Text(10)
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	whole, frac := digits[:len(digits)-scale], strings.TrimRight(digits[len(digits)-scale:], "0")
	if len(whole) > maxIntegerDigits {
		return "", fmt.Errorf("has %d digits before the decimal point; at most %d allowed", len(whole), maxIntegerDigits)
	}

	var b strings.Builder
	b.Grow(len(whole) + len(frac) + 2)
	if neg && n.Sign() != 0 {
		b.WriteByte('-')
	}
	b.WriteString(whole)
	if frac != "" {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String(), nil
}

// allDigits reports whether s consists of ASCII digits only (true for "").
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
