package ws

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies a failed call.
type Kind int

const (
	// Transient failures (network, timeouts, HTTP 5xx, database hiccups in
	// Moodle) are worth retrying unchanged.
	Transient Kind = iota
	// Permanent failures (bad token, missing rights, invalid data) repeat
	// until someone changes Moodle or the bridge's settings.
	Permanent
)

// Error is a failed web-service call.
type Error struct {
	// Function is the web-service function called.
	Function string
	// Exception and ErrorCode are Moodle's, when Moodle answered with an
	// exception object.
	Exception, ErrorCode string
	// Message is Moodle's message, when it sent one.
	Message string
	// HTTPStatus is the HTTP status, 0 when no answer arrived.
	HTTPStatus int
	// Kind says whether retrying may help.
	Kind Kind
	// Err says what went wrong and what to fix.
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("moodle %s: %v", e.Function, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Code returns err's Moodle error code, or "" when err is not a Moodle
// exception.
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.ErrorCode
	}
	return ""
}

// IsPermanent reports whether err is an *Error of kind Permanent.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == Permanent
}

// transientCodes are Moodle error codes of failures that retrying can cure.
var transientCodes = map[string]bool{
	"dmlreadexception":        true,
	"dmlwriteexception":       true,
	"dmltransactionexception": true,
	"ddlexecuteerror":         true,
	"sitemaintenance":         true,
	"upgraderunning":          true,
	"cannotgetlock":           true,
	"locktimeout":             true,
}

// fixes tells the operator what to change in Moodle for common codes.
var fixes = map[string]string{
	"invalidtoken": "the token is not valid: check token_file/token_env, that the token exists under " +
		"Site administration > Server > Web services > Manage tokens, has not expired and is not restricted to other IP addresses",
	"accessexception": "access to this function was refused: add it to the token's external service " +
		"(Site administration > Server > Web services > External services > Functions) and check the token user " +
		"has webservice/rest:use and is an authorised user of the service",
	"nopermissions": "the token's user lacks a capability this function needs: give it a role with the " +
		"capabilities listed in the bridge's Moodle documentation (simplest: Manager at system level)",
	"requireloginerror": "the token's user cannot log in to this course or site: check it is not suspended " +
		"and can access the course",
	"usernotfullysetup": "the token's user must complete its profile or accept the site policy in Moodle first",
	"servicerequireslogin": "the token's external service is disabled or restricted: enable it under " +
		"Site administration > Server > Web services > External services",
}

// exceptionError classifies one of Moodle's exception objects.
func exceptionError(function, exception, code, message string) *Error {
	kind := Permanent
	if transientCodes[strings.ToLower(code)] {
		kind = Transient
	}
	text := strings.TrimSpace(message)
	if text == "" {
		text = exception
	}
	msg := fmt.Sprintf("Moodle error %s (%s)", code, text)
	if fix, ok := fixes[code]; ok {
		msg += ": " + fix
	}
	return &Error{Function: function, Exception: exception, ErrorCode: code, Message: message,
		HTTPStatus: 200, Kind: kind, Err: errors.New(msg)}
}
