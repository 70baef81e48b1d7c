package result

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// XML names of the checked fields, used as CheckError.Field.
const (
	fieldCode             = "Elearningcode"
	fieldPerson           = "PersoonExterneId"
	fieldRemark           = "Opmerking"
	fieldDate             = "Datum"
	fieldPassed           = "Geslaagd"
	fieldResult           = "Geslaagd/@Resultaat"
	fieldResultDecimal    = "Geslaagd/@ResultaatDecimaal"
	fieldResultDate       = "Geslaagd/@Datum"
	fieldResultRemark     = "Geslaagd/@Opmerking"
	fieldAttendanceDate   = "Aanwezig/@Datum"
	fieldAttendanceRemark = "Aanwezig/@Opmerking"
)

// fieldLMSData is the CheckError.Field of a completion whose LMS data
// could not be read (Completion.Unreadable): no XML field is at fault.
const fieldLMSData = "LMS data"

// Length limits from Coachview's field table, in characters.
const (
	maxCodeLen   = 50
	maxRemarkLen = 255
)

// Validator checks a rendered document against the XSD; the daemon's is
// an *xsdschema.Schema (libxml2, kept out of this package so it needs no
// cgo). A document the schema rejects, or that is not well-formed, yields
// a *CheckError with Field FieldXSD; any other error is a fault of the
// validator itself, not of the document.
type Validator interface {
	Validate(doc []byte) error
}

// Renderer turns Completions into CoachviewResultaat documents: it checks
// the business rules, writes the XML and validates it against the XSD, so
// no invalid document ever leaves. It is safe for concurrent use when its
// Validator is.
type Renderer struct {
	opts   Options
	schema Validator
}

// NewRenderer returns a Renderer for opts that validates every document
// with schema. The caller keeps ownership of schema and must not close it
// while the Renderer is in use.
func NewRenderer(opts Options, schema Validator) (*Renderer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if schema == nil {
		return nil, errors.New("result: renderer needs a schema: every document is validated before it leaves")
	}
	return &Renderer{opts: opts, schema: schema}, nil
}

// Render checks c, renders it as a CoachviewResultaat document and validates
// that against the schema. A Completion that cannot be sent yields a
// *CheckError naming the field and the reason; any other error is a fault of
// the validator.
//
// PersonID and ElearningCode are sent without surrounding white space,
// ResultDecimal rounded to the configured decimals in canonical form, dates
// as calendar dates in the configured time zone. Attendance is rendered only
// when the Options enable it.
func (r *Renderer) Render(c Completion) ([]byte, error) {
	if err := r.check(&c); err != nil {
		return nil, err
	}
	doc := r.appendDocument(make([]byte, 0, sizeHint(&c)), &c)
	if err := r.schema.Validate(doc); err != nil {
		return nil, err
	}
	return doc, nil
}

// check applies Coachview's business rules to c and normalises it for
// rendering: identifiers trimmed, decimal rounded, attendance dropped unless
// enabled.
func (r *Renderer) check(c *Completion) *CheckError {
	if c.Unreadable != "" {
		return &CheckError{Field: fieldLMSData, Reason: c.Unreadable}
	}
	c.ElearningCode = strings.TrimSpace(c.ElearningCode)
	c.PersonID = strings.TrimSpace(c.PersonID)
	if err := checkRequired(fieldCode, c.ElearningCode); err != nil {
		return err
	}
	if err := checkRequired(fieldPerson, c.PersonID); err != nil {
		return err
	}
	if err := checkText(fieldRemark, c.Remark, maxRemarkLen); err != nil {
		return err
	}
	if err := r.checkDate(fieldDate, c.CompletedAt); err != nil {
		return err
	}

	c.ResultDecimal = strings.TrimSpace(c.ResultDecimal)
	if c.ResultText != "" && c.ResultDecimal != "" {
		return &CheckError{Field: fieldPassed, Reason: "Resultaat and ResultaatDecimaal are both set; Coachview accepts only one of them"}
	}
	if err := checkText(fieldResult, c.ResultText, 0); err != nil {
		return err
	}
	if c.ResultDecimal != "" {
		d, err := roundDecimal(c.ResultDecimal, r.opts.Decimals, r.opts.Rounding)
		if err != nil {
			return &CheckError{Field: fieldResultDecimal, Reason: err.Error()}
		}
		c.ResultDecimal = d
	}
	if err := r.checkDate(fieldResultDate, c.ResultDate); err != nil {
		return err
	}
	if err := checkText(fieldResultRemark, c.ResultRemark, maxRemarkLen); err != nil {
		return err
	}

	if !r.opts.Attendance {
		c.Attendance = nil
	}
	if a := c.Attendance; a != nil {
		if err := r.checkDate(fieldAttendanceDate, a.Date); err != nil {
			return err
		}
		if err := checkText(fieldAttendanceRemark, a.Remark, maxRemarkLen); err != nil {
			return err
		}
	}
	return nil
}

// checkRequired checks an identifier that must be present (after trimming)
// and at most maxCodeLen characters long.
func checkRequired(field, s string) *CheckError {
	if s == "" {
		return &CheckError{Field: field, Reason: "required"}
	}
	return checkText(field, s, maxCodeLen)
}

// checkText checks that s is valid UTF-8, holds only characters XML 1.0 can
// carry, and has at most max characters (runes); max 0 means no limit.
func checkText(field, s string, max int) *CheckError {
	n := 0
	for i := 0; i < len(s); n++ {
		b := s[i]
		if b < utf8.RuneSelf {
			if b < 0x20 && b != '\t' && b != '\n' && b != '\r' {
				return &CheckError{Field: field, Reason: fmt.Sprintf(
					"contains control character U+%04X at character %d; XML 1.0 cannot carry it", b, n+1)}
			}
			i++
			continue
		}
		ch, size := utf8.DecodeRuneInString(s[i:])
		if ch == utf8.RuneError && size == 1 {
			return &CheckError{Field: field, Reason: fmt.Sprintf("is not valid UTF-8 (byte 0x%02X at offset %d)", b, i)}
		}
		if ch == 0xFFFE || ch == 0xFFFF {
			return &CheckError{Field: field, Reason: fmt.Sprintf(
				"contains non-character U+%04X at character %d; XML 1.0 cannot carry it", ch, n+1)}
		}
		i += size
	}
	if max > 0 && n > max {
		return &CheckError{Field: field, Reason: fmt.Sprintf("is %d characters long; at most %d allowed", n, max)}
	}
	return nil
}

// checkDate checks that a set date has a four-digit year in the provider's
// time zone, as xs:date in Coachview needs.
func (r *Renderer) checkDate(field string, t time.Time) *CheckError {
	if t.IsZero() {
		return nil
	}
	if y := t.In(r.opts.Location).Year(); y < 1 || y > 9999 {
		return &CheckError{Field: field, Reason: fmt.Sprintf("year %d is outside 1 to 9999", y)}
	}
	return nil
}

// sizeHint estimates the document length so rendering allocates once.
func sizeHint(c *Completion) int {
	n := 320 + len(c.ElearningCode) + len(c.PersonID) + len(c.Remark) +
		len(c.ResultText) + len(c.ResultDecimal) + len(c.ResultRemark)
	if c.Attendance != nil {
		n += 64 + len(c.Attendance.Remark)
	}
	return n
}

// appendDocument writes the checked c as XML in the shape of Coachview's
// examples: attributes in the documented order, absent ones omitted.
func (r *Renderer) appendDocument(b []byte, c *Completion) []byte {
	b = append(b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<CoachviewResultaat xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"`...)
	b = r.appendDateAttr(b, " Datum=\"", c.CompletedAt)
	b = appendAttr(b, " Opmerking=\"", c.Remark)
	b = appendAttr(b, " Elearningcode=\"", c.ElearningCode)
	b = appendAttr(b, " PersoonExterneId=\"", c.PersonID)
	b = append(b, ">\n  <Geslaagd"...)
	b = appendAttr(b, " Resultaat=\"", c.ResultText)
	b = appendAttr(b, " ResultaatDecimaal=\"", c.ResultDecimal)
	b = r.appendDateAttr(b, " Datum=\"", c.ResultDate)
	b = appendAttr(b, " Opmerking=\"", c.ResultRemark)
	b = append(b, '>')
	b = appendBool(b, c.Passed)
	b = append(b, "</Geslaagd>\n"...)
	if a := c.Attendance; a != nil {
		b = append(b, "  <Aanwezig"...)
		b = r.appendDateAttr(b, " Datum=\"", a.Date)
		b = appendAttr(b, " Opmerking=\"", a.Remark)
		b = append(b, '>')
		b = appendBool(b, a.Present)
		b = append(b, "</Aanwezig>\n"...)
	}
	return append(b, "</CoachviewResultaat>\n"...)
}

// appendAttr appends prefix (` Name="`), the escaped value and the closing
// quote, or nothing when value is empty.
func appendAttr(b []byte, prefix, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, prefix...)
	b = appendEscaped(b, value)
	return append(b, '"')
}

// appendDateAttr appends prefix, t as an xs:date in the provider's time zone
// and the closing quote, or nothing when t is zero.
func (r *Renderer) appendDateAttr(b []byte, prefix string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = append(b, prefix...)
	b = t.In(r.opts.Location).AppendFormat(b, time.DateOnly)
	return append(b, '"')
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

// appendEscaped appends s escaped for an attribute value exactly as
// encoding/xml's EscapeText does: the markup characters as entities, and
// tab, newline and carriage return as character references so attribute
// value normalisation does not turn them into spaces.
func appendEscaped(b []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '"':
			esc = "&#34;"
		case '\'':
			esc = "&#39;"
		case '\t':
			esc = "&#x9;"
		case '\n':
			esc = "&#xA;"
		case '\r':
			esc = "&#xD;"
		default:
			continue
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		last = i + 1
	}
	return append(b, s[last:]...)
}
