// Package result owns the result of one person for one e-learning part: the
// Completion an adapter yields, and the CoachviewResultaat XML message
// rendered from it after business checks and XSD validation.
//
// It knows nothing of storage, delivery or any LMS.
package result

import "time"

// Completion is one person's outcome for one e-learning part, as an LMS
// adapter reports it. Field names follow the CoachviewResultaat message.
type Completion struct {
	// PersonID is Coachview's PersoonExterneId (required, at most 50 characters).
	PersonID string
	// ElearningCode is the Elearningcode of the Coachview course part (required, at most 50 characters).
	ElearningCode string
	// CompletedAt is when the person completed the part; rendered as the root
	// Datum attribute, a calendar date in the provider's time zone. Zero means absent.
	CompletedAt time.Time
	// Remark is the root Opmerking attribute (at most 255 characters).
	Remark string

	// Passed is the text of the Geslaagd element.
	Passed bool
	// ResultText is Geslaagd/@Resultaat, a free-text result such as "67%".
	ResultText string
	// ResultDecimal is Geslaagd/@ResultaatDecimaal as a decimal number with a
	// '.' separator (adapters convert a decimal comma). It is rounded to the
	// configured number of fraction digits when rendered. At most one of
	// ResultText and ResultDecimal may be set.
	ResultDecimal string
	// ResultDate is Geslaagd/@Datum. Zero means absent.
	ResultDate time.Time
	// ResultRemark is Geslaagd/@Opmerking (at most 255 characters).
	ResultRemark string

	// Attendance is rendered only when set and the connection enables it.
	Attendance *Attendance

	// SourceRef says where in the LMS this completion came from (a file and
	// line, a table row id), for tracing. It is never sent to Coachview.
	SourceRef string

	// Unreadable, when set, says why the LMS's data for this person and
	// part could not be read into a result (an unreadable SCORM score, for
	// example). Render refuses such a completion, so the core records it
	// as a rejected row the operator sees, instead of a log line only; a
	// value corrected in the LMS then gives a new completion.
	Unreadable string
}

// Attendance is the optional attendance registration (element inferred as
// Aanwezig; see the interfaces document).
type Attendance struct {
	Present bool
	Date    time.Time // zero means absent
	Remark  string    // at most 255 characters
}
