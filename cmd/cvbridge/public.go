package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/cvbridge/cvbridge/bridge/config"
	"github.com/cvbridge/cvbridge/bridge/inbound/listen"
)

// publicListener is the listener Coachview calls. It lives as long as the
// process: a reload swaps its handler and its certificate, so connections
// are not dropped and a renewed certificate is picked up on SIGHUP.
type publicListener struct {
	srv     *http.Server
	handler swapHandler
	hosts   *listen.HostCheck
	certs   certificates
	addr    string
}

// certificates serves the current certificate: a file pair or ACME.
type certificates struct {
	current atomic.Pointer[tlsMaterial]
}

// tlsMaterial is one configuration's certificate source.
type tlsMaterial struct {
	pair  *tls.Certificate  // from cert_file and key_file
	acme  *autocert.Manager // or automatic
	names []string          // the host names it holds certificates for
}

// aeadSuites are the TLS 1.2 cipher suites offered: forward secret and
// authenticated encryption only (TLS 1.3 has only such suites). Go's default
// list also holds CBC-SHA1 suites for old clients; Coachview needs none.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// hostPolicy is the Host check of the public listener: public.hosts, else
// the names of its certificates, else (TLS off behind a proxy) none.
func hostPolicy(p config.Public, m *tlsMaterial) listen.HostPolicy {
	switch {
	case len(p.Hosts) > 0:
		return listen.HostPolicy{Names: p.Hosts}
	case m == nil:
		return listen.HostPolicy{Any: true}
	}
	return listen.HostPolicy{Names: m.names}
}

// loadTLS reads a configuration's certificate source; an error refuses
// the configuration (at start or reload) before anything changes.
func loadTLS(t config.TLS) (*tlsMaterial, error) {
	switch {
	case t.Off:
		return nil, nil
	case t.CertFile != "":
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("public.tls: certificate %s and key %s: %w", t.CertFile, t.KeyFile, err)
		}
		return &tlsMaterial{pair: &pair, names: pair.Leaf.DNSNames}, nil
	default:
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Cache:      autocert.DirCache(t.ACME.CacheDir),
			HostPolicy: autocert.HostWhitelist(t.ACME.Hosts...),
			Email:      t.ACME.Email,
		}
		if t.ACME.DirectoryURL != "" {
			m.Client = &acme.Client{DirectoryURL: t.ACME.DirectoryURL}
		}
		return &tlsMaterial{acme: m, names: t.ACME.Hosts}, nil
	}
}

func (c *certificates) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	m := c.current.Load()
	switch {
	case m == nil:
		return nil, errors.New("no certificate configured")
	case m.acme != nil:
		return m.acme.GetCertificate(hello)
	default:
		return m.pair, nil
	}
}

// startPublic starts the public listener of cfg, or returns nil when it is off.
func startPublic(cfg *config.Config, log *slog.Logger) (*publicListener, error) {
	if !cfg.Public.Enabled() {
		return nil, nil
	}
	material, err := loadTLS(cfg.Public.TLS)
	if err != nil {
		return nil, err
	}
	p := &publicListener{addr: cfg.Public.Addr}
	p.hosts = listen.NewHostCheck(hostPolicy(cfg.Public, material), &p.handler)
	p.srv = listen.NewServer(cfg.Public.Config, p.hosts, log)
	ln, err := net.Listen("tcp", cfg.Public.Addr)
	if err != nil {
		return nil, fmt.Errorf("public listener (public.addr): %w", err)
	}
	scheme := "http"
	if material != nil {
		p.certs.current.Store(material)
		p.srv.TLSConfig = &tls.Config{
			MinVersion:     tls.VersionTLS12,
			CipherSuites:   aeadSuites,
			GetCertificate: p.certs.get,
			// acme-tls/1 answers ACME's TLS-ALPN-01 challenge on this port.
			NextProtos: []string{"h2", "http/1.1", acme.ALPNProto},
		}
		ln = tls.NewListener(ln, p.srv.TLSConfig)
		scheme = "https"
	}
	go func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("public listener stopped", "error", err)
		}
	}()
	log.Info("public listener", "address", scheme+"://"+ln.Addr().String()+"/")
	return p, nil
}

// swap points the listener at a reloaded daemon, its host names and its
// certificate (nil: keep the certificate).
func (p *publicListener) swap(h http.Handler, cfg config.Public, material *tlsMaterial) {
	if h == nil {
		h = http.NotFoundHandler()
	}
	p.handler.set(h)
	if material != nil {
		p.certs.current.Store(material)
	}
	p.hosts.Set(hostPolicy(cfg, p.certs.current.Load()))
}
