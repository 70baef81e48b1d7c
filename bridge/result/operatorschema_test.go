package result_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/result/xsdschema"
	"github.com/cvbridge/cvbridge/xsd"
)

// writeFile writes content to name in a fresh temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

// requireXSDRejection asserts that err is a *CheckError from the schema and
// returns its reason.
func requireXSDRejection(t *testing.T, err error) string {
	t.Helper()
	checkErr, ok := errors.AsType[*result.CheckError](err)
	require.True(t, ok, "want a *CheckError, got %v", err)
	assert.Equal(t, result.FieldXSD, checkErr.Field)
	return checkErr.Reason
}

// TestStricterOperatorSchema: the renderer validates with the Validator it
// is given, here the operator's own, stricter XSD.
func TestStricterOperatorSchema(t *testing.T) {
	t.Parallel()
	// An operator's schema that only accepts percentages as free-text result.
	strict := strings.Replace(string(xsd.Resultaat),
		`<xs:attribute name="Resultaat" type="xs:string" use="optional"/>`,
		`<xs:attribute name="Resultaat" use="optional"><xs:simpleType><xs:restriction base="xs:string">`+
			`<xs:pattern value="[0-9]{1,3}%"/></xs:restriction></xs:simpleType></xs:attribute>`, 1)
	require.NotEqual(t, string(xsd.Resultaat), strict, "the bundled XSD no longer has the Resultaat declaration this test edits")
	path := writeFile(t, "coachview-official.xsd", strict)
	strictSchema, err := xsdschema.Load(path)
	require.NoError(t, err)
	t.Cleanup(strictSchema.Close)

	c := seedCompletion()
	c.ResultText = "voldoende"

	_, err = newRenderer(t, result.DefaultOptions()).Render(c)
	require.NoError(t, err, "the bundled schema accepts any free-text result")

	r, err := result.NewRenderer(result.DefaultOptions(), strictSchema)
	require.NoError(t, err)
	out, err := r.Render(c)
	assert.Nil(t, out)
	assert.Equal(t, "rejected by XSD file "+path+": line 3: Element 'Geslaagd', attribute 'Resultaat': "+
		"[facet 'pattern'] The value 'voldoende' is not accepted by the pattern '[0-9]{1,3}%'.",
		requireXSDRejection(t, err))

	c.ResultText = "67%"
	_, err = r.Render(c)
	assert.NoError(t, err)
}
