// Package testdb gives tests a database of their own on a real PostgreSQL or
// MariaDB server, created fresh for the test and dropped when it ends, so
// tests run in parallel and leave nothing behind.
//
// The servers are found through CVBRIDGE_TEST_POSTGRES and
// CVBRIDGE_TEST_MYSQL (a DSN with admin rights), falling back to the local
// defaults. When no server answers, the test is skipped with a message that
// says how to run it — unless CI is set, where a missing database is a
// failure, never a silent skip.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/lib/pq" // the postgres driver
)

// Default admin DSNs of the local servers.
const (
	DefaultPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultMySQL    = "root@tcp(127.0.0.1:3306)/"
)

// PostgresAdminDSN is the DSN of the PostgreSQL server tests use.
func PostgresAdminDSN() string {
	if dsn := os.Getenv("CVBRIDGE_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return DefaultPostgres
}

// MySQLAdminDSN is the DSN of the MariaDB/MySQL server tests use.
func MySQLAdminDSN() string {
	if dsn := os.Getenv("CVBRIDGE_TEST_MYSQL"); dsn != "" {
		return dsn
	}
	return DefaultMySQL
}

// Postgres creates an empty database for the test and returns its DSN. The
// database is dropped when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := PostgresAdminDSN()
	db := connect(t, "postgres", admin, "PostgreSQL", "CVBRIDGE_TEST_POSTGRES")
	name := uniqueName()
	execAdmin(t, db, "CREATE DATABASE "+name)
	t.Cleanup(func() {
		// WITH (FORCE) ends connections a failed test left open (PostgreSQL 13+).
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("testdb: drop %s: %v", name, err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("testdb: close the admin connection: %v", err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil || u.Scheme == "" {
		// key=value form
		return strings.TrimSpace(admin) + " dbname=" + name
	}
	u.Path = "/" + name
	return u.String()
}

// MySQL creates an empty database for the test and returns its DSN (with
// parseTime=true). The database is dropped when the test ends.
func MySQL(t testing.TB) string {
	t.Helper()
	admin := MySQLAdminDSN()
	db := connect(t, "mysql", admin, "MariaDB/MySQL", "CVBRIDGE_TEST_MYSQL")
	name := uniqueName()
	execAdmin(t, db, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
	t.Cleanup(func() {
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Errorf("testdb: drop %s: %v", name, err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("testdb: close the admin connection: %v", err)
		}
	})
	cfg, err := mysql.ParseDSN(admin)
	if err != nil {
		t.Fatalf("testdb: CVBRIDGE_TEST_MYSQL is not a valid DSN: %v", err)
	}
	cfg.DBName = name
	cfg.ParseTime = true
	cfg.MultiStatements = true
	return cfg.FormatDSN()
}

// connect opens the admin connection, or skips (fails under CI) when the
// server does not answer.
func connect(t testing.TB, driver, dsn, server, envVar string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if db != nil {
			_ = db.Close() // never used: the failed ping is the error
		}
		msg := fmt.Sprintf("testdb: no %s server reachable (%v). Start one, or point %s at one "+
			"(e.g. %s), to run this test", server, err, envVar, map[string]string{"postgres": DefaultPostgres, "mysql": DefaultMySQL}[driver])
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI is set, so a missing database is a failure")
		}
		t.Skip(msg)
	}
	return db
}

func execAdmin(t testing.TB, db *sql.DB, stmt string) {
	t.Helper()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatalf("testdb: %s: %v", stmt, err)
	}
}

// uniqueName returns a database name no other test uses.
func uniqueName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "cvb_test_" + hex.EncodeToString(b)
}
