package listen

import (
	"net"
	"net/http"
	"strings"
	"sync/atomic"
)

// HostPolicy says which Host headers a listener serves, against DNS
// rebinding: a page of a foreign site whose name was re-pointed at the
// bridge's address reaches it with that site's name as Host, and is refused.
// IP literals and loopback names (localhost and names under .localhost) are
// always served: a rebinding attack needs a name of the attacker's.
type HostPolicy struct {
	// Names are the host names served besides, compared case-insensitively;
	// "*.example.org" serves every name one or more labels below example.org.
	Names []string
	// Any serves every Host: the check is off (a listener behind a proxy
	// whose public name the bridge is not told).
	Any bool
}

// Allows reports whether a request for host (with or without a port) is served.
func (p HostPolicy) Allows(host string) bool {
	if p.Any {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" {
		return false
	}
	if net.ParseIP(host) != nil || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	for _, n := range p.Names {
		n = strings.TrimSuffix(strings.ToLower(n), ".")
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			if strings.HasSuffix(host, "."+rest) {
				return true
			}
			continue
		}
		if host == n {
			return true
		}
	}
	return false
}

// HostCheck serves next only requests whose Host the current policy allows;
// others are answered 421 Misdirected Request, before any handler runs. The
// policy can be replaced while serving (a reload), through Set.
type HostCheck struct {
	policy atomic.Pointer[HostPolicy]
	next   http.Handler
}

// NewHostCheck returns next behind policy.
func NewHostCheck(policy HostPolicy, next http.Handler) *HostCheck {
	h := &HostCheck{next: next}
	h.Set(policy)
	return h
}

// Set replaces the policy.
func (h *HostCheck) Set(policy HostPolicy) { h.policy.Store(&policy) }

func (h *HostCheck) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.policy.Load().Allows(r.Host) {
		http.Error(w, "this server does not serve that host name", http.StatusMisdirectedRequest)
		return
	}
	h.next.ServeHTTP(w, r)
}
