package csvdrop

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"

	"github.com/cvbridge/cvbridge/bridge/result"
)

// utf8BOM is the byte-order mark Excel writes in front of "CSV UTF-8" files.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// The byte-order marks of UTF-16, little- and big-endian. Excel's "Unicode
// text" ("Unicode-tekst (*.txt)") is UTF-16LE with the mark, tab separated.
var (
	utf16LEBOM = []byte{0xFF, 0xFE}
	utf16BEBOM = []byte{0xFE, 0xFF}
)

// utf16Order returns the byte order of UTF-16 text that starts with its
// byte-order mark, or nil when head starts with neither mark.
func utf16Order(head []byte) binary.ByteOrder {
	switch {
	case bytes.HasPrefix(head, utf16LEBOM):
		return binary.LittleEndian
	case bytes.HasPrefix(head, utf16BEBOM):
		return binary.BigEndian
	}
	return nil
}

// contentInfo is what the first pass over a file learns.
type contentInfo struct {
	sum        string // hex SHA-256 of the bytes
	size       int64
	utf8       bool             // the whole content is valid UTF-8
	bom        bool             // the content starts with the UTF-8 byte-order mark
	utf16      binary.ByteOrder // the content is UTF-16 of this byte order (it starts with its mark); nil if not
	terminated bool             // the last line ends with a line ending
	crOnly     bool             // lines end with CR alone (old Mac exports)
}

// scanContent hashes r and checks whether it is UTF-8, in constant memory.
func scanContent(r io.Reader) (contentInfo, error) {
	h := sha256.New()
	var v utf8Check
	var e lineEndings
	n, err := io.Copy(io.MultiWriter(h, &v, &e), r)
	if err != nil {
		return contentInfo{}, err
	}
	info := contentInfo{
		sum:    hex.EncodeToString(h.Sum(nil)),
		size:   n,
		utf8:   v.valid(),
		bom:    bytes.Equal(v.head, utf8BOM),
		utf16:  utf16Order(v.head),
		crOnly: e.cr && !e.lf,
	}
	last := e.last[1]
	if info.utf16 != nil {
		last = 0 // an odd length ends in half a character
		if n%2 == 0 && info.utf16.Uint16(e.last[:]) < 0x100 {
			last = byte(info.utf16.Uint16(e.last[:]))
		}
	}
	info.terminated = last == '\n' || last == '\r'
	return info, nil
}

// lineEndings is a writer that notes which line endings pass through it and
// the last two bytes (a UTF-16 character).
type lineEndings struct {
	cr, lf bool
	last   [2]byte
}

func (e *lineEndings) Write(p []byte) (int, error) {
	switch len(p) {
	case 0:
		return 0, nil
	case 1:
		e.last = [2]byte{e.last[1], p[0]}
	default:
		e.last = [2]byte{p[len(p)-2], p[len(p)-1]}
	}
	e.cr = e.cr || bytes.IndexByte(p, '\r') >= 0
	e.lf = e.lf || bytes.IndexByte(p, '\n') >= 0
	return len(p), nil
}

// fileEncoding decides how to decode a file's bytes under the connection's
// encoding setting.
func fileEncoding(setting string, info contentInfo) (string, error) {
	if info.utf16 != nil {
		return encUTF16, nil
	}
	switch setting {
	case encWindows1252:
		return encWindows1252, nil
	case encUTF8:
		if !info.utf8 {
			return "", errors.New("file is not valid UTF-8 (encoding: utf-8); set encoding to windows-1252, or to auto to detect it")
		}
		return encUTF8, nil
	}
	if info.utf8 {
		return encUTF8, nil
	}
	return encWindows1252, nil
}

// decoded returns the text of a file read through br as UTF-8, decoded from
// enc (see fileEncoding), without its byte-order mark, and with CR-only line
// endings made LF.
func decoded(br *bufio.Reader, enc string, info contentInfo) (io.Reader, error) {
	var in io.Reader = br
	switch {
	case enc == encWindows1252:
		in = transform.NewReader(br, charmap.Windows1252.NewDecoder())
	case enc == encUTF16:
		order := unicode.LittleEndian
		if info.utf16 == binary.BigEndian {
			order = unicode.BigEndian
		}
		in = transform.NewReader(br, unicode.UTF16(order, unicode.ExpectBOM).NewDecoder())
	case info.bom:
		if _, err := br.Discard(len(utf8BOM)); err != nil {
			return nil, err
		}
	}
	if info.crOnly {
		in = crToLF{in}
	}
	return in, nil
}

// crToLF turns every CR into LF, so encoding/csv reads a file whose lines
// end with CR alone. It is only used on such files, which have no LF at all.
type crToLF struct{ r io.Reader }

func (c crToLF) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for i, b := range p[:n] {
		if b == '\r' {
			p[i] = '\n'
		}
	}
	return n, err
}

// utf8Check is a writer that validates UTF-8 across write boundaries,
// carrying at most one incomplete rune from one write to the next.
type utf8Check struct {
	head    []byte // the first bytes, for the byte-order mark
	carry   []byte // the start of a rune cut by the end of the last write
	buf     []byte
	invalid bool
}

func (v *utf8Check) Write(p []byte) (int, error) {
	if len(v.head) < len(utf8BOM) {
		v.head = append(v.head, p[:min(len(utf8BOM)-len(v.head), len(p))]...)
	}
	if v.invalid {
		return len(p), nil
	}
	v.buf = append(append(v.buf[:0], v.carry...), p...)
	cut := len(v.buf)
	for i := len(v.buf) - 1; i >= 0 && i >= len(v.buf)-utf8.UTFMax; i-- {
		if utf8.RuneStart(v.buf[i]) {
			if !utf8.FullRune(v.buf[i:]) {
				cut = i
			}
			break
		}
	}
	v.invalid = !utf8.Valid(v.buf[:cut])
	v.carry = append(v.carry[:0], v.buf[cut:]...)
	return len(p), nil
}

// valid reports whether everything written was UTF-8, ending on a whole rune.
func (v *utf8Check) valid() bool { return !v.invalid && len(v.carry) == 0 }

// sniffDelimiter returns whichever of ';', tab and ',' occurs most often
// outside quotes in the first line of head; ties go in that order, as Dutch
// Excel writes ';'.
func sniffDelimiter(head []byte) rune {
	var semi, tab, comma int
	quoted := false
scan:
	for _, c := range head {
		switch {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '\n' || c == '\r':
			break scan
		case c == ';':
			semi++
		case c == '\t':
			tab++
		case c == ',':
			comma++
		}
	}
	switch {
	case comma > semi && comma > tab:
		return ','
	case tab > semi:
		return '\t'
	}
	return ';'
}

// fileError is a problem of a file as a whole: it fails the file, with one
// line in its errors file.
type fileError struct {
	line int    // 0 when no line is to blame
	raw  string // the offending record, when there is one
	err  error
}

func (e *fileError) Error() string { return e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// readStats counts what readCSV did with a file's records.
type readStats struct {
	headerLine int
	good, bad  int
	absent     []string // optional columns the header lacks, see Parser.Absent
}

// rowSink receives what readCSV makes of a file's data records.
type rowSink struct {
	// good takes a record that parsed, with its first physical line and a
	// way to write the record back as text (valid during the call only).
	good func(c result.Completion, line int, raw func() string) error
	// bad takes a record that did not parse: its line, the reason and the
	// record as text.
	bad func(line int, reason, raw string) error
}

// sniffSize is how much of a file is looked at to guess its delimiter.
const sniffSize = 64 << 10

// readCSV reads a decoded CSV stream record by record in constant memory:
// the header, then data records. It calls out.good for each record that
// parses, with SourceRef "<name>:<line>", and out.bad for each that does not,
// with its first physical line, the reason and the record as text. delim 0
// means sniff it from the header line; now is when the file is read, for the
// plausibility of dates. Problems of the whole file are *fileError; errors
// of out's functions are returned as they are.
func readCSV(r io.Reader, delim rune, s Settings, loc *time.Location, now time.Time, name string, out rowSink) (readStats, error) {
	good, bad := out.good, out.bad
	var st readStats
	br := bufio.NewReaderSize(r, sniffSize)
	if delim == 0 {
		head, _ := br.Peek(sniffSize) // a short read ends in EOF or an error the csv reader meets again
		delim = sniffDelimiter(head)
	}
	cr := csv.NewReader(br)
	cr.Comma = delim
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	raw := newRawFormatter(delim)

	header, err := cr.Read()
	var pe *csv.ParseError
	switch {
	case errors.Is(err, io.EOF):
		return st, &fileError{line: 1, err: errors.New("file has no header line")}
	case errors.As(err, &pe):
		return st, &fileError{line: pe.StartLine, err: fmt.Errorf("header line cannot be read: %w", err)}
	case err != nil:
		return st, &fileError{err: fmt.Errorf("cannot read file: %w", err)}
	}
	st.headerLine, _ = cr.FieldPos(0)
	p, err := NewParser(s, loc, header, now)
	if err != nil {
		if strings.ContainsRune(strings.Join(header, ""), 0) {
			err = fmt.Errorf("%w (the header holds NUL bytes: the file is probably UTF-16 without a byte-order mark; export it as \"CSV UTF-8\" or \"Unicode text\")", err)
		}
		return st, &fileError{line: st.headerLine, raw: raw.format(header), err: err}
	}
	st.absent = p.Absent()
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if errors.As(err, &pe) {
			st.bad++
			if err := bad(pe.StartLine, pe.Error(), ""); err != nil {
				return st, err
			}
			continue
		}
		if err != nil {
			return st, &fileError{err: fmt.Errorf("cannot read file: %w", err)}
		}
		if blank(rec) {
			continue
		}
		line, _ := cr.FieldPos(0)
		c, err := p.Parse(rec)
		if err != nil {
			st.bad++
			if err := bad(line, err.Error(), raw.format(rec)); err != nil {
				return st, err
			}
			continue
		}
		c.SourceRef = fmt.Sprintf("%s:%d", name, line)
		st.good++
		if err := good(c, line, func() string { return raw.format(rec) }); err != nil {
			return st, err
		}
	}
}

// rawFormatter writes a record back as one CSV line, for the errors file.
type rawFormatter struct {
	buf bytes.Buffer
	w   *csv.Writer
}

func newRawFormatter(delim rune) *rawFormatter {
	f := &rawFormatter{}
	f.w = csv.NewWriter(&f.buf)
	f.w.Comma = delim
	return f
}

func (f *rawFormatter) format(rec []string) string {
	f.buf.Reset()
	_ = f.w.Write(rec) // cannot fail: the delimiter is one csv accepts and a bytes.Buffer takes every write
	f.w.Flush()
	return strings.TrimRight(f.buf.String(), "\r\n")
}
