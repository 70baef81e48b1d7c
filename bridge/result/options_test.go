package result_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/result"
)

func TestDefaultOptions(t *testing.T) {
	t.Parallel()
	opts := result.DefaultOptions()
	require.NotNil(t, opts.Location)
	assert.Equal(t, "Europe/Amsterdam", opts.Location.String())
	assert.Equal(t, 2, opts.Decimals)
	assert.Equal(t, result.RoundHalfUp, opts.Rounding)
	assert.False(t, opts.Attendance)
	assert.NoError(t, opts.Validate())
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		edit    func(*result.Options)
		wantErr string // "" means valid
	}{
		{"zero decimals", func(o *result.Options) { o.Decimals = 0 }, ""},
		{"half even", func(o *result.Options) { o.Rounding = result.RoundHalfEven }, ""},
		{"down", func(o *result.Options) { o.Rounding = result.RoundDown }, ""},
		{"UTC", func(o *result.Options) { o.Location = time.UTC }, ""},
		{"no time zone", func(o *result.Options) { o.Location = nil },
			"result: options: time zone (Location) is not set"},
		{"three decimals", func(o *result.Options) { o.Decimals = 3 },
			"result: options: decimals is 3, must be 0, 1 or 2"},
		{"negative decimals", func(o *result.Options) { o.Decimals = -1 },
			"result: options: decimals is -1, must be 0, 1 or 2"},
		{"unknown rounding", func(o *result.Options) { o.Rounding = "ceiling" },
			`result: options: rounding is "ceiling", must be one of "half_up", "half_even", "down"`},
		{"empty rounding", func(o *result.Options) { o.Rounding = "" },
			`result: options: rounding is "", must be one of "half_up", "half_even", "down"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := result.DefaultOptions()
			tc.edit(&opts)
			err := opts.Validate()
			if tc.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			assert.EqualError(t, err, tc.wantErr)
		})
	}
}

func TestNewRendererRejects(t *testing.T) {
	t.Parallel()
	bad := result.DefaultOptions()
	bad.Decimals = 5
	_, err := result.NewRenderer(bad, bundledSchema(t))
	assert.EqualError(t, err, "result: options: decimals is 5, must be 0, 1 or 2")

	_, err = result.NewRenderer(result.DefaultOptions(), nil)
	assert.EqualError(t, err, "result: renderer needs a schema: every document is validated before it leaves")
}
