// Package readonly opens database pools whose every connection is set to
// read-only before use, for adapters reading an LMS's database (Moodle's,
// through the moodle and scorm adapters): neither a write nor DDL can reach
// that database, whatever rights the account has. It owns the per-driver
// session statements and nothing else.
package readonly

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	"github.com/go-sql-driver/mysql"
	"github.com/lib/pq"

	"github.com/cvbridge/cvbridge/bridge/dsn"
)

// Session makes a new connection's session read-only, per driver name.
// Queries should also run in read-only transactions, but MariaDB and MySQL
// end a transaction implicitly before DDL: the session setting refuses
// that too.
var Session = map[string]string{
	"postgres": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
	"mysql":    "SET SESSION TRANSACTION READ ONLY",
}

// Connector makes every connection it opens read-only before the pool
// hands it out.
type Connector struct {
	driver.Connector
	// Stmt is the driver's Session statement.
	Stmt string
}

// Connect opens a connection and makes its session read-only.
func (c Connector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, dsn.Explain(err)
	}
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		_ = conn.Close() // never used: the refusal is the error
		return nil, fmt.Errorf("the database driver cannot run %q", c.Stmt)
	}
	if _, err := ex.ExecContext(ctx, c.Stmt, nil); err != nil {
		_ = conn.Close() // never used: the failed statement is the error
		return nil, fmt.Errorf("making the session read-only (%s): %w", c.Stmt, err)
	}
	return conn, nil
}

// Open returns a pool on dataSource (driver "postgres" or "mysql", under
// package dsn's rules: a server on another machine is reached over TLS
// with its certificate verified unless the DSN chooses otherwise) whose
// sessions are read-only. It does not connect. Its error never quotes the
// DSN.
func Open(driverName, dataSource string) (*sql.DB, error) {
	var connector driver.Connector
	var err error
	switch driverName {
	case "postgres":
		cfg, perr := dsn.Postgres(dataSource)
		if perr != nil {
			return nil, perr
		}
		connector, err = pq.NewConnectorConfig(cfg)
	case "mysql":
		cfg, perr := dsn.MySQL(dataSource)
		if perr != nil {
			return nil, perr
		}
		connector, err = mysql.NewConnector(cfg)
	default:
		return nil, fmt.Errorf("no read-only session for database driver %q", driverName)
	}
	if err != nil {
		return nil, fmt.Errorf("the %s DSN is not valid", driverName)
	}
	return sql.OpenDB(Connector{Connector: connector, Stmt: Session[driverName]}), nil
}
