package sqlcore

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/cvbridge/cvbridge/bridge/outbox"
)

func TestExcerpt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantLen int
	}{
		{"short", "Bad Request", len("Bad Request")},
		{"exactly the limit", strings.Repeat("x", outbox.MaxResponseExcerpt), outbox.MaxResponseExcerpt},
		{"ASCII over the limit", strings.Repeat("x", 5000), outbox.MaxResponseExcerpt},
		{"cut inside a 2-byte rune", "a" + strings.Repeat("é", 2000), outbox.MaxResponseExcerpt - 1},
		{"cut inside a 4-byte rune", "ab" + strings.Repeat("😀", 1000), outbox.MaxResponseExcerpt - 2},
		{"invalid UTF-8 replaced", "\xff\xfe", len("\uFFFD")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := (&Base{text: func(s string) string { return s }}).Excerpt(tc.in)
			assert.Len(t, got, tc.wantLen)
			assert.True(t, strings.HasPrefix(strings.ToValidUTF8(tc.in, "\uFFFD"), got))
		})
	}
}
