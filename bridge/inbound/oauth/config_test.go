package oauth_test

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/inbound/internal/fakes"
	"github.com/cvbridge/cvbridge/bridge/inbound/oauth"
)

// decodeConfig decodes src as the oauth section of a configuration file.
func decodeConfig(t *testing.T, src string) (oauth.Config, error) {
	t.Helper()
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(src), &n))
	var c oauth.Config
	err := config.DecodeStrict("cvbridge.yaml", &n, &c)
	return c, err
}

func TestPKCESettingInTheConfigFile(t *testing.T) {
	t.Parallel()
	t.Run("unknown value: file, line and key", func(t *testing.T) {
		_, err := decodeConfig(t, "clients:\n  - id: coachview\n    pkce: requird\n")
		var cerr *config.Error
		require.True(t, errors.As(err, &cerr), "%v", err)
		assert.Equal(t, "cvbridge.yaml", cerr.File)
		assert.Equal(t, 3, cerr.Line)
		assert.Equal(t, "clients[0].pkce", cerr.Key)
		assert.Contains(t, cerr.Msg, `"requird"`)
		assert.Contains(t, cerr.Msg, "required or optional")
	})
	t.Run("require_pkce: false still makes it optional", func(t *testing.T) {
		c, err := decodeConfig(t, "require_pkce: false\n")
		require.NoError(t, err)
		e := newEnv(t, func(cfg *oauth.Config) { cfg.RequirePKCE = c.RequirePKCE })
		q := authorizeQuery()
		q.Del("code_challenge")
		q.Del("code_challenge_method")
		code := e.code(q)
		tr := e.token(map[string][]string{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}, clientID, clientSecret)
		assert.Equal(t, 200, tr.status, tr.Error)
	})
	t.Run("require_pkce: true contradicts pkce: optional", func(t *testing.T) {
		c, err := decodeConfig(t, "require_pkce: true\nclients:\n  - id: coachview\n    pkce: optional\n")
		require.NoError(t, err)
		hash, err := bcrypt.GenerateFromPassword([]byte(adminPass), bcrypt.MinCost)
		require.NoError(t, err)
		c.AdminPasswordHashFile = writeFile(t, "hash", string(hash))
		c.Clients[0].SecretFile = writeFile(t, "secret", clientSecret)
		c.Clients[0].RedirectURIs = []string{redirectURI}
		clk := clock.NewFake(time.Now())
		_, err = oauth.New(c, fakes.Store(t, clk), clk, slog.New(slog.DiscardHandler))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "require_pkce")
		assert.Contains(t, err.Error(), "pkce: optional")
	})
}
