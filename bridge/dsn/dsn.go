// Package dsn applies cvbridge's rules to database connection strings, for
// the outbox (PostgreSQL) and the LMS databases it reads (PostgreSQL,
// MariaDB and MySQL):
//
//   - A server on another machine is reached over TLS with its certificate
//     verified (PostgreSQL sslmode=verify-full, MySQL tls=true) unless the
//     DSN chooses its own mode. The drivers' defaults do not verify:
//     lib/pq encrypts without checking whom it talks to, go-sql-driver does
//     not encrypt at all. A server on this machine (a loopback address,
//     localhost or a Unix socket) keeps the driver's default.
//   - An error never quotes the DSN, which may hold a password.
package dsn

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"
)

// Postgres parses a lib/pq DSN (URL or key=value) under the package's rules.
func Postgres(dsn string) (pq.Config, error) {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil || u.Fragment != "" || strings.Contains(u.Path, "@") {
			return pq.Config{}, errors.New("the postgres DSN is not a valid URL (its text is not shown: it may hold a password); " +
				"characters such as @ # / ? in the user name or password must be percent-encoded (%40 %23 %2F %3F)")
		}
	}
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		return pq.Config{}, errors.New("the postgres DSN is not valid (its text is not shown: it may hold a password)")
	}
	servers := []pq.ConfigMultihost{{Host: cfg.Host, Hostaddr: cfg.Hostaddr}}
	servers = append(servers, cfg.Multi...)
	remote := false
	for _, srv := range servers {
		h := srv.Host
		if srv.Hostaddr.IsValid() {
			h = srv.Hostaddr.String() // the address connected to
		}
		remote = remote || !local(h)
	}
	if cfg.SSLMode == "" && remote {
		cfg.SSLMode = pq.SSLModeVerifyFull
	}
	return cfg, nil
}

// MySQL parses a go-sql-driver DSN under the package's rules.
func MySQL(dsn string) (*mysql.Config, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, errors.New("the mysql DSN is not valid (its text is not shown: it may hold a password)")
	}
	if cfg.Net == "tcp" && cfg.TLS == nil && cfg.TLSConfig == "" {
		host, _, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			host = cfg.Addr
		}
		if !local(host) {
			cfg.TLSConfig = "true"
		}
	}
	return cfg, nil
}

// local reports whether host (a name, an IP address or a Unix socket path)
// is this machine.
func local(host string) bool {
	host = strings.Trim(host, "[]")
	if host == "" || filepath.IsAbs(host) || strings.HasPrefix(host, "@") || strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Explain adds to a connection error that is about TLS what cvbridge
// chose and how to choose otherwise.
func Explain(err error) error {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pq.ErrSSLNotSupported), errors.Is(err, mysql.ErrNoTLS):
		return fmt.Errorf("%w (a database server on another machine is reached over TLS with its certificate verified; "+
			"the server offers no TLS: enable it, or set sslmode=disable (PostgreSQL) or tls=false (MySQL) in the DSN to send in the clear on a network you trust)", err)
	case errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid):
		return fmt.Errorf("%w (a database server on another machine is reached over TLS with its certificate verified; "+
			"trust its CA with sslrootcert=/path/ca.pem (PostgreSQL) or connect by the name its certificate holds)", err)
	}
	return err
}

// Scrub returns err, or when its text holds password (four characters or
// more: a shorter one matches by chance) an error saying only that, so it
// can be logged. It stays matchable with errors.Is and errors.As.
func Scrub(err error, password string) error {
	if err == nil || len(password) < 4 || !strings.Contains(err.Error(), password) {
		return err
	}
	return &scrubbed{err: err}
}

// scrubbed is an error whose text held a password.
type scrubbed struct{ err error }

func (e *scrubbed) Error() string {
	return "the error's text held the DSN's password and is not shown; check the DSN's syntax"
}
func (e *scrubbed) Unwrap() error { return e.err }
