// Package listen builds the bridge's public HTTP server (the enrolment link,
// its OAuth endpoints and the webhook receivers; never the admin
// endpoints): an http.Server with timeouts against slow clients, a cap on
// every request body, and an access log without personal data (method,
// path without query string, status, duration, bytes). TLS is configured
// by the caller on the returned server.
package listen

import (
	"log/slog"
	"net/http"
	"time"
)

// Config tunes the public server. Zero fields take their defaults.
type Config struct {
	// Addr is the listen address, e.g. ":8443". Required.
	Addr string `yaml:"addr"`
	// ReadHeaderTimeout bounds reading a request's headers (default 5s).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request (default 30s).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds handling and answering a request (default 60s;
	// it must exceed the enrolment link's sync_timeout).
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout bounds an idle keep-alive connection (default 120s).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxBody caps every request body in bytes (default 1 MiB); handlers
	// may cap lower.
	MaxBody int64 `yaml:"max_body"`
}

// NewServer returns a server for handler with cfg's timeouts, the body cap
// and the access log (to log) around it.
func NewServer(cfg Config, handler http.Handler, log *slog.Logger) *http.Server {
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = 5 * time.Second
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 60 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if log == nil {
		log = slog.Default()
	}
	return &http.Server{
		Addr:              cfg.Addr,
		Handler:           AccessLog(log, MaxBody(cfg.MaxBody, handler)),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// MaxBody caps the body of every request to next at n bytes: reading past
// it fails with *http.MaxBytesError, and a request whose Content-Length
// already exceeds it is answered 413 at once.
func MaxBody(n int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > n {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, n)
		next.ServeHTTP(w, r)
	})
}

// recorder notes the status and size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// AccessLog logs one line per request to next: method, path (never the
// query string, which may carry person ids), status, duration and response
// bytes.
func AccessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "http request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", rec.status),
			slog.Duration("duration", time.Since(start)), slog.Int64("bytes", rec.bytes))
	})
}
