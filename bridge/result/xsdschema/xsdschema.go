// Package xsdschema validates rendered result documents against an XSD
// with libxml2: the bundled Coachview schema or the operator's own file.
// It is the only part of the result path that needs cgo, kept out of
// package result so the adapter contract (bridge/source, bridge/result)
// builds with CGO_ENABLED=0. A *Schema is the result.Validator the
// daemon's renderers use.
package xsdschema

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	xsdvalidate "github.com/terminalstatic/go-xsd-validate"

	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/xsd"
)

var (
	initOnce sync.Once

	// libxml serialises every libxml2 call this package makes. go-xsd-validate
	// locks only schema parsing, not validation or Free, and libxml2's schema
	// code has lazily initialised globals (xmlSchemaInitTypes) and per-thread
	// error handlers that the library points at C stack frames. One lock
	// keeps all of that single-threaded; validating a small message takes
	// microseconds, so the lock costs little throughput.
	libxml sync.Mutex
)

// initLibxml initialises libxml2 once per process.
func initLibxml() {
	initOnce.Do(func() {
		// Init fails only when libxml2 is already initialised (by another
		// package in this process), which is the state needed here.
		_ = xsdvalidate.Init()
	})
}

// Schema is a parsed XSD that result documents are validated against. It is
// parsed once and is safe for concurrent use; Close releases its libxml2
// memory.
type Schema struct {
	// source names the schema in messages: "bundled XSD" or "XSD file <path>".
	source string
	// handler is guarded by libxml; nil once closed.
	handler *xsdvalidate.XsdHandler
}

var _ result.Validator = (*Schema)(nil)

// Bundled parses the XSD embedded in package xsd. Call it once and share
// the Schema.
func Bundled() (*Schema, error) {
	initLibxml()
	libxml.Lock()
	h, err := xsdvalidate.NewXsdHandlerMem(xsd.Resultaat, xsdvalidate.ParsErrVerbose)
	libxml.Unlock()
	if err != nil {
		return nil, fmt.Errorf("result: bundled XSD: %w", err)
	}
	return &Schema{source: "bundled XSD", handler: h}, nil
}

// Load parses the operator's own XSD file at path, for example
// Coachview's official schema, instead of the bundled one. Relative
// xs:include and xs:import locations resolve against the file's directory.
// Errors name the file and carry libxml2's reason.
func Load(path string) (*Schema, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("result: XSD file %s: %w", path, err)
	}
	// Reading first turns a missing or unreadable file into the operating
	// system's plain reason rather than libxml2's generic one.
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("result: read XSD file: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("result: XSD file %s is empty", abs)
	}

	initLibxml()
	libxml.Lock()
	h, err := xsdvalidate.NewXsdHandlerUrl(abs, xsdvalidate.ParsErrVerbose)
	libxml.Unlock()
	if err != nil {
		// For a file that is not even well-formed, libxml2 says only that it
		// failed to parse; Go's decoder adds the line and the cause.
		if syn := syntaxError(data); syn != nil {
			return nil, fmt.Errorf("result: XSD file %s: %w (%v)", abs, err, syn)
		}
		return nil, fmt.Errorf("result: XSD file %s: %w", abs, err)
	}
	return &Schema{source: "XSD file " + abs, handler: h}, nil
}

// Validate checks doc against the schema. A document the schema rejects, or
// that is not well-formed XML, yields a *result.CheckError with Field result.FieldXSD and
// libxml2's messages as Reason; any other error is a fault of the validator
// itself (such as a closed Schema), not of the document.
func (s *Schema) Validate(doc []byte) error {
	if s == nil {
		return errors.New("result: validate: no schema")
	}
	libxml.Lock()
	if s.handler == nil {
		libxml.Unlock()
		return fmt.Errorf("result: validate against %s: schema is closed", s.source)
	}
	// ParsErrDefault on purpose: with ParsErrVerbose the library leaves
	// libxml2's generic error handler pointing at a freed stack frame while
	// it validates, which an error raised during validation would write to.
	err := s.handler.ValidateMem(doc, xsdvalidate.ParsErrDefault)
	libxml.Unlock()
	if err == nil {
		return nil
	}

	var verr xsdvalidate.ValidationError
	var perr xsdvalidate.XmlParserError
	switch {
	case errors.As(err, &verr):
		msgs := make([]string, len(verr.Errors))
		for i, e := range verr.Errors {
			msgs[i] = fmt.Sprintf("line %d: %s", e.Line, e.Message)
		}
		return &result.CheckError{Field: result.FieldXSD, Reason: "rejected by " + s.source + ": " + strings.Join(msgs, "; ")}
	case errors.As(err, &perr):
		reason := perr.Error()
		if syn := syntaxError(doc); syn != nil {
			reason = syn.Error()
		}
		return &result.CheckError{Field: result.FieldXSD, Reason: "not well-formed XML: " + reason}
	default:
		return fmt.Errorf("result: validate against %s: %w", s.source, err)
	}
}

// Close frees the parsed schema. Validate fails afterwards; Close may be
// called more than once.
func (s *Schema) Close() {
	libxml.Lock()
	defer libxml.Unlock()
	if s.handler != nil {
		s.handler.Free()
		s.handler = nil
	}
}

// syntaxError returns the first well-formedness error Go's XML decoder finds
// in data, or nil. Other decoder failures (such as a declared encoding other
// than UTF-8) say nothing about well-formedness and are ignored.
func syntaxError(data []byte) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		_, err := d.Token()
		if err == nil {
			continue
		}
		if synErr, ok := errors.AsType[*xml.SyntaxError](err); ok {
			return synErr
		}
		return nil
	}
}
