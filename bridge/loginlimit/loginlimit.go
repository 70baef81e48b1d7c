// Package loginlimit limits password attempts per client address, for the
// two sign-ins cvbridge serves: the dashboard's (bridge/admin) and the
// enrolment link's consent page (bridge/inbound/oauth). A guesser at one
// address uses up only that address's budget, so it cannot lock out an
// operator signing in from another.
package loginlimit

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Each attempt draws on its address's budget of Burst, refilled one per
// Every, before its password is checked; a successful sign-in gets its
// draw back (Refund).
const (
	Burst = 5
	Every = 10 * time.Second
	// maxAddrs bounds how many addresses are tracked; an address whose
	// budget is full again is forgotten to make room.
	maxAddrs = 10000
)

// Limiter limits sign-in attempts per client address. Checking and
// charging an attempt is one step under a lock, so concurrent attempts
// cannot all pass a check made before any of them was charged. The zero
// value is not usable: create one with New.
type Limiter struct {
	mu     sync.Mutex
	byAddr map[string]*budget
	// full is set while new addresses are refused for want of room.
	full bool
}

// budget is one address's token bucket: tokens left at time at.
type budget struct {
	tokens float64
	at     time.Time
	// refusing is set from a refusal until the address's next attempt.
	refusing bool
}

// Verdict is what Take decided about an attempt.
type Verdict int

const (
	// Allowed: the attempt was charged; check its password.
	Allowed Verdict = iota
	// Limited: refused, the first refusal since its address last had an
	// attempt (or since the table had room): worth a log line.
	Limited
	// LimitedAgain: refused, like the attempt before it; a guesser can send
	// these as fast as it likes, so they are not worth one line each.
	LimitedAgain
)

// refill brings b up to now.
func (b *budget) refill(now time.Time) {
	if now.After(b.at) {
		b.tokens = min(Burst, b.tokens+float64(now.Sub(b.at))/float64(Every))
		b.at = now
	}
}

// New returns a Limiter that has seen no attempt.
func New() *Limiter {
	return &Limiter{byAddr: map[string]*budget{}}
}

// Take charges an attempt from remoteAddr (an http.Request's RemoteAddr)
// at now if its budget has room for it. When very many addresses have
// attempts in their budgets at once it fails closed.
func (l *Limiter) Take(remoteAddr string, now time.Time) Verdict {
	key := Key(remoteAddr)
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.byAddr[key]
	if b == nil {
		if len(l.byAddr) >= maxAddrs {
			for k, other := range l.byAddr {
				if other.refill(now); other.tokens >= Burst {
					delete(l.byAddr, k)
				}
			}
		}
		if len(l.byAddr) >= maxAddrs {
			return refusal(&l.full)
		}
		l.full = false
		b = &budget{tokens: Burst, at: now}
		l.byAddr[key] = b
	}
	b.refill(now)
	if b.tokens < 1 {
		return refusal(&b.refusing)
	}
	b.tokens--
	b.refusing = false
	return Allowed
}

// HasRoom reports whether remoteAddr's budget has an attempt left at now,
// without charging it: credentials that need no check of their own (a
// password remembered as right) are still refused to an address that used
// up its budget, or a guesser could test passwords against them unchecked.
func (l *Limiter) HasRoom(remoteAddr string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.byAddr[Key(remoteAddr)]
	if b == nil {
		return len(l.byAddr) < maxAddrs
	}
	b.refill(now)
	return b.tokens >= 1
}

// refusal is Limited the first time, when *refusing is not yet set, and
// sets it; LimitedAgain after that.
func refusal(refusing *bool) Verdict {
	if *refusing {
		return LimitedAgain
	}
	*refusing = true
	return Limited
}

// Refund gives back an attempt remoteAddr was charged for: it signed in,
// or its attempt was not checked after all.
func (l *Limiter) Refund(remoteAddr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.byAddr[Key(remoteAddr)]; b != nil {
		b.tokens = min(Burst, b.tokens+1)
	}
}

// Key is the budget an address draws on, as logged: the IPv4 address, or
// the /64 network of an IPv6 address (one host usually holds a whole /64).
func Key(remoteAddr string) string {
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
