package csvdrop

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScanContent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        string
		utf8, bom bool
	}{
		{"ascii", "a;b\n1;2\n", true, false},
		{"utf-8 multibyte", "naam\nJosé Brontë €\n", true, false},
		{"utf-8 with bom", "\xef\xbb\xbfnaam\nJosé\n", true, true},
		{"windows-1252", "naam\nJos\xe9 Bront\xeb \x80\n", false, false},
		{"truncated rune at end", "naam\nJos\xc3", false, false},
		{"stray continuation byte", "a\x80b", false, false},
		{"four-byte rune", "emoji \U0001F600 ok", true, false},
		{"empty", "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sum := sha256.Sum256([]byte(tt.in))
			// One byte per read puts every rune across a write boundary.
			info, err := scanContent(iotest.OneByteReader(bytes.NewReader([]byte(tt.in))))
			require.NoError(t, err)
			assert.Equal(t, tt.utf8, info.utf8, "utf8")
			assert.Equal(t, tt.bom, info.bom, "bom")
			assert.Equal(t, int64(len(tt.in)), info.size)
			assert.Equal(t, hex.EncodeToString(sum[:]), info.sum)

			info, err = scanContent(bytes.NewReader([]byte(tt.in)))
			require.NoError(t, err)
			assert.Equal(t, tt.utf8, info.utf8, "utf8 in one read")
		})
	}
}

func TestScanContentReadError(t *testing.T) {
	t.Parallel()
	_, err := scanContent(iotest.ErrReader(assert.AnError))
	assert.ErrorIs(t, err, assert.AnError)
}

func TestSniffDelimiter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		head string
		want rune
	}{
		{"semicolon", "a;b;c\n1,5;2;3\n", ';'},
		{"comma", "a,b,c\n", ','},
		{"tab", "a\tb\tc\r\n", '\t'},
		{"quoted delimiters do not count", `"a,b,c";d;e` + "\n", ';'},
		{"only the first line counts", "a;b\n1,2,3,4,5\n", ';'},
		{"tie goes to semicolon", "a;b,c\n", ';'},
		{"single column", "naam\n", ';'},
		{"no newline", "a,b", ','},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, string(tt.want), string(sniffDelimiter([]byte(tt.head))))
		})
	}
}

// TestScanContentUTF16: a UTF-16 byte-order mark is recognised, and whether
// the last line ends is decided on the last UTF-16 character, not byte.
func TestScanContentUTF16(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		in         []byte
		order      binary.ByteOrder
		terminated bool
	}{
		{"LE, CRLF", []byte("\xff\xfea\x00\r\x00\n\x00"), binary.LittleEndian, true},
		{"LE, no line ending", []byte("\xff\xfea\x00;\x00"), binary.LittleEndian, false},
		{"LE, half a line ending", []byte("\xff\xfea\x00\n"), binary.LittleEndian, false},
		{"LE, a character whose low byte is LF", []byte("\xff\xfea\x00\n\x01"), binary.LittleEndian, false},
		{"BE, LF", []byte("\xfe\xff\x00a\x00\n"), binary.BigEndian, true},
		{"BE, CR alone", []byte("\xfe\xff\x00a\x00\r"), binary.BigEndian, true},
		{"BE, no line ending", []byte("\xfe\xff\x00a\x00b"), binary.BigEndian, false},
		{"UTF-8 is not UTF-16", []byte("a;b\n"), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, r := range []io.Reader{bytes.NewReader(tt.in), iotest.OneByteReader(bytes.NewReader(tt.in))} {
				info, err := scanContent(r)
				require.NoError(t, err)
				assert.Equal(t, tt.order, info.utf16)
				assert.Equal(t, tt.terminated, info.terminated)
			}
		})
	}
}
