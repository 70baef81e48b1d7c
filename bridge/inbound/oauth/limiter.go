package oauth

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Sign-in attempts on the consent page are limited per client address:
// each draws on the address's budget of loginBurst, refilled one per
// loginEvery, before its password is checked; a successful sign-in gets
// its draw back.
const (
	loginBurst = 5
	loginEvery = 10 * time.Second
	// loginAddrs bounds how many addresses are tracked; an address whose
	// budget is full again is forgotten to make room.
	loginAddrs = 10000
)

// loginLimiter limits sign-in attempts per client address. Checking and
// charging an attempt is one step under a lock, so concurrent attempts
// cannot all pass a check made before any of them was charged.
type loginLimiter struct {
	mu     sync.Mutex
	byAddr map[string]*budget
}

// budget is one address's token bucket: tokens left at time at.
type budget struct {
	tokens float64
	at     time.Time
}

// refill brings b up to now.
func (b *budget) refill(now time.Time) {
	if now.After(b.at) {
		b.tokens = min(loginBurst, b.tokens+float64(now.Sub(b.at))/float64(loginEvery))
		b.at = now
	}
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{byAddr: map[string]*budget{}}
}

// take charges an attempt from remoteAddr (an http.Request's RemoteAddr)
// at now, and reports whether its budget had room for it.
func (l *loginLimiter) take(remoteAddr string, now time.Time) bool {
	key := addrKey(remoteAddr)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.byAddr[key]
	if b == nil {
		if len(l.byAddr) >= loginAddrs {
			for k, other := range l.byAddr {
				if other.refill(now); other.tokens >= loginBurst {
					delete(l.byAddr, k)
				}
			}
		}
		if len(l.byAddr) >= loginAddrs {
			return false // attempts from very many addresses at once: fail closed
		}
		b = &budget{tokens: loginBurst, at: now}
		l.byAddr[key] = b
	}
	b.refill(now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// refund gives back the attempt remoteAddr was charged for.
func (l *loginLimiter) refund(remoteAddr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.byAddr[addrKey(remoteAddr)]; b != nil {
		b.tokens = min(loginBurst, b.tokens+1)
	}
}

// addrKey is the budget an address draws on: the IPv4 address, or the
// /64 network of an IPv6 address (one host usually holds a whole /64).
func addrKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	return netip.PrefixFrom(ip, 64).Masked().String()
}
