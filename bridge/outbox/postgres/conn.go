package postgres

import (
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"

	"github.com/lib/pq"
)

// afterError drops the pool's idle connections when err shows that the
// connection to the server was lost. When the server restarts, every idle
// connection is dead, and database/sql would otherwise hand them out one by
// one, failing one call each; dropping them makes the next call connect
// afresh. Other errors leave the pool alone.
func (s *Store) afterError(err error) {
	if err == nil || !connectionLost(err) {
		return
	}
	s.db.SetMaxIdleConns(0) // closes the idle connections
	s.db.SetMaxIdleConns(s.maxConns)
}

// connectionLost reports whether err means the connection to the server
// broke (as opposed to an error in the statement or its data).
func connectionLost(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch pqErr.Code {
		case "57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03": // cannot_connect_now (starting up, shutting down)
			return true
		}
		return pqErr.Code.Class() == "08" // connection_exception
	}
	return false
}

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
