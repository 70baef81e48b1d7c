package result

// FieldXSD is the CheckError Field of a document the XSD rejected.
const FieldXSD = "xsd"

// CheckError says why a Completion cannot be sent to Coachview: which field
// is wrong and why. It is the reason an operator sees for a rejected result.
// Business-check reasons never quote free text such as remarks; an XSD
// rejection carries libxml2's message, which may quote the offending value.
//
// Field is the XML name of the offending node as Coachview documents it
// (Elearningcode, PersoonExterneId, Opmerking, Datum, Geslaagd,
// Geslaagd/@Resultaat, Geslaagd/@ResultaatDecimaal, Geslaagd/@Datum,
// Geslaagd/@Opmerking, Aanwezig/@Datum, Aanwezig/@Opmerking), or FieldXSD
// when the rendered document failed schema validation.
type CheckError struct {
	Field  string
	Reason string
}

// Error returns "Field: Reason", for example "Elearningcode: required".
func (e *CheckError) Error() string {
	return e.Field + ": " + e.Reason
}
