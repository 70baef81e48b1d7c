package result_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/result/internal/resulttest"
	"github.com/cvbridge/cvbridge/bridge/result/xsdschema"
	"github.com/cvbridge/cvbridge/xsd"
)

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
	path := resulttest.WriteFile(t, "coachview-official.xsd", strict)
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
		resulttest.RequireXSDRejection(t, err))

	c.ResultText = "67%"
	_, err = r.Render(c)
	assert.NoError(t, err)
}
