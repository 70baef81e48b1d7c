package strictyaml_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/cvbridge/cvbridge/bridge/strictyaml"
)

func TestKeyLineFallsBackToEnclosingKey(t *testing.T) {
	t.Parallel()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("folder: drop\ncolumns:\n  person: P\n"), &doc))
	assert.Equal(t, 2, strictyaml.KeyLine(&doc, "columns.passed"), "line of columns when passed is absent")
	assert.Equal(t, 3, strictyaml.KeyLine(&doc, "columns.person"))
	assert.Equal(t, 1, strictyaml.KeyLine(&doc, "encoding"), "line of the mapping")
	assert.Equal(t, 0, strictyaml.KeyLine(nil, "folder"))
}

// TestDecodeReportsEveryMistake: unknown keys and wrongly typed values are
// all reported, each once, with file, line and key, in the operator's words.
func TestDecodeReportsEveryMistake(t *testing.T) {
	t.Parallel()
	var settings struct {
		Folder string `yaml:"folder"`
		Every  int    `yaml:"every"`
		Nested struct {
			On bool `yaml:"on"`
		} `yaml:"nested"`
	}
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("folder: drop\nevery: \"5\"\nnested:\n  on: maybe\n  of: x\n"), &doc))
	err := strictyaml.Decode("lms.yaml", &doc, &settings)
	var list strictyaml.Errors
	require.ErrorAs(t, err, &list)
	assert.Equal(t, "lms.yaml:2: every: \"5\" is quoted, which makes it text; write it without quotes\n"+
		"lms.yaml:4: nested.on: \"maybe\" is not true or false\n"+
		"lms.yaml:5: nested.of: unknown key (did you mean \"on\"?)", list.Sorted().Error())
	assert.Equal(t, "drop", settings.Folder, "decoding goes on past a mistake")
}

// TestMergedKeysAreChecked: a merge key (<<: *anchor) brings the anchored
// mapping's keys into this one; they are checked like the mapping's own,
// so a retry block merged into a target by mistake is reported, not
// silently dropped. A good merge decodes.
func TestMergedKeysAreChecked(t *testing.T) {
	t.Parallel()
	var settings struct {
		Timeout string `yaml:"timeout"`
		Every   int    `yaml:"every"`
	}
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(
		"defaults: &slow\n  transient: 1h\n  every: x\nsettings:\n  <<: [*slow]\n  timeout: 30s\n"), &doc))
	err := strictyaml.Decode("lms.yaml", settingsNode(&doc), &settings)
	var list strictyaml.Errors
	require.ErrorAs(t, err, &list)
	assert.Equal(t, "lms.yaml:2: transient: unknown key (known keys: every, timeout)\n"+
		"lms.yaml:3: every: \"x\" is not a whole number", list.Sorted().Error())

	require.NoError(t, yaml.Unmarshal([]byte("defaults: &d\n  every: 5\nsettings:\n  <<: *d\n  timeout: 30s\n"), &doc))
	require.NoError(t, strictyaml.Decode("lms.yaml", settingsNode(&doc), &settings))
	assert.Equal(t, 5, settings.Every)
}

// settingsNode is the value of the document's top-level key "settings".
func settingsNode(doc *yaml.Node) *yaml.Node {
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "settings" {
			return m.Content[i+1]
		}
	}
	return nil
}
