package simulator_test

import (
	"flag"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/simulator"
)

func parseFlags(args ...string) (simulator.Flags, error) {
	var f simulator.Flags
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.Bind(fs)
	return f, fs.Parse(args)
}

func TestBindDefaults(t *testing.T) {
	t.Parallel()
	f, err := parseFlags()
	require.NoError(t, err)
	assert.Equal(t, simulator.Flags{FailStatus: http.StatusServiceUnavailable}, f)
}

func TestFlagsApplied(t *testing.T) {
	t.Parallel()
	f, err := parseFlags("--fail-first", "2", "--retry-after", "30",
		"--person-status", "p1=404", "--person-status", "a=b=500, p3 = 500")
	require.NoError(t, err)
	assert.Equal(t, []string{"p1=404", "a=b=500", " p3 = 500"}, f.PersonStatus)

	h := newHarness(t, simulator.Options{})
	require.NoError(t, h.sim.ApplyFlags(f))

	for range 2 {
		got := h.post(t, resultXML("e1", "p2"))
		assert.Equal(t, 503, got.status)
		assert.Equal(t, "30", got.header.Get("Retry-After"))
	}
	assert.Equal(t, 404, h.post(t, resultXML("e1", "P1")).status)
	assert.Equal(t, 500, h.post(t, resultXML("e1", "A=B")).status, "a person id may contain '='")
	assert.Equal(t, 500, h.post(t, resultXML("e1", "p3")).status)
	assert.Equal(t, 200, h.post(t, resultXML("e1", "p2")).status)
}

func TestFlagStatus(t *testing.T) {
	t.Parallel()
	f, err := parseFlags("--status", "403")
	require.NoError(t, err)
	h := newHarness(t, simulator.Options{})
	require.NoError(t, h.sim.ApplyFlags(f))
	assert.Equal(t, 403, h.post(t, resultXML("e1", "p1")).status)
}

func TestBindRejectsBadPersonStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		value   string
		wantErr string
	}{
		{name: "no status", value: "p1", wantErr: `--person-status "p1": want PERSON=STATUS`},
		{name: "no person", value: "=404", wantErr: `want PERSON=STATUS`},
		{name: "status not a number", value: "p1=gone", wantErr: `"p1=gone": status is not a number`},
		{name: "status out of range", value: "p1=99", wantErr: `"p1=99": status 99 is not an HTTP status`},
		{name: "bad second entry", value: "p1=404,p2", wantErr: `"p2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseFlags("--person-status", tt.value)
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestApplyFlagsRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		flags   simulator.Flags
		wantErr string
	}{
		{name: "negative fail-first", flags: simulator.Flags{FailFirst: -1}, wantErr: "--fail-first -1"},
		{name: "fail-status out of range", flags: simulator.Flags{FailFirst: 1, FailStatus: 42}, wantErr: "--fail-status: status 42"},
		{name: "status out of range", flags: simulator.Flags{Status: 700}, wantErr: "--status: status 700"},
		{name: "bad person entry", flags: simulator.Flags{FailFirst: 3, FailStatus: 503, PersonStatus: []string{"p1:404"}}, wantErr: `--person-status "p1:404"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, simulator.Options{})
			err := h.sim.ApplyFlags(tt.flags)
			assert.ErrorContains(t, err, tt.wantErr)
			assert.Equal(t, 200, h.post(t, resultXML("e1", "p1")).status, "nothing applied after an error")
		})
	}
}
