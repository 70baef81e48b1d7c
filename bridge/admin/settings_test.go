package admin_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/cvbridge/cvbridge/bridge/admin"
)

func TestSettingsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*admin.Settings)
		want   string // "" means valid
	}{
		{name: "defaults", change: func(*admin.Settings) {}},
		{name: "ipv6 loopback", change: func(s *admin.Settings) { s.Listen = "[::1]:9585" }},
		{name: "localhost", change: func(s *admin.Settings) { s.Listen = "localhost:9585" }},
		{name: "private address with password", change: func(s *admin.Settings) { s.Listen = "10.0.0.5:9585"; s.PasswordHashFile = "/etc/cvbridge/admin.hash" }},
		{name: "all interfaces without password", change: func(s *admin.Settings) { s.Listen = ":9585" }, want: "listen: \":9585\" is reachable from other hosts"},
		{name: "no port", change: func(s *admin.Settings) { s.Listen = "127.0.0.1" }, want: "listen: \"127.0.0.1\" is not host:port"},
		{name: "empty user", change: func(s *admin.Settings) { s.User = " " }, want: "user: must be a non-empty name"},
		{name: "host names", change: func(s *admin.Settings) { s.Hosts = []string{"bridge.example.nl", "*.opleider.nl"} }},
		{name: "host with port", change: func(s *admin.Settings) { s.Hosts = []string{"bridge.example.nl:9585"} }, want: `hosts: "bridge.example.nl:9585" is not a host name`},
		{name: "both hash sources", change: func(s *admin.Settings) { s.PasswordHashFile, s.PasswordHashEnv = "f", "E" }, want: "password_hash_file: set either"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := admin.DefaultSettings()
			tt.change(&s)
			err := s.Validate()
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestSettingsPasswordHash(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	require.NoError(t, err)
	dir := t.TempDir()
	good := filepath.Join(dir, "admin.hash")
	require.NoError(t, os.WriteFile(good, append(hash, '\n'), 0o600))
	plain := filepath.Join(dir, "plain")
	require.NoError(t, os.WriteFile(plain, []byte("hunter2\n"), 0o600))
	t.Setenv("CVBRIDGE_TEST_ADMIN_HASH", string(hash))

	tests := []struct {
		name string
		s    admin.Settings
		want []byte
		err  string
	}{
		{name: "none", s: admin.Settings{}},
		{name: "file, newline trimmed", s: admin.Settings{PasswordHashFile: good}, want: hash},
		{name: "env", s: admin.Settings{PasswordHashEnv: "CVBRIDGE_TEST_ADMIN_HASH"}, want: hash},
		{name: "missing file", s: admin.Settings{PasswordHashFile: filepath.Join(dir, "nope")}, err: "password_hash_file"},
		{name: "unset env", s: admin.Settings{PasswordHashEnv: "CVBRIDGE_TEST_UNSET"}, err: "CVBRIDGE_TEST_UNSET is not set"},
		{name: "plain password", s: admin.Settings{PasswordHashFile: plain}, err: "not a bcrypt hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.PasswordHash()
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				assert.NotContains(t, err.Error(), "hunter2", "the file's content is never echoed")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
