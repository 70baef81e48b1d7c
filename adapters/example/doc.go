// Package example is the minimal adapter of the walkthrough in
// adapters/README.md: it reads completions from a JSON-lines file that
// another program appends to, one completion a line:
//
//	{"person": "P001", "code": "E-1234", "passed": true, "date": "2024-03-14"}
//
// Its LMS file's settings:
//
//	settings:
//	  file: results.jsonl   # required; relative to cvbridge.yaml's directory
//	  code: E-1234          # the e-learning code of lines without one
//
// It is built and tested with the other adapters but is not an LMS the
// product offers: cmd/cvbridge does not import it, so its kind "example"
// is registered only in programs that do (its tests).
package example
