// Package resulttest holds the helpers the tests of result and
// result/xsdschema share. Only tests import it; it builds without cgo, as
// result does.
package resulttest

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/result"
)

// WriteFile writes content to name in a fresh temporary directory and
// returns its path.
func WriteFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

// RequireXSDRejection asserts that err is a *result.CheckError from the
// schema and returns its reason.
func RequireXSDRejection(t testing.TB, err error) string {
	t.Helper()
	checkErr, ok := errors.AsType[*result.CheckError](err)
	require.True(t, ok, "want a *CheckError, got %v", err)
	assert.Equal(t, result.FieldXSD, checkErr.Field)
	return checkErr.Reason
}
