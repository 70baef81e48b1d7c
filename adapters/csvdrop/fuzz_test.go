package csvdrop

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/result"
)

var xsDecimal = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// FuzzFile feeds arbitrary bytes through encoding detection and the record
// loop: it must not panic, must number records in increasing physical lines,
// and must yield only completions with a person, a code and a well-formed
// decimal. Inputs are bounded to 64 KiB.
func FuzzFile(f *testing.F) {
	samples, err := filepath.Glob(filepath.Join("..", "..", "testdata", "csvdrop", "*.*"))
	require.NoError(f, err)
	for _, p := range samples {
		b, err := os.ReadFile(p)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(badRowsFile))
	f.Add([]byte(""))
	f.Add([]byte("\xef\xbb\xbfDeelnemer,Code,Datum,Geslaagd,Cijfer,Opmerking\r\n\"p\"\"1\",C,2024-03-10T23:30:00Z,Y,\"1.234,5\",\"a\r\nb\"\r\n"))
	f.Add([]byte("Deelnemer\tCode\tDatum\tGeslaagd\tCijfer\tOpmerking\np\xe9\tC\t1-2-2024\tnee\t-,5\t\x80\n"))
	// The cases of issue 16: Dutch Excel's WAAR/ONWAAR, a trailing delimiter
	// on data rows only, CR-only line endings, an optional column missing,
	// implausible dates and grades, both separators in one number, and a
	// last line without its line ending.
	f.Add([]byte("Deelnemer;Code;Datum;Geslaagd;Cijfer;Opmerking\r\np1;C;10-03-2024;WAAR;7,5;;\r\np2;C;10-03-2024;ONWAAR;5;x;\r\n"))
	f.Add([]byte("Deelnemer;Code;Datum;Geslaagd;Cijfer\rp1;C;10-03-2024;ja;7,5\rp2;C;01-01-2099;ja;-1\r"))
	f.Add([]byte("Deelnemer;Code;Datum;Geslaagd;Cijfer\np1;C;10-03-1899;ja;1.234,5\np2;C;10-03-2024;ja;7"))
	f.Add([]byte(utf16Text("Deelnemer\tCode\tDatum\tGeslaagd\tCijfer\r\np1\tC\t10-03-2024\tja\t7,5\r\n", binary.LittleEndian, true)))
	f.Add([]byte(utf16Text("Deelnemer;Code;Datum;Geslaagd;Cijfer\np\xe9;C;10-03-2024;ja;7\n", binary.BigEndian, true)))

	s := DefaultSettings()
	s.Columns = Columns{Person: "Deelnemer", ElearningCode: "Code", CompletedAt: "Datum", Passed: "Geslaagd", ResultDecimal: "Cijfer", Remark: "Opmerking"}
	loc := amsterdam(f)

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			t.Skip("bounded input")
		}
		info, err := scanContent(bytes.NewReader(data))
		require.NoError(t, err)
		enc, err := fileEncoding(s.Encoding, info)
		require.NoError(t, err, "auto always decides")
		in, err := decoded(bufio.NewReader(bytes.NewReader(data)), enc, info)
		if err != nil {
			require.True(t, info.bom, "only a UTF-8 mark is read ahead")
			return
		}
		now := time.Date(2026, 12, 7, 12, 0, 0, 0, loc)
		last, good, bad := 0, 0, 0
		st, err := readCSV(in, 0, s, loc, now, "f.csv", rowSink{
			good: func(c result.Completion, _ int, _ func() string) error {
				good++
				assert.NotEmpty(t, strings.TrimSpace(c.PersonID))
				assert.NotEmpty(t, strings.TrimSpace(c.ElearningCode))
				if c.ResultDecimal != "" {
					assert.Regexp(t, xsDecimal, c.ResultDecimal)
				}
				assert.False(t, c.CompletedAt.After(now.Add(s.Plausible.FutureTolerance)), "no implausible date")
				line, err := strconv.Atoi(strings.TrimPrefix(c.SourceRef, "f.csv:"))
				require.NoError(t, err, c.SourceRef)
				assert.Greater(t, line, last, "lines increase")
				last = line
				return nil
			},
			bad: func(line int, reason, _ string) error {
				bad++
				assert.NotEmpty(t, reason)
				assert.Greater(t, line, last, "lines increase")
				last = line
				return nil
			}})
		if err != nil {
			var fe *fileError
			require.ErrorAs(t, err, &fe, "only whole-file problems end the read")
			assert.NotEmpty(t, fe.Error())
		}
		assert.Equal(t, good, st.good)
		assert.Equal(t, bad, st.bad)
	})
}

// FuzzParseDecimal checks that every accepted number comes out as an
// xs:decimal that ParseDecimal reads back unchanged, whatever thousands
// separator the connection declared (sep: 0 none, 1 '.', 2 ',').
func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"7,5", "1.234,5", "1,234.5", "-0,50", "1 234", ",5", "12.34.567", "+3"} {
		for sep := range byte(3) {
			f.Add(s, sep)
		}
	}
	f.Fuzz(func(t *testing.T, s string, sep byte) {
		thousands := [3]byte{0, '.', ','}[sep%3]
		got, err := ParseDecimal(s, thousands)
		if err != nil {
			assert.ErrorIs(t, err, ErrDecimal)
			return
		}
		if got == "" {
			assert.NotRegexp(t, `[0-9]`, s, "only an input without digits means no value")
			return
		}
		require.Regexp(t, xsDecimal, got, "input %q", s)
		again, err := ParseDecimal(got, 0)
		require.NoError(t, err, "output %q of input %q", got, s)
		assert.Equal(t, got, again, "normalised output is stable")
	})
}
