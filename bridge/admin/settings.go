package admin

import (
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/bridge/strictyaml"
)

// DefaultListen is the admin listener's default address: loopback only.
const DefaultListen = "127.0.0.1:9585"

// DefaultUser is the user name the admin password goes with unless user says otherwise.
const DefaultUser = "admin"

// Settings are the admin listener's keys (the admin: section of cvbridge.yaml).
// Start from DefaultSettings, decode over it, then call Validate.
type Settings struct {
	// Listen is the host:port of the admin listener. It serves /healthz,
	// /readyz, /metrics and the dashboard over plain HTTP, so it belongs on
	// loopback or a private network; any other address needs a password.
	Listen string `yaml:"listen"`
	// User is the HTTP basic-auth user name of the dashboard.
	User string `yaml:"user"`
	// PasswordHashFile is a file holding the bcrypt hash of the dashboard
	// password (for example the output of `htpasswd -nbBC 12 "" PASSWORD | tr -d ':\n'`).
	// With neither it nor PasswordHashEnv set, the dashboard asks for no password.
	PasswordHashFile string `yaml:"password_hash_file"`
	// PasswordHashEnv names an environment variable holding that hash instead.
	PasswordHashEnv string `yaml:"password_hash_env"`
	// Hosts are the host names the dashboard is reached by, besides IP
	// addresses and localhost, which always work. A request naming any other
	// host is refused (421), so a page of a foreign site cannot reach the
	// dashboard through DNS rebinding. "*.example.org" allows names below it.
	Hosts []string `yaml:"hosts"`
}

// DefaultSettings returns the settings used for every key the admin section leaves out.
func DefaultSettings() Settings {
	return Settings{Listen: DefaultListen, User: DefaultUser}
}

// HasPassword reports whether the settings name a password hash.
func (s Settings) HasPassword() bool {
	return s.PasswordHashFile != "" || s.PasswordHashEnv != ""
}

// Validate reports every invalid setting as strictyaml.Errors, each naming
// its key, so the configuration can name the key's line. It does not read
// the hash; PasswordHash does.
func (s Settings) Validate() error {
	var errs strictyaml.Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, &strictyaml.Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	host, port, err := net.SplitHostPort(s.Listen)
	switch {
	case err != nil:
		bad("listen", "%q is not host:port such as %q: %v", s.Listen, DefaultListen, err)
	case port == "":
		bad("listen", "%q has no port; the default is %q", s.Listen, DefaultListen)
	case !loopback(host) && !s.HasPassword():
		bad("listen", "%q is reachable from other hosts, so the dashboard needs a password: set password_hash_file or password_hash_env, or listen on 127.0.0.1", s.Listen)
	}
	if strings.TrimSpace(s.User) == "" || strings.Contains(s.User, ":") {
		bad("user", "must be a non-empty name without ':', got %q", s.User)
	}
	if s.PasswordHashFile != "" && s.PasswordHashEnv != "" {
		bad("password_hash_file", "set either password_hash_file or password_hash_env, not both")
	}
	for _, h := range s.Hosts {
		if h == "" || strings.ContainsAny(h, ":/ ") {
			bad("hosts", "%q is not a host name such as bridge.example.nl (no port, no scheme)", h)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// loopback reports whether host (from host:port) only accepts local connections.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// PasswordHash reads the bcrypt hash named by password_hash_file or
// password_hash_env; it returns nil when neither is set. The hash is checked
// to be a bcrypt hash, so a plain password put there by mistake is refused at
// start-up rather than at the first login.
func (s Settings) PasswordHash() ([]byte, error) {
	var raw []byte
	var from string
	switch {
	case s.PasswordHashFile != "":
		from = "password_hash_file " + s.PasswordHashFile
		b, err := os.ReadFile(s.PasswordHashFile)
		if err != nil {
			return nil, fmt.Errorf("admin: %s: %w", "password_hash_file", err)
		}
		raw = b
	case s.PasswordHashEnv != "":
		from = "password_hash_env " + s.PasswordHashEnv
		if err := kit.CheckEnvName(s.PasswordHashEnv); err != nil {
			return nil, fmt.Errorf("admin: password_hash_env %w", err)
		}
		v, ok := os.LookupEnv(s.PasswordHashEnv)
		if !ok {
			return nil, fmt.Errorf("admin: password_hash_env: the environment variable %s is not set", s.PasswordHashEnv)
		}
		raw = []byte(v)
	default:
		return nil, nil
	}
	hash := []byte(strings.TrimSpace(string(raw)))
	if err := checkHash(hash); err != nil {
		return nil, fmt.Errorf("admin: %s: %w", from, err)
	}
	return hash, nil
}

// checkHash reports whether hash is a bcrypt hash.
func checkHash(hash []byte) error {
	if _, err := bcrypt.Cost(hash); err != nil {
		return fmt.Errorf("not a bcrypt hash (expected \"$2a$\", \"$2b$\" or \"$2y$\" followed by the cost and 53 characters): %w", err)
	}
	return nil
}
