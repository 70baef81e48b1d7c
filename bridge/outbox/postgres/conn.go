package postgres

import (
	"net/url"
	"strings"
)

// redactedError is a connection error with the DSN's password removed from
// its text.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact returns err with any trace of dsn's password removed from its
// message, so it can be logged. Errors stay matchable with errors.Is/As.
func redact(err error, dsn string) error {
	msg := err.Error()
	secrets := []string{dsn}
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			secrets = append(secrets, pw, url.QueryEscape(pw), url.PathEscape(pw))
		}
	}
	for _, field := range strings.Fields(dsn) { // key=value form
		if k, v, ok := strings.Cut(field, "="); ok && k == "password" && v != "" {
			secrets = append(secrets, strings.Trim(v, "'"))
		}
	}
	changed := false
	for _, sec := range secrets {
		if sec != "" && strings.Contains(msg, sec) {
			msg = strings.ReplaceAll(msg, sec, "[redacted]")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &redactedError{msg: msg, err: err}
}
