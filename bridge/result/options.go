package result

import (
	"errors"
	"fmt"
	"time"
	// The embedded zone database lets LoadLocation work on hosts without
	// /usr/share/zoneinfo (minimal containers); the system copy wins when present.
	_ "time/tzdata"
)

// Rounding says how a ResultDecimal with more fraction digits than configured
// is rounded.
type Rounding string

const (
	// RoundHalfUp rounds to the nearest value and a tie away from zero:
	// 6.745 becomes 6.75 and -1.005 becomes -1.01. It is the default.
	RoundHalfUp Rounding = "half_up"
	// RoundHalfEven rounds to the nearest value and a tie to the even
	// neighbour (banker's rounding): 6.745 becomes 6.74, 6.755 becomes 6.76.
	RoundHalfEven Rounding = "half_even"
	// RoundDown drops the extra digits, rounding toward zero: 6.749 becomes
	// 6.74 and -6.749 becomes -6.74.
	RoundDown Rounding = "down"
)

// valid reports whether r is one of the known rounding modes.
func (r Rounding) valid() bool {
	switch r {
	case RoundHalfUp, RoundHalfEven, RoundDown:
		return true
	}
	return false
}

// maxDecimals is the most fraction digits Coachview accepts in ResultaatDecimaal.
const maxDecimals = 2

// Options configures how a Renderer turns a Completion into XML for one
// Coachview connection. Start from DefaultOptions and override fields.
type Options struct {
	// Location is the provider's time zone; dates are rendered as calendar
	// dates there, not in UTC.
	Location *time.Location
	// Decimals is the number of fraction digits ResultaatDecimaal is rounded
	// to, 0 to 2.
	Decimals int
	// Rounding is how ResultaatDecimaal is rounded to Decimals.
	Rounding Rounding
	// Attendance enables the Aanwezig element. When false, a Completion's
	// Attendance is ignored.
	Attendance bool
}

// amsterdam is the default provider time zone. Loading it cannot fail because
// time/tzdata is embedded.
var amsterdam = mustLoadLocation("Europe/Amsterdam")

func mustLoadLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(fmt.Sprintf("result: time zone %s missing although time/tzdata is embedded: %v", name, err))
	}
	return loc
}

// DefaultOptions returns the defaults: time zone Europe/Amsterdam, 2 decimals,
// rounding half_up, attendance off.
func DefaultOptions() Options {
	return Options{
		Location: amsterdam,
		Decimals: maxDecimals,
		Rounding: RoundHalfUp,
	}
}

// Validate reports the first option that is out of range.
func (o Options) Validate() error {
	if o.Location == nil {
		return errors.New("result: options: time zone (Location) is not set")
	}
	if o.Decimals < 0 || o.Decimals > maxDecimals {
		return fmt.Errorf("result: options: decimals is %d, must be 0, 1 or 2", o.Decimals)
	}
	if !o.Rounding.valid() {
		return fmt.Errorf("result: options: rounding is %q, must be one of %q, %q, %q",
			string(o.Rounding), RoundHalfUp, RoundHalfEven, RoundDown)
	}
	return nil
}
