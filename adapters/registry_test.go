package adapters_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// testSettings are the settings of the kind "registrytest".
type testSettings struct {
	Every time.Duration `yaml:"every"`
	Name  string        `yaml:"name"`
	Enrol bool          `yaml:"enrol"`
}

func (s *testSettings) Validate(_ adapters.Connection, p *kit.Problems) {
	if s.Every <= 0 {
		p.Addf("every", "must be positive, got %s", s.Every)
	}
	if s.Name == "" {
		p.Addf("name", "required")
	}
	if strings.Contains(s.Name, " ") {
		p.Addf("name", "must not contain a space")
	}
	if len(s.Name) > 8 {
		p.Addf("name", "must be at most 8 characters, got %d", len(s.Name))
	}
}

func (s *testSettings) Capabilities() source.Capabilities { return source.Capabilities{Enrol: s.Enrol} }

// pollOnly is a source that cannot enrol.
type pollOnly struct{}

func (pollOnly) Poll(context.Context, source.Sink) error { return nil }

func init() {
	adapters.Register("registrytest", func() *testSettings { return &testSettings{Every: time.Minute} },
		func(_ adapters.Connection, s *testSettings) (source.Source, error) {
			if s.Name == "secret" {
				return nil, &kit.Problem{Key: "name", Msg: "cannot read it"}
			}
			return pollOnly{}, nil
		})
}

func buildTest(t *testing.T, settings string) (source.Built, error) {
	t.Helper()
	var node yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(settings), &node))
	return adapters.Build("registrytest", adapters.Connection{File: "lms.yaml"}, &node)
}

func TestBuild(t *testing.T) {
	t.Parallel()
	b, err := buildTest(t, "name: x\n")
	require.NoError(t, err)
	assert.Equal(t, pollOnly{}, b.Source)
	assert.Contains(t, adapters.Kinds(), "registrytest")

	_, err = buildTest(t, "every: 5\nnaam: x\n")
	assert.EqualError(t, err, "lms.yaml:1: every: \"5\" is not a duration: it needs a unit; write it like 5s, 5m or 5h\n"+
		"lms.yaml:1: name: required\n"+
		"lms.yaml:2: naam: unknown key (did you mean \"name\"?)",
		"decoding and validation report every mistake, a key once, by line")

	_, err = buildTest(t, "name: far too long\n")
	assert.EqualError(t, err, "lms.yaml:1: name: must not contain a space\n"+
		"lms.yaml:1: name: must be at most 8 characters, got 12",
		"two mistakes in one value are both reported")

	_, err = buildTest(t, "name: secret\nevery: 1h\n")
	assert.EqualError(t, err, "lms.yaml:1: name: cannot read it", "a mistake the builder finds is located too")

	_, err = buildTest(t, "name: x\nenrol: true\n")
	assert.ErrorContains(t, err, "declares enrol but is no source.Enroller")

	_, err = adapters.Build("nosuchkind", adapters.Connection{}, nil)
	assert.ErrorIs(t, err, adapters.ErrUnknownKind)
	assert.False(t, adapters.Known("nosuchkind"))
}

func TestRegisterTwicePanics(t *testing.T) {
	t.Parallel()
	assert.Panics(t, func() {
		adapters.Register("registrytest", func() *testSettings { return &testSettings{} },
			func(adapters.Connection, *testSettings) (source.Source, error) { return pollOnly{}, nil })
	})
}
