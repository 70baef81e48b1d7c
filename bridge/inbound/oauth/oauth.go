// Package oauth is the OAuth 2.0 authorisation server of Coachview's
// enrolment link (cvbridge is the server, Coachview the client): the
// authorization-code grant for confidential clients, PKCE (S256 only)
// required or optional per client, refresh tokens rotated on every use,
// short-lived access tokens. Clients (id, secret file, exact redirect URIs,
// PKCE setting) come from the configuration; codes and tokens are stored
// as SHA-256 hashes through inboundstore.TokenStore, so they survive
// restarts and work across daemons sharing a database. The authorization
// endpoint is this package's own, with a small login and consent page for
// the provider's administrator (bcrypt password hash from the
// configuration); the token endpoint is github.com/go-oauth2/oauth2/v4's
// over this package's token manager.
//
// Hardening over the library's defaults: redirect URIs must match a
// registered one exactly (the library's own check only compares host
// suffixes); a request naming an unknown client or an unregistered
// redirect URI gets an error page and is never redirected, every other
// authorization error goes back to the client (RFC 6749 §4.1.2.1); a code
// can be exchanged once, even by concurrent requests, and presenting a
// used code or rotated refresh token again revokes its whole grant, except
// that the same client presenting a just-rotated refresh token again
// within the grace window gets the same new pair (see
// manager.RefreshAccessToken); client secrets and the administrator's
// credentials are compared in constant time, and sign-in attempts are
// limited per client address; errors follow RFC 6749 §5.2 (400, or 401
// for invalid_client).
package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	oauth2 "github.com/go-oauth2/oauth2/v4"
	oerrors "github.com/go-oauth2/oauth2/v4/errors"
	"github.com/go-oauth2/oauth2/v4/server"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
	"github.com/cvbridge/cvbridge/bridge/loginlimit"
)

// Config is the authorisation server's configuration.
type Config struct {
	// AdminUser is the administrator's login name (default "admin").
	AdminUser string `yaml:"admin_user"`
	// AdminPasswordHashFile / AdminPasswordHashEnv hold the administrator's
	// bcrypt password hash (e.g. from `htpasswd -nbBC 12 "" secret | cut -d: -f2`). Required.
	AdminPasswordHashFile string `yaml:"admin_password_hash_file"`
	AdminPasswordHashEnv  string `yaml:"admin_password_hash_env"`
	// AccessTokenTTL is an access token's lifetime (default 1h).
	AccessTokenTTL time.Duration `yaml:"access_token_ttl"`
	// RefreshTokenTTL is a refresh token's lifetime, renewed with every
	// rotation (default 90 days).
	RefreshTokenTTL time.Duration `yaml:"refresh_token_ttl"`
	// CodeTTL is an authorization code's lifetime (default 5m).
	CodeTTL time.Duration `yaml:"code_ttl"`
	// RefreshReuseGrace is how long after a refresh the client may present
	// the refresh token it rotated again and get the same new pair, for a
	// lost answer or workers refreshing at once (nil: DefaultRefreshReuseGrace;
	// 0: never, the first repeat revokes the grant; at most MaxRefreshReuseGrace).
	RefreshReuseGrace *time.Duration `yaml:"refresh_reuse_grace"`
	// RequirePKCE is the former, server-wide PKCE setting, kept for existing
	// configurations: true makes PKCE required for every client (and a
	// client set to optional an error), false makes it optional for the
	// clients that have no pkce setting of their own. Use each client's
	// PKCE instead.
	RequirePKCE *bool `yaml:"require_pkce"`
	// Clients are the OAuth clients (Coachview).
	Clients []ClientConfig `yaml:"clients"`
}

// DefaultRefreshReuseGrace and MaxRefreshReuseGrace bound
// Config.RefreshReuseGrace.
const (
	DefaultRefreshReuseGrace = 30 * time.Second
	MaxRefreshReuseGrace     = 5 * time.Minute
)

// PKCE is a client's PKCE (RFC 7636) setting. Only the S256 method is
// accepted; a request that sends a code challenge is always verified.
type PKCE string

// The PKCE settings.
const (
	// PKCERequired refuses authorization requests without a code challenge
	// (the default).
	PKCERequired PKCE = "required"
	// PKCEOptional also accepts the plain authorization-code flow, where
	// the client secret alone protects the code exchange.
	PKCEOptional PKCE = "optional"
)

// UnmarshalYAML accepts only the known settings, so a misspelt one is a
// configuration error naming its line rather than a silent default.
func (p *PKCE) UnmarshalYAML(n *yaml.Node) error {
	v := PKCE(n.Value)
	if n.Kind != yaml.ScalarNode || (v != PKCERequired && v != PKCEOptional) {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a PKCE setting; use required or optional", n.Line, n.Value)}}
	}
	*p = v
	return nil
}

// ClientConfig is one OAuth client.
type ClientConfig struct {
	ID string `yaml:"id"`
	// Name is shown on the consent page (default: the id).
	Name string `yaml:"name"`
	// SecretFile / SecretEnv hold the client secret. Required.
	SecretFile string `yaml:"secret_file"`
	SecretEnv  string `yaml:"secret_env"`
	// RedirectURIs are the exact redirect URIs the client may use.
	RedirectURIs []string `yaml:"redirect_uris"`
	// PKCE says whether the client must use PKCE (default required).
	PKCE PKCE `yaml:"pkce"`
}

// client is a configured client as the library sees it.
type client struct {
	id, name     string
	secretHash   [32]byte
	uris         []string
	pkceRequired bool
	// rotationKey derives the pair a refresh issues from the refresh token
	// it rotates (see successor).
	rotationKey [32]byte
}

var (
	_ oauth2.ClientInfo             = (*client)(nil)
	_ oauth2.ClientPasswordVerifier = (*client)(nil)
)

func (c *client) GetID() string     { return c.id }
func (c *client) GetSecret() string { return "" } // never handed out; see VerifyPassword
func (c *client) IsPublic() bool    { return false }
func (c *client) GetUserID() string { return "" }

// GetDomain lists the redirect URIs, space-separated (a space cannot occur
// in a URI), for the exact-match validator.
func (c *client) GetDomain() string { return strings.Join(c.uris, " ") }

// VerifyPassword compares secret with the client's in constant time.
func (c *client) VerifyPassword(secret string) bool {
	h := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(h[:], c.secretHash[:]) == 1
}

// successor returns the access and refresh token that rotating refresh
// token refresh of grant issues: HMAC-SHA256 under the client's rotation
// key, so that every daemon sharing the configuration can give a client
// that repeats a refresh the same pair again, while nobody without the
// server's configured secrets can compute it from the refresh token.
func (c *client) successor(grant, refresh string) (access, next string) {
	derive := func(label string) string {
		mac := hmac.New(sha256.New, c.rotationKey[:])
		for _, part := range []string{label, grant, refresh} {
			mac.Write([]byte(part))
			mac.Write([]byte{0})
		}
		return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	}
	return derive("access"), derive("refresh")
}

// rotationKey is a client's key for successor: the administrator's
// password hash and the client's secret, both secrets of the server's
// configuration (the client knows only its own), so daemons sharing the
// configuration share the key.
func rotationKey(adminHash, id, secret string) [32]byte {
	mac := hmac.New(sha256.New, []byte(adminHash))
	for _, part := range []string{"cvbridge oauth refresh rotation", id, secret} {
		mac.Write([]byte(part))
		mac.Write([]byte{0})
	}
	var k [32]byte
	copy(k[:], mac.Sum(nil))
	return k
}

// exactRedirect checks that redirect equals one of the space-separated
// registered URIs exactly.
func exactRedirect(registered, redirect string) error {
	if redirect != "" && slices.Contains(strings.Fields(registered), redirect) {
		return nil
	}
	return oerrors.ErrInvalidRedirectURI
}

// Server is the authorisation server: its authorize and token endpoints
// and the bearer check of the resources it protects.
type Server struct {
	srv     *server.Server
	mgr     *manager
	clients map[string]*client
	user    string
	pwHash  []byte
	clock   clock.Clock
	log     *slog.Logger
	logins  *loginlimit.Limiter
}

// New checks cfg, reads its secret files and returns the server, storing
// codes and tokens in store. clk (nil: the system clock) decides when
// stored codes and tokens expire.
func New(cfg Config, store inboundstore.TokenStore, clk clock.Clock, log *slog.Logger) (*Server, error) {
	if clk == nil {
		clk = clock.System{}
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.AdminUser == "" {
		cfg.AdminUser = "admin"
	}
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = time.Hour
	}
	if cfg.RefreshTokenTTL <= 0 {
		cfg.RefreshTokenTTL = 90 * 24 * time.Hour
	}
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = 5 * time.Minute
	}
	grace := DefaultRefreshReuseGrace
	if cfg.RefreshReuseGrace != nil {
		grace = *cfg.RefreshReuseGrace
	}
	if grace < 0 || grace > MaxRefreshReuseGrace {
		return nil, fmt.Errorf("oauth: refresh_reuse_grace is %s; use 0 (off) up to %s", grace, MaxRefreshReuseGrace)
	}
	hash, err := kit.ReadOptionalSecret("", cfg.AdminPasswordHashFile, cfg.AdminPasswordHashEnv)
	if err != nil {
		return nil, fmt.Errorf("oauth: admin_password_hash: %w", err)
	}
	if hash == "" {
		return nil, errors.New("oauth: set admin_password_hash_file or admin_password_hash_env (a bcrypt hash)")
	}
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return nil, fmt.Errorf("oauth: admin password hash is not a bcrypt hash: %w", err)
	}
	s := &Server{clients: map[string]*client{}, user: cfg.AdminUser, pwHash: []byte(hash),
		clock: clk, log: log, logins: loginlimit.New()}
	if len(cfg.Clients) == 0 {
		return nil, errors.New("oauth: no clients configured")
	}
	for i, cc := range cfg.Clients {
		c, err := newClient(cc, cfg.RequirePKCE, hash)
		if err != nil {
			return nil, fmt.Errorf("oauth: clients[%d]: %w", i, err)
		}
		if s.clients[c.id] != nil {
			return nil, fmt.Errorf("oauth: clients[%d]: id %q configured twice", i, c.id)
		}
		s.clients[c.id] = c
	}

	mgr := &manager{clients: clientStore(s.clients), store: store, clock: clk, log: log,
		codeTTL: cfg.CodeTTL, accessTTL: cfg.AccessTokenTTL, refreshTTL: cfg.RefreshTokenTTL, grace: grace}
	// Only the token endpoint is the library's; AuthorizeHandler is this
	// package's own, so the authorization settings are not given here.
	srv := server.NewServer(&server.Config{
		TokenType:         "Bearer",
		AllowedGrantTypes: []oauth2.GrantType{oauth2.AuthorizationCode, oauth2.Refreshing},
	}, mgr)
	srv.ClientInfoHandler = s.clientCredentials
	srv.AccessTokenResolveHandler = bearerToken
	// The library consults this before it checks the allowed grant types.
	srv.PasswordAuthorizationHandler = func(context.Context, string, string, string) (string, error) {
		return "", oerrors.ErrUnsupportedGrantType
	}
	srv.InternalErrorHandler = s.internalError
	srv.ResponseErrorHandler = rfcStatus
	s.srv, s.mgr = srv, mgr
	return s, nil
}

// newClient checks one client's configuration and reads its secret;
// requireAll is the server-wide require_pkce, adminHash the
// administrator's password hash.
func newClient(cc ClientConfig, requireAll *bool, adminHash string) (*client, error) {
	if cc.ID == "" {
		return nil, errors.New("id is empty")
	}
	pkce := cc.PKCE
	switch {
	case pkce != "" && pkce != PKCERequired && pkce != PKCEOptional:
		return nil, fmt.Errorf("client %q: pkce is %q; use required or optional", cc.ID, pkce)
	case pkce == PKCEOptional && requireAll != nil && *requireAll:
		return nil, fmt.Errorf("client %q: pkce: optional contradicts require_pkce: true; remove require_pkce (each client's pkce replaces it)", cc.ID)
	case pkce == "" && requireAll != nil && !*requireAll:
		pkce = PKCEOptional
	case pkce == "":
		pkce = PKCERequired
	}
	sec, err := kit.ReadOptionalSecret("", cc.SecretFile, cc.SecretEnv)
	if err != nil {
		return nil, fmt.Errorf("client %q: secret: %w", cc.ID, err)
	}
	if len(sec) < 16 {
		return nil, fmt.Errorf("client %q: set secret_file or secret_env to a secret of at least 16 characters", cc.ID)
	}
	if len(cc.RedirectURIs) == 0 {
		return nil, fmt.Errorf("client %q: redirect_uris is empty", cc.ID)
	}
	for _, u := range cc.RedirectURIs {
		p, err := url.Parse(u)
		if err != nil || !p.IsAbs() || p.Fragment != "" || strings.ContainsAny(u, " \t\r\n") {
			return nil, fmt.Errorf("client %q: redirect URI %q is not an absolute URI without fragment", cc.ID, u)
		}
		if p.Scheme != "https" && p.Hostname() != "localhost" && p.Hostname() != "127.0.0.1" {
			return nil, fmt.Errorf("client %q: redirect URI %q must use https", cc.ID, u)
		}
	}
	name := cc.Name
	if name == "" {
		name = cc.ID
	}
	return &client{id: cc.ID, name: name, secretHash: sha256.Sum256([]byte(sec)), uris: cc.RedirectURIs,
		pkceRequired: pkce == PKCERequired, rotationKey: rotationKey(adminHash, cc.ID, sec)}, nil
}

// clientStore is the library's client store over the configured clients.
type clientStore map[string]*client

// GetByID returns the configured client id.
func (cs clientStore) GetByID(_ context.Context, id string) (oauth2.ClientInfo, error) {
	if c, ok := cs[id]; ok {
		return c, nil
	}
	return nil, oerrors.ErrInvalidClient
}

// clientCredentials reads the client's credentials from HTTP Basic
// authentication or, failing that, from the form (client_secret_post).
// RFC 6749 §2.3.1 wants Basic credentials form-urlencoded first; clients
// that send them raw are common, so the raw value is accepted too where
// it is the credential: the id when only it names a client, the secret
// when the form-decoded one does not match. The manager authenticates the
// secret returned.
func (s *Server) clientCredentials(r *http.Request) (string, string, error) {
	if id, sec, ok := r.BasicAuth(); ok {
		if uid, err := url.QueryUnescape(id); err == nil && s.clients[uid] != nil {
			id = uid
		}
		c := s.clients[id]
		if c == nil {
			return "", "", oerrors.ErrInvalidClient
		}
		if usec, err := url.QueryUnescape(sec); err == nil && c.VerifyPassword(usec) {
			return id, usec, nil
		}
		return id, sec, nil
	}
	id, sec := r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	if id == "" || sec == "" {
		return "", "", oerrors.ErrInvalidClient
	}
	return id, sec, nil
}

// bearerToken takes the access token from the Authorization header only
// (tokens in query strings end up in logs).
func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// internalError maps the library's errors that have no RFC 6749 code to
// the right one, and logs real server errors.
func (s *Server) internalError(err error) *oerrors.Response {
	switch {
	case errors.Is(err, oerrors.ErrInvalidRedirectURI), errors.Is(err, oerrors.ErrMissingCodeVerifier),
		errors.Is(err, oerrors.ErrInvalidRefreshToken), errors.Is(err, oerrors.ErrExpiredRefreshToken),
		errors.Is(err, oerrors.ErrInvalidAuthorizeCode), errors.Is(err, oerrors.ErrInvalidCodeChallenge):
		return &oerrors.Response{Error: oerrors.ErrInvalidGrant, Description: oerrors.Descriptions[oerrors.ErrInvalidGrant]}
	}
	s.log.Error("oauth: server error", slog.String("error", err.Error()))
	return nil
}

// rfcStatus gives error responses RFC 6749 §5.2's status codes: 401 with a
// Basic challenge for invalid_client, 500/503 for server errors, 400 for
// the rest.
func rfcStatus(re *oerrors.Response) {
	switch re.Error {
	case oerrors.ErrInvalidClient:
		re.StatusCode = http.StatusUnauthorized
		re.SetHeader("WWW-Authenticate", `Basic realm="cvbridge"`)
	case oerrors.ErrServerError:
		re.StatusCode = http.StatusInternalServerError
	case oerrors.ErrTemporarilyUnavailable:
		re.StatusCode = http.StatusServiceUnavailable
	default:
		re.StatusCode = http.StatusBadRequest
	}
}

// noRedirectURI marks, in a token request's context, a code exchange
// without redirect_uri (see TokenHandler).
type noRedirectURI struct{}

// redirectOmitted reports whether ctx is of a code exchange without
// redirect_uri.
func redirectOmitted(ctx context.Context) bool {
	omitted, _ := ctx.Value(noRedirectURI{}).(bool)
	return omitted
}

// TokenHandler is the token endpoint (POST, form-encoded).
func (s *Server) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		// Parameters come in the body only (RFC 6749 §3.2): a code or a
		// refresh token in the URL would end up in proxies' logs.
		if r.URL.RawQuery != "" {
			w.Header().Set("Content-Type", "application/json;charset=UTF-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_request","error_description":"send the parameters in the request body (application/x-www-form-urlencoded), not in the URL"}`))
			return
		}
		// The library demands redirect_uri in every code exchange; RFC 6749
		// §4.1.3 only when the authorization request had one. A placeholder
		// gets the request past the library, and the context tells the
		// manager that none was sent. An unreadable form is left to the
		// library, which answers it.
		if r.ParseForm() == nil && r.Form.Get("grant_type") == string(oauth2.AuthorizationCode) && r.Form.Get("redirect_uri") == "" {
			r = r.WithContext(context.WithValue(r.Context(), noRedirectURI{}, true))
			r.Form.Set("redirect_uri", "-")
		}
		if err := s.srv.HandleTokenRequest(w, r); err != nil {
			s.log.Error("oauth: token response not written", slog.String("error", err.Error()))
		}
	})
}

// Authorize lets through requests with a live access token; others get 401
// with an RFC 6750 WWW-Authenticate challenge (error="invalid_token" when a
// token was sent but is unknown, revoked or expired), or 503 when the token
// store cannot be read. It implements link.Authorizer.
func (s *Server) Authorize(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := bearerToken(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cvbridge"`)
		http.Error(w, "An access token is required (Authorization: Bearer).", http.StatusUnauthorized)
		return false
	}
	_, err := s.mgr.LoadAccessToken(r.Context(), tok)
	switch {
	case err == nil:
		return true
	case errors.Is(err, oerrors.ErrInvalidAccessToken), errors.Is(err, oerrors.ErrExpiredAccessToken),
		errors.Is(err, oerrors.ErrExpiredRefreshToken):
		w.Header().Set("WWW-Authenticate", `Bearer realm="cvbridge", error="invalid_token", error_description="The access token is invalid, revoked or expired"`)
		http.Error(w, "The access token is invalid, revoked or expired.", http.StatusUnauthorized)
	default:
		s.log.Error("oauth: access token not checked", slog.String("error", err.Error()))
		http.Error(w, "The bridge cannot check access tokens now; please try again later.", http.StatusServiceUnavailable)
	}
	return false
}
