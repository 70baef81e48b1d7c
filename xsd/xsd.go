// Package xsd holds the XML Schema of the CoachviewResultaat message, embedded
// into the binary so the bridge validates every result without any file on
// disk. It owns the schema text only; parsing and validation live in
// bridge/result.
package xsd

import _ "embed"

// Resultaat is the bundled XSD of the CoachviewResultaat message, rebuilt from
// the field table in Coachview's documentation of the results link because
// Coachview's official XSD was not available. The operator may configure
// Coachview's official file instead; bridge/result loads either.
//
//go:embed coachview-resultaat.xsd
var Resultaat []byte
