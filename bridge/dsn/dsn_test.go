package dsn_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/dsn"
	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// TestPostgresVerifiesRemoteServers: lib/pq without sslmode encrypts
// without checking the server's certificate, so anyone in between can read
// the outbox's traffic; a server on another machine is verified unless the
// DSN chooses a mode, and one on this machine keeps the driver's default.
func TestPostgresVerifiesRemoteServers(t *testing.T) {
	for in, want := range map[string]pq.SSLMode{
		"postgres://cvb:pw@db.example.org/cvb":                   pq.SSLModeVerifyFull,
		"host=db.example.org user=cvb dbname=cvb":                pq.SSLModeVerifyFull,
		"host=localhost,db.example.org user=cvb":                 pq.SSLModeVerifyFull,
		"host=db hostaddr=10.0.0.5 user=cvb":                     pq.SSLModeVerifyFull,
		"postgres://cvb:pw@db.example.org/cvb?sslmode=require":   pq.SSLModeRequire,
		"postgres://cvb:pw@db.example.org/cvb?sslmode=disable":   pq.SSLModeDisable,
		"postgres://cvb:pw@127.0.0.1:5432/cvb":                   "",
		"postgres://cvb:pw@[::1]/cvb":                            "",
		"postgres://cvb:pw@localhost/cvb":                        "",
		"host=localhost hostaddr=127.0.0.1 user=cvb":             "",
		"host=/var/run/postgresql user=cvb":                      pq.SSLModeDisable, // a Unix socket: no TLS at all
		"postgres://cvb:pw@db.example.org/cvb?sslmode=verify-ca": pq.SSLModeVerifyCA,
	} {
		cfg, err := dsn.Postgres(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, cfg.SSLMode, in)
	}
}

// TestMySQLVerifiesRemoteServers: go-sql-driver does not encrypt at all
// without tls; a server on another machine gets tls=true (verified) unless
// the DSN chooses.
func TestMySQLVerifiesRemoteServers(t *testing.T) {
	for in, want := range map[string]string{
		"moodle:pw@tcp(db.example.org:3306)/moodle":           "true",
		"moodle:pw@tcp(db.example.org)/moodle":                "true",
		"moodle:pw@tcp(db.example.org:3306)/moodle?tls=false": "false",
		"moodle:pw@tcp(127.0.0.1:3306)/moodle":                "",
		"moodle:pw@tcp(localhost)/moodle":                     "",
		"moodle:pw@unix(/run/mysqld/mysqld.sock)/moodle":      "",
	} {
		cfg, err := dsn.MySQL(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, cfg.TLSConfig, in)
	}
}

// TestErrorsDoNotQuoteTheDSN: a password with a character a URL reserves,
// not percent-encoded, broke the URL apart, and the parser's error quoted
// the pieces (`invalid port ":Xy7Q" after host`); no part of it may be shown.
func TestErrorsDoNotQuoteTheDSN(t *testing.T) {
	for _, in := range []string{
		"postgres://cvbridge:Xy7Q/Secret9@db.example.org/cvb",
		"postgres://cvbridge:Xy7Q#Secret9@db.example.org/cvb",
		"postgres://cvbridge:p@ss#w0rdSecret9@db.example.org/cvb",
		"host=db password='Xy7QSecret9",
		"postgres://cvbridge:Xy7QSecret9@db.example.org:99999999/cvb",
	} {
		_, err := dsn.Postgres(in)
		require.Error(t, err, in)
		assert.NotContains(t, err.Error(), "Xy7Q", in)
		assert.NotContains(t, err.Error(), "Secret9", in)
	}
	_, err := dsn.MySQL("moodle:Xy7QSecret9@tcp(db:3306/moodle")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "Secret9")
}

// TestScrub: an error whose text holds the password is replaced whole
// (never by replacing the password inside it, which gave a one-letter
// password away), and stays matchable.
func TestScrub(t *testing.T) {
	base := errors.New("dial tcp: lookup w0rd-secret: no such host")
	err := dsn.Scrub(base, "w0rd-secret")
	assert.NotContains(t, err.Error(), "w0rd")
	assert.ErrorIs(t, err, base)
	assert.Equal(t, base, dsn.Scrub(base, "x"), "a short password matches by chance: not scrubbed")
	assert.Equal(t, base, dsn.Scrub(base, "other-secret"))
}

// TestExplainTLSFailure connects to the local PostgreSQL as to a server on
// another machine (sslmode=verify-full by IP address): the certificate of a
// stock Debian server names no IP address, or the server offers no TLS;
// either way the error says what cvbridge chose and how to choose
// otherwise.
func TestExplainTLSFailure(t *testing.T) {
	u, err := url.Parse(testdb.PostgresAdminDSN())
	if err != nil || u.Scheme == "" {
		t.Skip("the test server's DSN is not a URL")
	}
	q := u.Query()
	q.Set("sslmode", "verify-full")
	q.Set("connect_timeout", "5")
	u.RawQuery = q.Encode()
	cfg, err := dsn.Postgres(u.String())
	require.NoError(t, err)
	connector, err := pq.NewConnectorConfig(cfg)
	require.NoError(t, err)
	db := sql.OpenDB(connector)
	defer func() { _ = db.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = dsn.Explain(db.PingContext(ctx))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "reached over TLS with its certificate verified")
}
