package scorm

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/go-sql-driver/mysql" // the mysql driver, for enrol_sql
	_ "github.com/lib/pq"              // the postgres driver, for enrol_sql

	"github.com/cvbridge/cvbridge/adapters"
	"github.com/cvbridge/cvbridge/adapters/internal/readonly"
	"github.com/cvbridge/cvbridge/adapters/kit"
	"github.com/cvbridge/cvbridge/adapters/scorm/cmi"
	"github.com/cvbridge/cvbridge/bridge/clock"
	"github.com/cvbridge/cvbridge/bridge/result"
	"github.com/cvbridge/cvbridge/bridge/source"
)

func init() {
	adapters.Register("scorm", func() *Settings { s := DefaultSettings(); return &s }, New)
}

var (
	_ source.Source   = (*Source)(nil)
	_ source.Checker  = (*Source)(nil)
	_ source.Enroller = (*EnrollingSource)(nil)
)

// decimalDigits is how many fraction digits ResultDecimal carries before
// the core rounds it; an inexact value gets a sticky seventh digit (see
// cmi.TruncateDecimal for why the core's rounding then stays exact).
const decimalDigits = 6

// Source reads SCORM results from one tracking database. It implements
// source.Source and source.Checker, and io.Closer. Polls are serialised.
type Source struct {
	// cfg is a copy of the validated settings; dsn is the DSN read when the
	// source was built.
	cfg Settings
	dsn string
	// db reads, on sessions set to read-only as the moodle adapter's
	// (adapters/internal/readonly); enrolDB, opened only with enrol_sql,
	// runs enrol_sql and unenrol_sql.
	db      *sql.DB
	enrolDB *sql.DB
	log     *slog.Logger
	clock   clock.Clock
	loc     *time.Location

	mu sync.Mutex
	rd reader // built on first use (Moodle: after detecting the schema)
}

// EnrollingSource is a Source configured with enrol_sql and unenrol_sql;
// only it implements source.Enroller, so the core learns from the type
// whether the connection can enrol.
type EnrollingSource struct {
	*Source
}

// New builds a SCORM source from a connection's validated settings. It
// reads the DSN and opens a database handle but does not connect: that
// happens on Poll or Check.
func New(c adapters.Connection, s *Settings) (source.Source, error) {
	src, err := newSource(c, s, clock.System{})
	if err != nil {
		return nil, err
	}
	if src.cfg.enrol != nil {
		return &EnrollingSource{src}, nil
	}
	return src, nil
}

func newSource(c adapters.Connection, settings *Settings, clk clock.Clock) (*Source, error) {
	cfg := *settings
	dsn, err := kit.ReadSecret(c.BaseDir, cfg.DSNFile, cfg.DSNEnv)
	if err != nil {
		return nil, kit.At(dsnKey(cfg), err)
	}
	db, err := readonly.Open(cfg.Driver, dsn)
	if err != nil {
		// The driver's message may quote the DSN: say only which setting.
		return nil, &kit.Problem{Key: dsnKey(cfg), Msg: "the DSN is not valid for driver " + cfg.Driver}
	}
	db.SetMaxOpenConns(2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Source{cfg: cfg, dsn: dsn, db: db, log: c.Logger, clock: clk, loc: c.Location}
	if cfg.enrol != nil {
		if s.enrolDB, err = sql.Open(cfg.Driver, dsn); err != nil {
			_ = db.Close() // never used: the invalid DSN is the error
			return nil, &kit.Problem{Key: dsnKey(cfg), Msg: "the DSN is not valid for driver " + cfg.Driver}
		}
		s.enrolDB.SetMaxOpenConns(1)
		s.enrolDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.loc == nil {
		s.loc = time.Local
	}
	s.log = s.log.With("adapter", "scorm")
	return s, nil
}

// dsnOrigin names the setting the DSN came from, with its value.
func dsnOrigin(s Settings) string {
	return dsnKey(s) + " " + s.DSNFile + s.DSNEnv
}

// dsnKey names the setting the DSN came from.
func dsnKey(s Settings) string {
	if s.DSNFile != "" {
		return "dsn_file"
	}
	return "dsn_env"
}

// Close closes the database handles.
func (s *Source) Close() error {
	var enrolErr error
	if s.enrolDB != nil {
		enrolErr = s.enrolDB.Close()
	}
	return errors.Join(enrolErr, s.db.Close())
}

// cursor is the stored position, as JSON. A poll reads the window of pairs
// with a value modified at or after Since, in pair-key order; After is the
// last pair of the last committed page of an unfinished poll (nil when the
// poll finished). High is the latest modification time seen; the next poll's
// window starts Lookback before it.
type cursor struct {
	Since int64      `json:"since"`
	High  int64      `json:"high"`
	After *[2]string `json:"after,omitempty"`
}

// pair is a (person, package) key with its latest modification time.
type pair struct {
	key      [2]string
	modified int64
}

// unit is everything about one pair needed to decide its result.
type unit struct {
	key         [2]string
	personID    string
	code        string
	attempts    []cmi.Attempt
	packageSCOs []string // nil: use the SCOs seen
	ref         string
	skip        string // why no result is reported, for the log; "" to evaluate
	skipWarn    bool   // the skip hides a result the operator must fix (a learner without identity)
}

// reader is a preset's access to the tracking data.
type reader interface {
	pairs(ctx context.Context, tx *sql.Tx, since int64, after *[2]string, limit int) ([]pair, error)
	load(ctx context.Context, tx *sql.Tx, pairs []pair) ([]unit, error)
}

// Poll reads the pairs changed since the cursor minus the lookback, a page
// at a time, re-evaluates each pair from all its tracking rows, and commits
// each page's completions with the cursor after it. Pairs whose values cannot
// be read are logged and skipped, not sent.
func (s *Source) Poll(ctx context.Context, sink source.Sink) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rd, err := s.reader(ctx)
	if err != nil {
		return err
	}
	raw, err := sink.Cursor(ctx)
	if err != nil {
		return fmt.Errorf("scorm: read cursor: %w", err)
	}
	var cur cursor
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cur); err != nil {
			return &source.PermanentError{Err: fmt.Errorf("scorm: stored cursor %q is not this adapter's: %w", raw, err)}
		}
	}
	if cur.After == nil {
		cur.Since = max(cur.High-int64(s.cfg.Lookback/time.Second), 0)
	}
	now := s.clock.Now().Unix()
	for {
		page, units, err := s.readPage(ctx, rd, cur)
		if err != nil {
			return err
		}
		next := cur
		for _, p := range page {
			next.High = max(next.High, min(p.modified, now))
		}
		if len(page) < s.cfg.PageSize {
			next.After = nil
		} else {
			last := page[len(page)-1].key
			next.After = &last
		}
		b, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("scorm: encode cursor: %w", err)
		}
		completions := s.evaluate(units)
		_, err = sink.Commit(ctx, source.Checkpoint{Cursor: b}, func(add func(result.Completion) error) error {
			for _, c := range completions {
				if err := add(c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, source.ErrDryRun) {
			return fmt.Errorf("scorm: commit page: %w", err)
		}
		cur = next
		if cur.After == nil {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// readPage reads one page of pairs and their data in a read-only transaction.
func (s *Source) readPage(ctx context.Context, rd reader, cur cursor) ([]pair, []unit, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, nil, fmt.Errorf("scorm: begin read-only transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // read-only: nothing to keep
	page, err := rd.pairs(ctx, tx, cur.Since, cur.After, s.cfg.PageSize)
	if err != nil {
		return nil, nil, fmt.Errorf("scorm: list changed pairs since %d: %w", cur.Since, err)
	}
	if len(page) == 0 {
		return nil, nil, nil
	}
	units, err := rd.load(ctx, tx, page)
	if err != nil {
		return nil, nil, fmt.Errorf("scorm: read tracking data: %w", err)
	}
	return page, units, nil
}

// evaluate turns units into completions, logging those it cannot report;
// one with an unreadable value becomes a completion marked Unreadable.
func (s *Source) evaluate(units []unit) []result.Completion {
	var out []result.Completion
	for _, u := range units {
		if u.skip != "" {
			level := slog.LevelDebug
			if u.skipWarn {
				level = slog.LevelWarn
			}
			s.log.Log(context.Background(), level, "no result for this pair", "source_ref", u.ref, "reason", u.skip)
			continue
		}
		rules := s.cfg.rules
		rules.PackageSCOs = u.packageSCOs
		o, ok, err := cmi.Evaluate(u.attempts, rules)
		if err != nil {
			var ve *cmi.ValueError
			attempt, sco := "", ""
			if errors.As(err, &ve) {
				attempt, sco = ve.Attempt, ve.SCO
			}
			s.log.Warn("unreadable SCORM value: no result sent for this person and part until it is corrected",
				"person", u.personID, "elearningcode", u.code, "attempt", attempt, "sco", sco,
				"source_ref", u.ref, "error", err.Error())
			// Recorded as a rejected row too, so the operator finds it in
			// the outbox beside the other results that need fixing.
			out = append(out, result.Completion{PersonID: u.personID, ElearningCode: u.code, SourceRef: u.ref,
				Unreadable: fmt.Sprintf("unreadable SCORM value: %v; no result is sent for this person and part until it is corrected in the LMS", err)})
			continue
		}
		if !ok || (!o.Passed && !s.cfg.SendFailed) {
			continue
		}
		out = append(out, s.completion(u, o))
	}
	return out
}

// completion maps the attempt that counts to Coachview's fields.
func (s *Source) completion(u unit, o cmi.Outcome) result.Completion {
	c := result.Completion{
		PersonID:      u.personID,
		ElearningCode: u.code,
		Passed:        o.Passed,
		SourceRef:     u.ref + " attempt " + o.Attempt,
	}
	if !o.Modified.IsZero() {
		c.CompletedAt = o.Modified.In(s.loc)
	}
	if o.Score != nil {
		v := new(big.Rat).Mul(o.Score, s.cfg.scaleMax)
		switch s.cfg.Result {
		case "decimal":
			c.ResultDecimal = cmi.TruncateDecimal(v, decimalDigits)
		case "text":
			c.ResultText = strings.ReplaceAll(s.cfg.TextFormat, "{score}", cmi.RoundDecimal(v, 2))
		}
	}
	return c
}

// reader returns the preset's reader, detecting Moodle's schema once.
func (s *Source) reader(ctx context.Context) (reader, error) {
	if s.rd != nil {
		return s.rd, nil
	}
	if s.cfg.Preset == presetCustom {
		s.rd = &customReader{sql: customSQL{driver: s.cfg.Driver, query: s.cfg.query}, loc: s.loc}
		return s.rd, nil
	}
	sch, err := s.detect(ctx)
	if err != nil {
		return nil, err
	}
	s.log.Info("Moodle SCORM schema detected", "schema", sch.String())
	s.rd = &moodleReader{sql: moodleSQL{driver: s.cfg.Driver, prefix: s.cfg.Prefix, schema: sch}, cfg: &s.cfg}
	return s.rd, nil
}

// detect tells Moodle's two SCORM schemas apart by whether
// <prefix>scorm_attempt exists.
func (s *Source) detect(ctx context.Context) (schema, error) {
	newer, err := tableExists(ctx, s.db, s.cfg.Driver, s.cfg.Prefix+"scorm_attempt")
	if err != nil {
		return 0, fmt.Errorf("scorm: %w", err)
	}
	if newer {
		return schemaAttempt, nil
	}
	older, err := tableExists(ctx, s.db, s.cfg.Driver, s.cfg.Prefix+"scorm_scoes_track")
	if err != nil {
		return 0, fmt.Errorf("scorm: %w", err)
	}
	if !older {
		return 0, &source.PermanentError{Err: fmt.Errorf("scorm: neither %[1]sscorm_attempt nor %[1]sscorm_scoes_track exists: "+
			"is prefix %[1]q right, and does the DSN name Moodle's database?", s.cfg.Prefix)}
	}
	return schemaTrack, nil
}

// moodleReader reads Moodle's SCORM tables.
type moodleReader struct {
	sql moodleSQL
	cfg *Settings
}

func (m *moodleReader) pairs(ctx context.Context, tx *sql.Tx, since int64, after *[2]string, limit int) ([]pair, error) {
	args := []any{since}
	if after != nil {
		u, err1 := strconv.ParseInt(after[0], 10, 64)
		sc, err2 := strconv.ParseInt(after[1], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, &source.PermanentError{Err: fmt.Errorf("stored cursor pair %q is not a Moodle (userid, scormid)", *after)}
		}
		args = append(args, u, u, sc)
	}
	rows, err := tx.QueryContext(ctx, m.sql.pairs(after == nil), append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }() // read only; rows.Err is checked
	var out []pair
	for rows.Next() {
		var u, sc, mod int64
		if err := rows.Scan(&u, &sc, &mod); err != nil {
			return nil, err
		}
		out = append(out, pair{key: [2]string{strconv.FormatInt(u, 10), strconv.FormatInt(sc, 10)}, modified: mod})
	}
	return out, rows.Err()
}

func (m *moodleReader) load(ctx context.Context, tx *sql.Tx, pairs []pair) ([]unit, error) {
	type pk struct{ user, scorm int64 }
	var userIDs, scormIDs []any
	seenU, seenS := map[int64]bool{}, map[int64]bool{}
	valueArgs := make([]any, 0, len(cmi.Elements)+2*len(pairs))
	for _, e := range cmi.Elements {
		valueArgs = append(valueArgs, e)
	}
	order := make([]pk, 0, len(pairs))
	for _, p := range pairs {
		u, _ := strconv.ParseInt(p.key[0], 10, 64)
		sc, _ := strconv.ParseInt(p.key[1], 10, 64)
		order = append(order, pk{u, sc})
		valueArgs = append(valueArgs, u, sc)
		if !seenU[u] {
			seenU[u] = true
			userIDs = append(userIDs, u)
		}
		if !seenS[sc] {
			seenS[sc] = true
			scormIDs = append(scormIDs, sc)
		}
	}

	type person struct {
		id      string
		deleted bool
	}
	people := map[int64]person{}
	if err := each(ctx, tx, m.sql.users(m.cfg.PersonField, len(userIDs)), userIDs, func(r *sql.Rows) error {
		var id int64
		var field sql.NullString
		var deleted int
		if err := r.Scan(&id, &field, &deleted); err != nil {
			return err
		}
		people[id] = person{id: strings.TrimSpace(field.String), deleted: deleted != 0}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("table %suser: %w", m.cfg.Prefix, err)
	}

	codes := map[int64]string{}
	courses := map[int64]int64{}
	if err := each(ctx, tx, m.sql.packages(len(scormIDs)), scormIDs, func(r *sql.Rows) error {
		var id, course int64
		var idnumber, shortname sql.NullString
		if err := r.Scan(&id, &course, &idnumber, &shortname); err != nil {
			return err
		}
		courses[id] = course
		switch {
		case m.cfg.scormCode[id] != "":
			codes[id] = m.cfg.scormCode[id]
		case m.cfg.courseCode[course] != "":
			codes[id] = m.cfg.courseCode[course]
		case m.cfg.CourseField == "idnumber":
			codes[id] = strings.TrimSpace(idnumber.String)
		case m.cfg.CourseField == "shortname":
			codes[id] = strings.TrimSpace(shortname.String)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("tables %[1]sscorm, %[1]scourse: %w", m.cfg.Prefix, err)
	}

	scoes := map[int64][]string{}
	identifiers := map[string]string{}
	if err := each(ctx, tx, m.sql.scoes(len(scormIDs)), scormIDs, func(r *sql.Rows) error {
		var id, scorm int64
		var ident sql.NullString
		if err := r.Scan(&id, &scorm, &ident); err != nil {
			return err
		}
		key := strconv.FormatInt(id, 10)
		scoes[scorm] = append(scoes[scorm], key)
		identifiers[key] = ident.String
		return nil
	}); err != nil {
		return nil, fmt.Errorf("table %sscorm_scoes: %w", m.cfg.Prefix, err)
	}

	// attempts[pair][attempt][sco] collects the values.
	type scoAcc struct {
		v   cmi.Values
		mod int64
	}
	data := map[pk]map[string]map[string]*scoAcc{}
	if err := each(ctx, tx, m.sql.values(len(pairs)), valueArgs, func(r *sql.Rows) error {
		var u, sc, attempt, sco, mod int64
		var element string
		var value sql.NullString
		if err := r.Scan(&u, &sc, &attempt, &sco, &element, &value, &mod); err != nil {
			return err
		}
		k := pk{u, sc}
		if data[k] == nil {
			data[k] = map[string]map[string]*scoAcc{}
		}
		ak := strconv.FormatInt(attempt, 10)
		if data[k][ak] == nil {
			data[k][ak] = map[string]*scoAcc{}
		}
		sk := strconv.FormatInt(sco, 10)
		acc := data[k][ak][sk]
		if acc == nil {
			acc = &scoAcc{}
			data[k][ak][sk] = acc
		}
		acc.v.Set(element, value.String)
		acc.mod = max(acc.mod, mod)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("table %s: %w", m.sql.trackTable(), err)
	}

	units := make([]unit, 0, len(order))
	for i, k := range order {
		u := unit{key: pairs[i].key, ref: fmt.Sprintf("%s userid %d scormid %d", m.sql.trackTable(), k.user, k.scorm)}
		p, ok := people[k.user]
		switch {
		case !ok:
			u.skip = "user not found"
		case p.deleted:
			u.skip = "user deleted"
		case p.id == "":
			u.skip, u.skipWarn = "user has no "+m.cfg.PersonField+": set it to the Coachview ExternId", true
		case codes[k.scorm] == "":
			u.skip = fmt.Sprintf("no e-learning code for scorm %d (course %d): course %s empty or not in codes", k.scorm, courses[k.scorm], m.cfg.CourseField)
		}
		u.personID, u.code = p.id, codes[k.scorm]
		u.packageSCOs = scoes[k.scorm]
		for ak, scos := range data[k] {
			a := cmi.Attempt{Key: ak}
			for sk, acc := range scos {
				a.SCOs = append(a.SCOs, cmi.SCO{Key: sk, Identifier: identifiers[sk], Values: acc.v, Modified: time.Unix(acc.mod, 0)})
			}
			u.attempts = append(u.attempts, a)
		}
		units = append(units, u)
	}
	return units, nil
}

// each runs query on tx and calls scan for every row.
func each(ctx context.Context, tx *sql.Tx, query string, args []any, scan func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }() // read only; rows.Err is checked
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// customReader reads through the operator's query.
type customReader struct {
	sql customSQL
	loc *time.Location
}

func (c *customReader) pairs(ctx context.Context, tx *sql.Tx, since int64, after *[2]string, limit int) ([]pair, error) {
	var a [2]string
	if after != nil {
		a = *after
	}
	q, args := c.sql.pairs(since, after == nil, a, limit)
	var out []pair
	modified := c.modifiedOf(2)
	err := each(ctx, tx, q, args, func(r *sql.Rows) error {
		var person, code sql.NullString
		var mod any
		if err := r.Scan(&person, &code, &mod); err != nil {
			return err
		}
		t, err := modified(r, mod)
		if err != nil {
			return fmt.Errorf("column modified: %w", err)
		}
		out = append(out, pair{key: [2]string{person.String, code.String}, modified: t})
		return nil
	})
	return out, err
}

func (c *customReader) load(ctx context.Context, tx *sql.Tx, pairs []pair) ([]unit, error) {
	keys := make([][2]string, len(pairs))
	for i, p := range pairs {
		keys[i] = p.key
	}
	type acc struct {
		v   cmi.Values
		mod int64
	}
	data := map[[2]string]map[string]map[string]*acc{}
	q, args := c.sql.rows(keys)
	modified := c.modifiedOf(len(customColumns) - 1)
	err := each(ctx, tx, q, args, func(r *sql.Rows) error {
		var f [11]sql.NullString
		var mod any
		dest := make([]any, 0, 12)
		for i := range f {
			dest = append(dest, &f[i])
		}
		if err := r.Scan(append(dest, &mod)...); err != nil {
			return err
		}
		t, err := modified(r, mod)
		if err != nil {
			return fmt.Errorf("column modified: %w", err)
		}
		k := [2]string{f[0].String, f[1].String}
		if data[k] == nil {
			data[k] = map[string]map[string]*acc{}
		}
		if data[k][f[2].String] == nil {
			data[k][f[2].String] = map[string]*acc{}
		}
		a := data[k][f[2].String][f[3].String]
		if a == nil {
			a = &acc{}
			data[k][f[2].String][f[3].String] = a
		}
		// Several rows for one SCO and attempt: the later non-empty value wins.
		set := func(dst *string, s sql.NullString) {
			if strings.TrimSpace(s.String) != "" && (t >= a.mod || *dst == "") {
				*dst = s.String
			}
		}
		set(&a.v.LessonStatus, f[4])
		set(&a.v.CompletionStatus, f[5])
		set(&a.v.SuccessStatus, f[6])
		set(&a.v.ScoreRaw, f[7])
		set(&a.v.ScoreMin, f[8])
		set(&a.v.ScoreMax, f[9])
		set(&a.v.ScoreScaled, f[10])
		a.mod = max(a.mod, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("custom query: %w", err)
	}
	units := make([]unit, 0, len(pairs))
	for _, p := range pairs {
		u := unit{key: p.key, personID: strings.TrimSpace(p.key[0]), code: strings.TrimSpace(p.key[1]),
			ref: fmt.Sprintf("custom query person_id %q elearning_code %q", p.key[0], p.key[1])}
		if u.personID == "" || u.code == "" {
			u.skip = "empty person_id or elearning_code"
		}
		for ak, scos := range data[p.key] {
			at := cmi.Attempt{Key: ak}
			for sk, a := range scos {
				at.SCOs = append(at.SCOs, cmi.SCO{Key: sk, Identifier: sk, Values: a.v, Modified: time.Unix(a.mod, 0)})
			}
			u.attempts = append(u.attempts, at)
		}
		units = append(units, u)
	}
	return units, nil
}

// modifiedOf returns a reader of column i of a result, its modified
// column, as Unix seconds (see unixOf). The column's database type, which
// says whether its time values carry a zone, is looked up once per result.
func (c *customReader) modifiedOf(i int) func(r *sql.Rows, v any) (int64, error) {
	known, zoneless := false, false
	return func(r *sql.Rows, v any) (int64, error) {
		if _, ok := v.(time.Time); ok && !known {
			types, err := r.ColumnTypes()
			if err != nil {
				return 0, err
			}
			zoneless, known = zonelessType(c.sql.driver, types[i].DatabaseTypeName()), true
		}
		return unixOf(v, zoneless, c.loc)
	}
}

// zonelessType reports whether the time values driver returns for a column
// of database type typeName are a wall clock without a zone, their location
// being only the driver's label. The column type decides, not the label,
// which cannot tell the two apart: go-sql-driver/mysql labels every value
// with its loc parameter (UTC by default), as lib/pq labels a timestamptz
// read in a UTC session; lib/pq labels a timestamp with a nameless zero
// offset, as it does a timestamptz at offset zero when Go cannot load the
// session's TimeZone.
//
// MySQL and MariaDB send DATETIME, TIMESTAMP (in the session's time_zone)
// and DATE as wall clock only, so all are zone-less, whatever the DSN's
// parseTime and loc say. PostgreSQL's timestamp (without time zone) and
// date are zone-less; a timestamptz is an instant.
func zonelessType(driver, typeName string) bool {
	if driver == "mysql" {
		return true
	}
	return typeName == "TIMESTAMP" || typeName == "DATE"
}

// timeLayouts are the text forms of a custom query's modified column.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"}

// unixOf reads a modified value as Unix seconds: Unix seconds (integer,
// float or text) or a timestamp. A timestamp without a zone is read by its
// wall clock in loc, the provider's zone: text without an offset, and a
// time.Time from a zone-less column (zoneless true, see zonelessType), whose
// location is only the driver's label. So 23:30 on 1 June in a zone-less
// column stays 1 June in loc instead of becoming 23:30 UTC, the next day in
// Amsterdam. A time.Time from a zone-aware column (PostgreSQL timestamptz)
// and text with an offset keep their instant.
func unixOf(v any, zoneless bool, loc *time.Location) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case float64:
		return int64(x), nil
	case time.Time:
		if zoneless {
			y, m, d := x.Date()
			h, mi, s := x.Clock()
			x = time.Date(y, m, d, h, mi, s, x.Nanosecond(), loc)
		}
		return x.Unix(), nil
	case []byte:
		return unixOf(string(x), zoneless, loc)
	case string:
		s := strings.TrimSpace(x)
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			return int64(n), nil
		}
		for _, l := range timeLayouts {
			if t, err := time.ParseInLocation(l, s, loc); err == nil {
				return t.Unix(), nil
			}
		}
		return 0, fmt.Errorf("%q is neither Unix seconds nor a timestamp", s)
	case nil:
		return 0, errors.New("is NULL")
	}
	return 0, fmt.Errorf("unexpected type %T", v)
}
