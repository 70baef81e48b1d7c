package loginlimit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/cvbridge/cvbridge/bridge/loginlimit"
)

var epoch = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// TestBudget: an address gets Burst attempts, then one per Every; a
// refund gives one back; other addresses are not affected.
func TestBudget(t *testing.T) {
	t.Parallel()
	l := loginlimit.New()
	for i := range loginlimit.Burst {
		assert.Equal(t, loginlimit.Allowed, l.Take("192.0.2.1:1000", epoch), "attempt %d", i+1)
	}
	assert.Equal(t, loginlimit.Limited, l.Take("192.0.2.1:2000", epoch), "another port of the same address")
	assert.Equal(t, loginlimit.LimitedAgain, l.Take("192.0.2.1:1000", epoch), "refused again")
	assert.Equal(t, loginlimit.Allowed, l.Take("192.0.2.2:1000", epoch), "another address")

	l.Refund("192.0.2.1:1000")
	assert.Equal(t, loginlimit.Allowed, l.Take("192.0.2.1:1000", epoch), "refunded")
	assert.Equal(t, loginlimit.Limited, l.Take("192.0.2.1:1000", epoch), "the first refusal since an attempt")

	assert.Equal(t, loginlimit.LimitedAgain, l.Take("192.0.2.1:1000", epoch.Add(loginlimit.Every-time.Millisecond)))
	assert.Equal(t, loginlimit.Allowed, l.Take("192.0.2.1:1000", epoch.Add(loginlimit.Every)), "refilled after Every")
	assert.Equal(t, loginlimit.Limited, l.Take("192.0.2.1:1000", epoch.Add(loginlimit.Every)))

	// HasRoom tells without charging.
	assert.False(t, l.HasRoom("192.0.2.1:1000", epoch.Add(loginlimit.Every)))
	assert.True(t, l.HasRoom("192.0.2.1:1000", epoch.Add(2*loginlimit.Every)))
	assert.True(t, l.HasRoom("192.0.2.1:1000", epoch.Add(2*loginlimit.Every)), "asking charged nothing")
	assert.True(t, l.HasRoom("192.0.2.99:1", epoch), "an address never seen")
}

// TestKey: IPv4 addresses are their own budget, also written as IPv6;
// IPv6 addresses share their /64.
func TestKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.1:443":                 "192.0.2.1",
		"[::ffff:192.0.2.1]:443":        "192.0.2.1",
		"[2001:db8:1:2:aaaa::1]:443":    "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9%eth0]:1": "2001:db8:1:2::/64",
		"not an address":                "not an address",
	} {
		assert.Equal(t, want, loginlimit.Key(in), in)
	}
}

// TestManyAddresses: with the table full of addresses that used their
// budget, a new address is refused (fail closed); once their budgets are
// full again they are forgotten and a new address gets its attempts.
func TestManyAddresses(t *testing.T) {
	t.Parallel()
	l := loginlimit.New()
	for i := range 10000 {
		assert.Equal(t, loginlimit.Allowed, l.Take(fmt.Sprintf("10.%d.%d.1:1", i/256, i%256), epoch))
	}
	assert.Equal(t, loginlimit.Limited, l.Take("192.0.2.7:1", epoch), "table full")
	assert.Equal(t, loginlimit.LimitedAgain, l.Take("192.0.2.8:1", epoch), "table still full")
	assert.Equal(t, loginlimit.Allowed, l.Take("192.0.2.7:1", epoch.Add(loginlimit.Every)), "rested addresses forgotten")
}
