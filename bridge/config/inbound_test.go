package config_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/inbound"
)

func TestKeepMessages(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	ok := []struct {
		name    string
		inbound string
		want    time.Duration
	}{
		{"default", "", inbound.DefaultKeepMessages},
		{"default follows a longer personal data retention", "  personal_data_retention: 2880h\n", 120 * day},
		{"set", "  keep_messages: 720h\n", 30 * day},
		{"as short as Coachview's resends", "  personal_data_retention: 0s\n  keep_messages: 72h\n", 72 * time.Hour},
		{"forever", "  keep_messages: 0s\n", 0},
	}
	for _, tc := range ok {
		main := minimalMain
		if tc.inbound != "" {
			main = "inbound:\n" + tc.inbound + minimalMain
		}
		cfg, err := config.Load(writeConfig(t, main, nil))
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.want, cfg.Inbound.MessageKeep(), tc.name)
	}

	bad := []struct {
		name, inbound, contains string
		line                    int
	}{
		{"negative", "  keep_messages: -1h\n", "must not be negative", 2},
		{"shorter than Coachview's resends", "  personal_data_retention: 0s\n  keep_messages: 48h\n", "shorter than the 72h0m0s Coachview resends", 3},
		{"shorter than the personal data retention", "  personal_data_retention: 1440h\n  keep_messages: 720h\n", "shorter than inbound.personal_data_retention", 3},
	}
	for _, tc := range bad {
		_, err := config.Load(writeConfig(t, "inbound:\n"+tc.inbound+minimalMain, nil))
		require.Error(t, err, tc.name)
		var cerr *config.Error
		require.ErrorAs(t, err, &cerr, tc.name)
		assert.Equal(t, "cvbridge.yaml", filepath.Base(cerr.File), tc.name)
		assert.Equal(t, tc.line, cerr.Line, "%s: %v", tc.name, err)
		assert.Equal(t, "inbound.keep_messages", cerr.Key, tc.name)
		assert.Contains(t, err.Error(), tc.contains, tc.name)
	}
}
