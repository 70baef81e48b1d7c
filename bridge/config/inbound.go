package config

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cvbridge/cvbridge/bridge/inbound"
	"github.com/cvbridge/cvbridge/bridge/inbound/link"
	"github.com/cvbridge/cvbridge/bridge/inbound/listen"
	"github.com/cvbridge/cvbridge/bridge/inbound/oauth"
	"github.com/cvbridge/cvbridge/bridge/inbound/webhook"
)

// Public is the listener Coachview calls: the enrolment link with its OAuth
// endpoints, and the API webhooks. It is off while Addr is empty.
type Public struct {
	listen.Config `yaml:",inline"`
	TLS           TLS `yaml:"tls"`
	// Hosts are the host names Coachview reaches the listener by (the Host
	// header); requests for other names are refused (421) against DNS
	// rebinding. IP addresses and localhost always work. Default: the ACME
	// hosts, or the DNS names of the certificate; with tls.off and no hosts,
	// every name is served (the proxy in front decides).
	Hosts []string `yaml:"hosts"`
}

// TLS says how the public listener gets its certificate. Coachview calls
// only https on port 443 with a valid certificate.
type TLS struct {
	// CertFile and KeyFile are a PEM certificate chain and key, re-read on
	// every reload (SIGHUP), so a renewed certificate is picked up.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ACME gets certificates automatically (Let's Encrypt by default),
	// answering the TLS-ALPN-01 challenge on the listener itself.
	ACME ACME `yaml:"acme"`
	// Off serves plain HTTP, for a TLS-terminating proxy (nginx, Caddy) in
	// front; allowed on loopback addresses only.
	Off bool `yaml:"off"`
}

// ACME configures automatic certificates.
type ACME struct {
	// Hosts are the only names certificates are requested for.
	Hosts []string `yaml:"hosts"`
	// Email is the contact address given to the certificate authority.
	Email string `yaml:"email"`
	// CacheDir keeps account key and certificates (acme/ in the state directory).
	CacheDir string `yaml:"cache_dir"`
	// DirectoryURL is the ACME directory (Let's Encrypt production when empty).
	DirectoryURL string `yaml:"directory_url"`
}

// Inbound configures enrolments from Coachview.
type Inbound struct {
	// EnrolmentLink is Coachview's enrolment link (needs oauth clients).
	EnrolmentLink EnrolmentLink `yaml:"enrolment_link"`
	// OAuth is the authorisation server protecting the enrolment link.
	OAuth oauth.Config `yaml:"oauth"`
	// Webhooks are Coachview API webhook subscriptions, one path each.
	Webhooks []webhook.Config `yaml:"webhooks"`
	// Retry is how transient LMS errors are retried.
	inbound.RetryPolicy `yaml:",inline"`
	// PersonalDataRetention is how long names, e-mail addresses and raw
	// bodies of processed requests are kept before they are erased (720h).
	PersonalDataRetention *time.Duration `yaml:"personal_data_retention"`
	// KeepMessages is how long processed requests are kept before they are
	// deleted (2160h, or personal_data_retention when that is longer; 0
	// keeps them forever). It must be at least personal_data_retention and
	// 72h, the time Coachview resends a webhook for.
	KeepMessages *time.Duration `yaml:"keep_messages"`
}

// Retention is the effective personal_data_retention.
func (in Inbound) Retention() time.Duration {
	if in.PersonalDataRetention == nil {
		return inbound.DefaultPersonalDataRetention
	}
	return *in.PersonalDataRetention
}

// MessageKeep is the effective keep_messages: how long processed requests
// are kept before they are deleted, 0 for forever.
func (in Inbound) MessageKeep() time.Duration {
	if in.KeepMessages == nil {
		return max(inbound.DefaultKeepMessages, in.Retention())
	}
	return *in.KeepMessages
}

// EnrolmentLink is the endpoint Coachview's enrolment link calls.
type EnrolmentLink struct {
	// Path is the endpoint's path (/coachview/enrolment).
	Path        string `yaml:"path"`
	link.Config `yaml:",inline"`
}

// Enabled reports whether the public listener runs.
func (p Public) Enabled() bool { return p.Addr != "" }

// resolveInbound checks the public and inbound sections and makes their
// file paths absolute.
func (c *Config) resolveInbound(fail func(key, format string, args ...any) error) Errors {
	var errs Errors
	bad := func(key, format string, args ...any) { errs.Add(fail(key, format, args...)) }
	in := &c.Inbound
	if in.Retention() < 0 {
		bad("inbound.personal_data_retention", "must not be negative (0 erases as soon as a request is processed)")
	}
	if keep := in.MessageKeep(); keep != 0 {
		switch {
		case keep < 0:
			bad("inbound.keep_messages", "must not be negative (0 keeps processed requests forever)")
		case keep < inbound.MinKeepMessages:
			bad("inbound.keep_messages", "%s is shorter than the %s Coachview resends a webhook for: a resend of a deleted request would be carried out again; use at least %s, or 0 to keep requests forever",
				keep, inbound.MinKeepMessages, inbound.MinKeepMessages)
		case keep < in.Retention():
			bad("inbound.keep_messages", "%s is shorter than inbound.personal_data_retention (%s): requests are erased of personal data before they are deleted, so keep them at least as long",
				keep, in.Retention())
		}
	}
	configured := len(in.Webhooks) > 0 || len(in.OAuth.Clients) > 0
	if !c.Public.Enabled() {
		if configured {
			bad("public.addr", "inbound webhooks or OAuth clients are configured, but the public listener is off: set public.addr (e.g. \":443\")")
		}
		return errs
	}
	if !configured {
		bad("public.addr", "the public listener has nothing to serve: configure inbound.oauth.clients (the enrolment link) or inbound.webhooks, or leave public.addr empty")
	}
	t := &c.Public.TLS
	modes := 0
	if t.CertFile != "" || t.KeyFile != "" {
		modes++
		if t.CertFile == "" || t.KeyFile == "" {
			bad("public.tls.cert_file", "cert_file and key_file go together")
		}
	}
	if len(t.ACME.Hosts) > 0 {
		modes++
	}
	if t.Off {
		modes++
		host, _, err := net.SplitHostPort(c.Public.Addr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			bad("public.tls.off", "plain HTTP is allowed on a loopback address only (behind a proxy that terminates TLS), not on %q", c.Public.Addr)
		}
	}
	if modes != 1 {
		bad("public.tls", "choose exactly one: cert_file and key_file, acme.hosts, or off (behind a TLS proxy)")
	}
	for _, h := range c.Public.Hosts {
		if h == "" || strings.ContainsAny(h, ":/ ") {
			bad("public.hosts", "%q is not a host name such as bridge.example.nl (no port, no scheme)", h)
		}
	}
	t.CertFile, t.KeyFile = c.Abs(t.CertFile), c.Abs(t.KeyFile)
	if len(t.ACME.Hosts) > 0 && t.ACME.CacheDir == "" {
		t.ACME.CacheDir = filepath.Join(c.StateDir(), "acme")
	}
	t.ACME.CacheDir = c.Abs(t.ACME.CacheDir)

	if in.EnrolmentLink.Path == "" {
		in.EnrolmentLink.Path = "/coachview/enrolment"
	}
	if !strings.HasPrefix(in.EnrolmentLink.Path, "/") {
		bad("inbound.enrolment_link.path", "must start with /")
	}
	in.OAuth.AdminPasswordHashFile = c.Abs(in.OAuth.AdminPasswordHashFile)
	for i := range in.OAuth.Clients {
		in.OAuth.Clients[i].SecretFile = c.Abs(in.OAuth.Clients[i].SecretFile)
	}
	paths := map[string]string{in.EnrolmentLink.Path: "inbound.enrolment_link.path", "/oauth/authorize": "(oauth)", "/oauth/token": "(oauth)"}
	for i := range in.Webhooks {
		w := &in.Webhooks[i]
		w.SigningSecretFile, w.TokenFile = c.Abs(w.SigningSecretFile), c.Abs(w.TokenFile)
		if other, dup := paths[w.Path]; dup {
			bad(fmt.Sprintf("inbound.webhooks[%d].path", i), "%q is also used by %s", w.Path, other)
		}
		paths[w.Path] = fmt.Sprintf("inbound.webhooks[%d]", i)
	}
	// The OAuth server and the webhook receivers check the rest of their
	// settings, and read their secrets, when they are built. They are built
	// here once, without a store, so every mistake is reported now with its
	// line, among the others; the daemon builds them again to serve.
	discard := slog.New(slog.DiscardHandler)
	if len(in.OAuth.Clients) > 0 {
		if _, err := oauth.New(in.OAuth, nil, nil, discard); err != nil {
			bad("inbound.oauth", "%s", strings.TrimPrefix(err.Error(), "oauth: "))
		}
	}
	for i, wc := range in.Webhooks {
		if _, err := webhook.New(wc, nil, nil, discard); err != nil {
			bad(fmt.Sprintf("inbound.webhooks[%d]", i), "%v", err)
		}
	}
	return errs
}

// PackagedConfigDir and PackagedStateDir are where the Debian package puts
// the configuration and where its unit keeps the state (StateDirectory=).
const (
	PackagedConfigDir = "/etc/cvbridge"
	PackagedStateDir  = "/var/lib/cvbridge"
)

// StateDir is where the state (the SQLite outbox, ACME certificates) lives
// when the configuration does not say, by one rule that gives the service
// and a shell the same answer: systemd's $STATE_DIRECTORY when set; else,
// for the packaged configuration in /etc/cvbridge, the unit's state
// directory /var/lib/cvbridge (so `cvbridge outbox list` reads the outbox
// the service writes); else the configuration file's directory.
func (c *Config) StateDir() string {
	if dir := strings.Split(os.Getenv("STATE_DIRECTORY"), ":")[0]; dir != "" {
		return dir
	}
	if c.Dir() == PackagedConfigDir {
		return PackagedStateDir
	}
	return c.Dir()
}
