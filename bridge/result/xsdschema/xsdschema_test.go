package xsdschema_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/result/internal/resulttest"
	"github.com/cvbridge/cvbridge/bridge/result/xsdschema"
)

// goldenDir holds the exact XML the seed examples of package result produce.
var goldenDir = filepath.Join("..", "..", "..", "testdata", "result")

// bundledSchema parses the embedded XSD for one test and closes it after.
func bundledSchema(t testing.TB) *xsdschema.Schema {
	t.Helper()
	s, err := xsdschema.Bundled()
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(goldenDir, name))
	require.NoError(t, err)
	return doc
}

func TestSchemaValidate(t *testing.T) {
	t.Parallel()
	schema := bundledSchema(t)
	seed := string(readGolden(t, "seed1.xml"))

	cases := []struct {
		name       string
		doc        string
		wantReason string // "" means valid
	}{
		{"seed example with the xsi namespace declaration", seed, ""},
		{"seed example on Coachview's original single line",
			strings.ReplaceAll(seed, "\n", " "), ""},
		{"Geslaagd missing",
			strings.Replace(seed, `  <Geslaagd Resultaat="67%" Datum="2019-03-01" Opmerking="Voldoende">true</Geslaagd>`+"\n", "", 1),
			"rejected by bundled XSD: line 2: Element 'CoachviewResultaat': Missing child element(s). Expected is ( Geslaagd )."},
		{"Elearningcode missing",
			strings.Replace(seed, ` Elearningcode="e12345"`, "", 1),
			"rejected by bundled XSD: line 2: Element 'CoachviewResultaat': The attribute 'Elearningcode' is required but missing."},
		{"three fraction digits",
			strings.Replace(seed, `Resultaat="67%"`, `ResultaatDecimaal="6.745"`, 1),
			"rejected by bundled XSD: line 3: Element 'Geslaagd', attribute 'ResultaatDecimaal': [facet 'fractionDigits'] The value '6.745' has more fractional digits than are allowed ('2')."},
		{"Geslaagd not a boolean",
			strings.Replace(seed, ">true<", ">ja<", 1),
			"rejected by bundled XSD: line 3: Element 'Geslaagd': 'ja' is not a valid value of the atomic type 'xs:boolean'."},
		{"date in Dutch notation",
			strings.Replace(seed, `Datum="2019-01-03"`, `Datum="03-01-2019"`, 1),
			"rejected by bundled XSD: line 2: Element 'CoachviewResultaat', attribute 'Datum': '03-01-2019' is not a valid value of the atomic type 'xs:date'."},
		{"unknown attribute",
			strings.Replace(seed, `<Geslaagd `, `<Geslaagd Cijfer="8" `, 1),
			"rejected by bundled XSD: line 3: Element 'Geslaagd', attribute 'Cijfer': The attribute 'Cijfer' is not allowed."},
		{"not well-formed",
			strings.Replace(seed, "</CoachviewResultaat>", "", 1),
			"not well-formed XML: XML syntax error on line 5: unexpected EOF"},
		{"empty body", "", "not well-formed XML: Malformed xml document"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := schema.Validate([]byte(tc.doc))
			if tc.wantReason == "" {
				assert.NoError(t, err)
				return
			}
			assert.Equal(t, tc.wantReason, resulttest.RequireXSDRejection(t, err))
		})
	}
}

func TestSchemaValidateConcurrent(t *testing.T) {
	t.Parallel()
	schema := bundledSchema(t)
	valid := readGolden(t, "seed2.xml")
	invalid := []byte(strings.Replace(string(valid), `ResultaatDecimaal="6.7"`, `ResultaatDecimaal="6.745"`, 1))

	const workers, rounds = 8, 200
	var wg sync.WaitGroup
	var failures sync.Map
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				if (w+i)%2 == 0 {
					if err := schema.Validate(valid); err != nil {
						failures.Store("valid document rejected: "+err.Error(), true)
					}
					continue
				}
				err := schema.Validate(invalid)
				if checkErr, ok := errors.AsType[*result.CheckError](err); !ok || !strings.Contains(checkErr.Reason, "'6.745'") {
					failures.Store("invalid document: got "+errString(err), true)
				}
			}
		})
	}
	wg.Wait()
	failures.Range(func(k, _ any) bool {
		t.Error(k)
		return true
	})
}

func TestSchemaClose(t *testing.T) {
	t.Parallel()
	schema, err := xsdschema.Bundled()
	require.NoError(t, err)
	schema.Close()
	schema.Close()

	err = schema.Validate(readGolden(t, "seed1.xml"))
	require.Error(t, err)
	_, isCheck := errors.AsType[*result.CheckError](err)
	assert.False(t, isCheck, "a closed schema is a fault of the validator, not of the document")
	assert.EqualError(t, err, "result: validate against bundled XSD: schema is closed")
}

func TestSchemaCloseWhileValidating(t *testing.T) {
	t.Parallel()
	schema, err := xsdschema.Bundled()
	require.NoError(t, err)
	doc := readGolden(t, "seed1.xml")

	const workers = 4
	started := make(chan struct{}, workers)
	var wg sync.WaitGroup
	var failures sync.Map
	for range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				err := schema.Validate(doc)
				if err != nil {
					if err.Error() != "result: validate against bundled XSD: schema is closed" {
						failures.Store(err.Error(), true)
					}
					return
				}
				if i == 0 {
					started <- struct{}{}
				}
			}
		})
	}
	for range workers {
		<-started
	}
	schema.Close()
	wg.Wait()
	failures.Range(func(k, _ any) bool {
		t.Error(k)
		return true
	})
}

func TestLoadSchema(t *testing.T) {
	t.Parallel()

	t.Run("the bundled file from disk", func(t *testing.T) {
		t.Parallel()
		schema, err := xsdschema.Load(filepath.Join("..", "..", "..", "xsd", "coachview-resultaat.xsd"))
		require.NoError(t, err)
		t.Cleanup(schema.Close)
		assert.NoError(t, schema.Validate(readGolden(t, "seed1.xml")))
	})
	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "coachview.xsd")
		_, err := xsdschema.Load(path)
		require.ErrorIs(t, err, fs.ErrNotExist)
		assert.EqualError(t, err, "result: read XSD file: open "+path+": no such file or directory")
	})
	t.Run("empty file", func(t *testing.T) {
		t.Parallel()
		path := resulttest.WriteFile(t, "empty.xsd", "\n")
		_, err := xsdschema.Load(path)
		assert.EqualError(t, err, "result: XSD file "+path+" is empty")
	})
	t.Run("file that is not well-formed", func(t *testing.T) {
		t.Parallel()
		path := resulttest.WriteFile(t, "broken.xsd", `<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="CoachviewResultaat"
</xs:schema>
`)
		_, err := xsdschema.Load(path)
		require.Error(t, err)
		assert.Equal(t, "result: XSD file "+path+": Failed to parse the XML resource '"+path+
			"'. (XML syntax error on line 4: expected attribute name in element)", err.Error())
	})
	t.Run("well-formed but not a usable schema", func(t *testing.T) {
		t.Parallel()
		path := resulttest.WriteFile(t, "invalid.xsd", `<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="CoachviewResultaat" type="xs:nosuchtype"/>
</xs:schema>
`)
		_, err := xsdschema.Load(path)
		require.Error(t, err)
		assert.Equal(t, "result: XSD file "+path+": element decl. 'CoachviewResultaat', attribute 'type': "+
			"The QName value '{http://www.w3.org/2001/XMLSchema}nosuchtype' does not resolve to a(n) type definition.", err.Error())
	})
}
