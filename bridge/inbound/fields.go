package inbound

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode/utf8"
)

// Field limits of enrolments, in characters: the identifiers as Coachview
// allows them (the same as in results), names and e-mail address as an LMS
// can take them.
const (
	MaxPersonIDLen = 50
	MaxCodeLen     = 50
	MaxNameLen     = 100
	MaxEmailLen    = 254
)

// The fields of an enrolment, by the names Coachview gives them in the
// enrolment link's JSON; both inbound paths name fields this way.
const (
	FieldPersonID  = "PersoonExterneId"
	FieldCode      = "Elearningcode"
	FieldFirstName = "PersoonVoornaam"
	FieldInfix     = "PersoonTussenvoegsels"
	FieldLastName  = "PersoonAchternaam"
	FieldEmail     = "PersoonEmailadres"
)

// FieldError is an enrolment field that is missing or wrong; its message
// names the field as Coachview does, so the enrolment link's 400 and a
// webhook message's failure read the same.
type FieldError struct {
	Field, Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Fields are the values of one enrolment or unenrolment, trimmed.
type Fields struct {
	PersonID, ElearningCode, FirstName, Infix, LastName, Email string
}

// Check validates the fields of an enrolment or unenrolment, whichever path
// it came by: the person id and e-learning code are required; every value
// is valid UTF-8 without control characters and within its limit; an e-mail
// address, when there is one, is a plain address (name@domain). Which of
// the other fields are required is the path's business.
func (f Fields) Check() error {
	for _, c := range []struct {
		name, value string
		max         int
		required    bool
	}{
		{FieldPersonID, f.PersonID, MaxPersonIDLen, true},
		{FieldCode, f.ElearningCode, MaxCodeLen, true},
		{FieldFirstName, f.FirstName, MaxNameLen, false},
		{FieldInfix, f.Infix, MaxNameLen, false},
		{FieldLastName, f.LastName, MaxNameLen, false},
		{FieldEmail, f.Email, MaxEmailLen, false},
	} {
		if err := CheckValue(c.name, c.value, c.max, c.required); err != nil {
			return err
		}
	}
	if f.Email != "" {
		if a, err := mail.ParseAddress(f.Email); err != nil || a.Address != f.Email {
			return &FieldError{Field: FieldEmail, Problem: "is not an e-mail address"}
		}
	}
	return nil
}

// CheckValue checks one field's value against its limit.
func CheckValue(name, v string, max int, required bool) error {
	switch {
	case required && v == "":
		return &FieldError{Field: name, Problem: "missing"}
	case !utf8.ValidString(v):
		return &FieldError{Field: name, Problem: "is not valid UTF-8"}
	case utf8.RuneCountInString(v) > max:
		return &FieldError{Field: name, Problem: fmt.Sprintf("longer than %d characters", max)}
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }):
		return &FieldError{Field: name, Problem: "contains control characters"}
	}
	return nil
}
