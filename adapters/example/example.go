package example

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

// Settings is the example section of an LMS file.
type Settings struct {
	// File is the JSON-lines file to read (required).
	File string `yaml:"file"`
	// Code is the e-learning code of lines that have none.
	Code string `yaml:"code"`
}

// Validate records every mistake in the settings by its key.
func (s *Settings) Validate(_ adapters.Connection, p *kit.Problems) {
	if strings.TrimSpace(s.File) == "" {
		p.Addf("file", "required: the JSON-lines file to read completions from")
	}
	if len(s.Code) > 50 {
		p.Addf("code", "must be at most 50 characters, got %d", len(s.Code))
	}
}

// Capabilities declares what the source can do beyond Poll: it changes
// nothing when polled with a dry-run sink, as it never changes anything.
func (s *Settings) Capabilities() source.Capabilities {
	return source.Capabilities{DryRun: true}
}

func init() {
	adapters.Register("example", func() *Settings { return &Settings{} }, New)
}

// Source reads one JSON-lines file.
type Source struct {
	path string
	code string
	loc  *time.Location
}

// New builds the source from validated settings.
func New(c adapters.Connection, s *Settings) (source.Source, error) {
	loc := c.Location
	if loc == nil {
		loc = time.UTC
	}
	return &Source{path: kit.Resolve(c.BaseDir, s.File), code: s.Code, loc: loc}, nil
}

// line is one line of the file.
type line struct {
	Person string `json:"person"`
	Code   string `json:"code"`
	Passed bool   `json:"passed"`
	Date   string `json:"date"`
}

// Poll commits the lines after the cursor, which counts the lines already
// committed, in one batch. A line that cannot be read fails the poll
// before anything is committed; the next poll starts at the same line.
func (s *Source) Poll(ctx context.Context, sink source.Sink) error {
	cursor, err := sink.Cursor(ctx)
	if err != nil {
		return err
	}
	done := 0
	if len(cursor) > 0 {
		if done, err = strconv.Atoi(string(cursor)); err != nil {
			return fmt.Errorf("example: bad cursor %q: %w", cursor, err)
		}
	}
	batch, total, err := s.read(done)
	if err != nil || len(batch) == 0 {
		return err
	}
	cp := source.Checkpoint{Cursor: []byte(strconv.Itoa(total))}
	_, err = sink.Commit(ctx, cp, func(add func(result.Completion) error) error {
		for _, c := range batch {
			if err := add(c); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, source.ErrDryRun) {
		return nil
	}
	return err
}

// read returns the completions of the lines after the first skip, and the
// number of lines read in all.
func (s *Source) read(skip int) ([]result.Completion, int, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = f.Close() }() // only read: closing cannot lose data
	var out []result.Completion
	n := 0
	scan := bufio.NewScanner(f)
	for scan.Scan() {
		n++
		if n <= skip || strings.TrimSpace(scan.Text()) == "" {
			continue
		}
		c, err := s.completion(scan.Bytes())
		if err != nil {
			return nil, 0, fmt.Errorf("%s:%d: %w", s.path, n, err)
		}
		c.SourceRef = fmt.Sprintf("%s:%d", s.path, n)
		out = append(out, c)
	}
	return out, n, scan.Err()
}

// completion reads one line.
func (s *Source) completion(b []byte) (result.Completion, error) {
	var l line
	if err := json.Unmarshal(b, &l); err != nil {
		return result.Completion{}, err
	}
	c := result.Completion{PersonID: l.Person, ElearningCode: l.Code, Passed: l.Passed}
	if c.ElearningCode == "" {
		c.ElearningCode = s.code
	}
	if l.Date != "" {
		t, err := time.ParseInLocation(time.DateOnly, l.Date, s.loc)
		if err != nil {
			return result.Completion{}, fmt.Errorf("date %q is not a date such as 2024-03-14", l.Date)
		}
		c.CompletedAt = t
	}
	return c, nil
}
