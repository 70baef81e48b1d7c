package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
	"net/http"
	"sync"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"
)

// authenticator checks HTTP basic auth against the user name and a bcrypt
// hash, both compared in constant time. A bcrypt check is deliberately
// slow, so it is rate limited (a guesser gets 429s, the CPU stays free), and
// the digest of the last credentials that passed is remembered, so a
// logged-in browser does not pay for bcrypt on every page.
type authenticator struct {
	user    []byte
	hash    []byte
	log     *slog.Logger
	limiter *rate.Limiter

	mu   sync.Mutex
	good [sha256.Size]byte // digest of the last user:password that passed bcrypt
	ok   bool
}

// bcryptRate and bcryptBurst bound the bcrypt checks per second.
const (
	bcryptRate  = 5
	bcryptBurst = 10
)

func newAuthenticator(user string, hash []byte, log *slog.Logger) *authenticator {
	return &authenticator{user: []byte(user), hash: hash, log: log, limiter: rate.NewLimiter(bcryptRate, bcryptBurst)}
}

// wrap lets a request through next only with the right credentials.
func (a *authenticator) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		switch a.check(ok, user, pass) {
		case authOK:
			next.ServeHTTP(w, r)
		case authThrottled:
			w.Header().Set("Retry-After", "1")
			text(w, http.StatusTooManyRequests, "too many login attempts; try again in a second\n")
		default:
			if ok {
				// The user name is not logged: it may be a mistyped password.
				a.log.Warn("admin: refused a login with a wrong user name or password", "remote", r.RemoteAddr, "path", r.URL.Path)
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="cvbridge admin", charset="UTF-8"`)
			text(w, http.StatusUnauthorized, "the cvbridge dashboard needs its user name and password\n")
		}
	})
}

type authResult int

const (
	authRefused authResult = iota
	authOK
	authThrottled
)

func (a *authenticator) check(present bool, user, pass string) authResult {
	if !present {
		return authRefused
	}
	digest := sha256.Sum256([]byte(user + ":" + pass))
	a.mu.Lock()
	remembered := a.ok && subtle.ConstantTimeCompare(digest[:], a.good[:]) == 1
	a.mu.Unlock()
	if remembered {
		return authOK
	}
	if !a.limiter.Allow() {
		return authThrottled
	}
	userOK := subtle.ConstantTimeCompare([]byte(user), a.user) == 1
	passOK := bcrypt.CompareHashAndPassword(a.hash, []byte(pass)) == nil
	if !userOK || !passOK {
		return authRefused
	}
	a.mu.Lock()
	a.good, a.ok = digest, true
	a.mu.Unlock()
	return authOK
}

// csrfCookie is the cookie of the double-submit token.
const csrfCookie = "cvbridge_csrf"

// csrfField is the hidden form field carrying the token.
const csrfField = "csrf"

// csrfKey signs form tokens. It is random per process: a restart makes
// open dashboards' forms stale (refused with a request to reload).
type csrfKey [32]byte

// token returns the form token for a browser's cookie value: an HMAC of it,
// so a cookie planted by someone else (from a sibling host) is useless
// without this process's key.
func (k *csrfKey) token(cookie string) string {
	m := hmac.New(sha256.New, k[:])
	m.Write([]byte("cvbridge admin form\x00" + cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// valid reports whether r carries the cookie and the matching form token.
func (k *csrfKey) valid(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || !wellFormed(c.Value) {
		return false
	}
	got := r.PostFormValue(csrfField)
	return hmac.Equal([]byte(got), []byte(k.token(c.Value)))
}

// ensure returns the browser's cookie value, setting a fresh one when it has none.
func (k *csrfKey) ensure(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && wellFormed(c.Value) {
		return c.Value
	}
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	v := base64.RawURLEncoding.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{
		Name: csrfCookie, Value: v, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil,
	})
	return v
}

// wellFormed reports whether v looks like a cookie value ensure made.
func wellFormed(v string) bool {
	b, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil && len(b) == 32
}
