package source_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cvbridge/cvbridge/bridge/source"
)

// poller only polls.
type poller struct{}

func (poller) Poll(context.Context, source.Sink) error { return nil }

// enroller polls and has enrolment methods.
type enroller struct{ poller }

func (enroller) Enrol(context.Context, source.Enrolment) error { return nil }
func (enroller) Unenrol(context.Context, string, string) error { return nil }

func TestCapabilitiesVerify(t *testing.T) {
	t.Parallel()
	assert.NoError(t, source.Capabilities{DryRun: true}.Verify(poller{}))
	assert.ErrorContains(t, source.Capabilities{Enrol: true}.Verify(poller{}), "declares enrol but is no source.Enroller")
	assert.ErrorContains(t, source.Capabilities{Watch: true}.Verify(poller{}), "declares watch")
	assert.ErrorContains(t, source.Capabilities{Check: true}.Verify(poller{}), "declares check")
	assert.NoError(t, source.Capabilities{Enrol: true}.Verify(enroller{}))
}

// TestBuiltEnrollerFollowsTheDeclaration: a source whose type can enrol
// but whose settings do not allow it offers no enroller.
func TestBuiltEnrollerFollowsTheDeclaration(t *testing.T) {
	t.Parallel()
	assert.Nil(t, source.Built{Source: enroller{}}.Enroller())
	assert.NotNil(t, source.Built{Source: enroller{}, Caps: source.Capabilities{Enrol: true}}.Enroller())
	assert.Nil(t, source.Built{Source: poller{}}.Checker())
}

func TestPersonKey(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "p001", source.PersonKey("  P001\t"))
	assert.Equal(t, source.PersonKey("ABC"), source.PersonKey("abc"))
}
