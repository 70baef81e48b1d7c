package example_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/cvbridge/cvbridge/adapters"
	_ "github.com/cvbridge/cvbridge/adapters/example"
	"github.com/cvbridge/cvbridge/adapters/kit/kittest"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// build builds an example source from the settings YAML of the LMS file
// lms.d/example.yaml, through the registry as the core does, with files
// relative to dir.
func build(t *testing.T, dir, settings string) (source.Built, error) {
	t.Helper()
	var node yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(settings), &node))
	c := adapters.Connection{Name: "example", File: filepath.Join(dir, "lms.d", "example.yaml"), BaseDir: dir}
	return adapters.Build("example", c, &node)
}

func TestPollCommitsNewLines(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "results.jsonl")
	require.NoError(t, os.WriteFile(file, []byte(
		`{"person": "P001", "passed": true, "date": "2024-03-14"}`+"\n"+
			`{"person": "P002", "code": "E-9", "passed": false}`+"\n"), 0o600))
	built, err := build(t, dir, "file: results.jsonl\ncode: E-1\n")
	require.NoError(t, err)
	assert.True(t, built.Caps.DryRun)
	assert.Nil(t, built.Enroller(), "the example cannot enrol")

	ctx := context.Background()
	dry := kittest.NewSink()
	dry.Dry = true
	require.NoError(t, built.Source.Poll(ctx, dry))
	assert.Zero(t, dry.Commits(), "a dry run stores nothing")

	sink := kittest.NewSink()
	require.NoError(t, built.Source.Poll(ctx, sink))
	got := sink.Queued()
	require.Len(t, got, 2)
	assert.Equal(t, "P001", got[0].PersonID)
	assert.Equal(t, "E-1", got[0].ElearningCode, "the default code")
	assert.Equal(t, "2024-03-14", got[0].CompletedAt.Format("2006-01-02"))
	assert.Equal(t, "E-9", got[1].ElearningCode)
	assert.Equal(t, file+":2", got[1].SourceRef)

	require.NoError(t, built.Source.Poll(ctx, sink))
	assert.Equal(t, 1, sink.Commits(), "nothing new, nothing committed")

	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"person": "P003", "passed": true}` + "\n" + `{"person": "P004", "date": "14-03-2024"}` + "\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	err = built.Source.Poll(ctx, sink)
	assert.EqualError(t, err, file+`:4: date "14-03-2024" is not a date such as 2024-03-14`)
	assert.Len(t, sink.Queued(), 2, "a bad line commits nothing of its batch")
	assert.Equal(t, "2", string(sink.LastCursor()))
}

func TestSettingsMistakes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := build(t, dir, "fiel: results.jsonl\ncode: "+strings.Repeat("E", 51)+"\n")
	require.Error(t, err)
	lms := filepath.Join(dir, "lms.d", "example.yaml")
	assert.Equal(t, lms+`:1: fiel: unknown key (did you mean "file"?)`+"\n"+
		lms+`:1: file: required: the JSON-lines file to read completions from`+"\n"+
		lms+`:2: code: must be at most 50 characters, got 51`, err.Error())
}
