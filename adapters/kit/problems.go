package kit

import (
	"errors"
	"fmt"
	"strings"
)

// Problem is one mistake in an adapter's settings: the dotted key it is
// about (such as columns.person, relative to the settings mapping) and
// what is wrong, in the operator's words. The adapter registry turns it
// into a message naming the LMS file, the key's line and settings.<key>.
type Problem struct {
	Key string
	Msg string
}

// Error returns "key: msg".
func (p *Problem) Error() string { return p.Key + ": " + p.Msg }

// Problems collects every mistake of one connection's settings, so an
// adapter's Validate reports them all rather than the first. A check that
// needs a value an earlier check refused is skipped (the adapter tests
// that value), never run on a bad one.
type Problems []*Problem

// Addf records a mistake at key.
func (p *Problems) Addf(key, format string, args ...any) {
	*p = append(*p, &Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Err returns p as an error, nil when it holds no mistake.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	return p
}

// Error lists the mistakes, one a line.
func (p Problems) Error() string {
	lines := make([]string, len(p))
	for i, x := range p {
		lines[i] = x.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the mistakes, so errors.As finds a *Problem among them.
func (p Problems) Unwrap() []error {
	errs := make([]error, len(p))
	for i, x := range p {
		errs[i] = x
	}
	return errs
}

// At returns err as a mistake at key: err itself when it already names a
// key (a *Problem or Problems), else a *Problem with err's message.
func At(key string, err error) error {
	if err == nil {
		return nil
	}
	var one *Problem
	var many Problems
	if errors.As(err, &many) || errors.As(err, &one) {
		return err
	}
	return &Problem{Key: key, Msg: err.Error()}
}
