package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/loginlimit"
)

// authenticator checks HTTP basic auth against the user name and a bcrypt
// hash, both compared in constant time. A bcrypt check is deliberately
// slow, so checks are rate limited, per client address first (a guesser
// gets 429s without using up the checks an operator elsewhere needs), then
// in all (the CPU stays free), and the digest of the last credentials that
// passed is remembered, so a logged-in browser does not pay for bcrypt on
// every page.
type authenticator struct {
	user    []byte
	hash    []byte
	log     *slog.Logger
	clock   clock.Clock
	logins  *loginlimit.Limiter // per client address
	limiter *rate.Limiter       // all checks together

	mu   sync.Mutex
	good [sha256.Size]byte // digest of the last user:password that passed bcrypt
	ok   bool
}

// bcryptRate and bcryptBurst bound the bcrypt checks per second, from all
// addresses together.
const (
	bcryptRate  = 5
	bcryptBurst = 10
)

func newAuthenticator(user string, hash []byte, log *slog.Logger, clk clock.Clock) *authenticator {
	return &authenticator{user: []byte(user), hash: hash, log: log, clock: clk,
		logins: loginlimit.New(), limiter: rate.NewLimiter(bcryptRate, bcryptBurst)}
}

// wrap lets a request through next only with the right credentials.
func (a *authenticator) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		switch verdict := a.check(ok, user, pass, r.RemoteAddr); verdict {
		case authOK:
			next.ServeHTTP(w, r)
		case authLimited, authLimitedAgain:
			if verdict == authLimited {
				a.log.Warn("admin: login attempts limited (further ones from this address are not logged until it gets an attempt again)",
					"addr", loginlimit.Key(r.RemoteAddr), "path", r.URL.Path)
			}
			w.Header().Set("Retry-After", strconv.Itoa(int(loginlimit.Every/time.Second)))
			text(w, http.StatusTooManyRequests, fmt.Sprintf("too many login attempts from your address; one more is allowed every %s\n", loginlimit.Every))
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
	authLimited      // the client address's budget is used up: the first such refusal
	authLimitedAgain // the same, again
	authThrottled    // the checks of all addresses together are used up
)

// check tells whether the credentials sent from remoteAddr pass.
func (a *authenticator) check(present bool, user, pass, remoteAddr string) authResult {
	if !present {
		return authRefused
	}
	digest := sha256.Sum256([]byte(user + ":" + pass))
	a.mu.Lock()
	remembered := a.ok && subtle.ConstantTimeCompare(digest[:], a.good[:]) == 1
	a.mu.Unlock()
	// Remembered credentials cost no bcrypt check, but an address that used
	// up its budget is refused them too: else its 429s for wrong passwords
	// and 200 for the right one would let it test passwords at full speed.
	if remembered && a.logins.HasRoom(remoteAddr, a.clock.Now()) {
		return authOK
	}
	// Charged to the address before the check, so parallel guesses cannot
	// outrun its budget; given back when the password is not checked after
	// all, or is right.
	switch a.logins.Take(remoteAddr, a.clock.Now()) {
	case loginlimit.Limited:
		return authLimited
	case loginlimit.LimitedAgain:
		return authLimitedAgain
	}
	if !a.limiter.Allow() {
		a.logins.Refund(remoteAddr)
		return authThrottled
	}
	userOK := subtle.ConstantTimeCompare([]byte(user), a.user) == 1
	passOK := bcrypt.CompareHashAndPassword(a.hash, []byte(pass)) == nil
	if !userOK || !passOK {
		return authRefused
	}
	a.logins.Refund(remoteAddr)
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
