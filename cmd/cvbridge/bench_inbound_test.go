package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/testdb"
)

// The inbound benchmark: signed Coachview webhooks sent open-loop at fixed
// rates to a real `cvbridge run` that stores each one durably before it
// answers 200, and, in the same iteration and at the same rates, to the
// bare handler (`cvbload sink`: the same public server and receivers on a
// store that keeps nothing). Each rate runs for CVBRIDGE_BENCH_INBOUND
// (default 2s; `make bench` sets 10s) against each server in turn.

// inboundGoal is the ack latency a rate must keep at p99 to be held.
const inboundGoal = 25 * time.Millisecond

// inboundRates are the rates tried, per second: the first three always,
// the rest while the server held the rate before.
var inboundRates = []int{200, 1000, 3000, 4500, 6000, 8000, 10000, 13000, 16000}

// inboundFixed is how many of inboundRates every iteration runs.
const inboundFixed = 3

// inboundSecret signs the benchmark's webhooks.
const inboundSecret = "bench-webhook-signing-secret"

// BenchmarkInboundSQLite measures webhook acknowledgement on the default
// SQLite store.
func BenchmarkInboundSQLite(b *testing.B) {
	benchInbound(b, func(tb testing.TB, dir string) (string, *sqlx.DB) {
		path := filepath.Join(dir, "outbox.db")
		return "storage:\n  path: outbox.db\n", sqliteDB(tb, path)
	})
}

// BenchmarkInboundPostgres is BenchmarkInboundSQLite on a fresh database
// of the local PostgreSQL server.
func BenchmarkInboundPostgres(b *testing.B) {
	benchInbound(b, func(tb testing.TB, dir string) (string, *sqlx.DB) {
		dsn := testdb.Postgres(tb)
		require.NoError(tb, os.WriteFile(filepath.Join(dir, "dsn"), []byte(dsn+"\n"), 0o600))
		db, err := sqlx.Open("postgres", dsn)
		require.NoError(tb, err)
		tb.Cleanup(func() { require.NoError(tb, db.Close()) })
		return "storage:\n  driver: postgres\n  dsn_file: dsn\n", db
	})
}

// sqliteDB opens the SQLite file at path for the count after the run.
func sqliteDB(tb testing.TB, path string) *sqlx.DB {
	tb.Helper()
	db, err := sqlx.Open("sqlite", "file:"+path+"?_busy_timeout=10000")
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, db.Close()) })
	return db
}

// inboundStorage returns the storage section of a configuration laid out in
// dir, and a handle on the database it names.
type inboundStorage func(tb testing.TB, dir string) (section string, db *sqlx.DB)

// benchInbound runs, per iteration, a fresh daemon and a sink on one
// configuration, the rate ladder against both, and then checks that every
// acknowledged message is stored exactly once.
func benchInbound(b *testing.B, storage inboundStorage) {
	step := 2 * time.Second
	if v := os.Getenv("CVBRIDGE_BENCH_INBOUND"); v != "" {
		var err error
		step, err = time.ParseDuration(v)
		require.NoError(b, err, "CVBRIDGE_BENCH_INBOUND must be a duration, e.g. 10s")
	}
	bin := buildBinary(b)
	load := buildLoadTool(b)
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		dir := b.TempDir()
		section, db := storage(b, dir)
		cfg := inboundConfig(b, dir, section)
		d := daemonProcess(b, bin, cfg)
		daemonURL := waitPublicURL(b, filepath.Join(dir, "daemon.log")) + "webhooks/cv"
		sinkURL := sinkProcess(b, load, cfg) + "webhooks/cv"

		servers := []struct{ name, url string }{{"bare", sinkURL}, {"db", daemonURL}}
		// held is the highest rate each server held; failed says whether it
		// missed the last rate it was sent, which ends its search upward.
		held := map[string]int{}
		failed := map[string]bool{}
		var acked []string
		failures := 0
		for k, rate := range inboundRates {
			if k >= inboundFixed && failed["bare"] && failed["db"] {
				break
			}
			for _, s := range servers {
				if k >= inboundFixed && failed[s.name] {
					continue
				}
				reqs := signedWebhooks(fmt.Sprintf("%s%d-%d-", s.name, i, rate), int(step.Seconds()*float64(rate)))
				res := openLoop(s.url, reqs, rate)
				prefix := fmt.Sprintf("%s-%d-", s.name, rate)
				b.ReportMetric(ms(res.p50), prefix+"p50-ms")
				b.ReportMetric(ms(res.p99), prefix+"p99-ms")
				b.ReportMetric(float64(res.errors), prefix+"errors")
				b.ReportMetric(res.achieved, prefix+"acks/s")
				if res.errors > 0 {
					b.Logf("%s at %d/s: %d of %d requests failed, first: %s", s.name, rate, res.errors, len(reqs), res.firstError)
				}
				failed[s.name] = res.errors > 0 || res.p99 > inboundGoal
				if !failed[s.name] {
					held[s.name] = rate
				}
				if s.name == "db" {
					acked = append(acked, res.acked...)
					failures += res.errors
				}
				time.Sleep(time.Second) // a pause between steps: connections closed, a GC cycle
			}
		}
		stopDaemon(b, d)
		requireStoredOnce(b, db, acked, failures)
		b.ReportMetric(float64(held["db"]), "db-held/s")
		b.ReportMetric(float64(held["bare"]), "bare-held/s")
		b.ReportMetric(step.Seconds(), "step-s")
		b.StartTimer()
	}
}

// inboundConfig lays out in dir a daemon configuration with storage section
// storage, a plain-HTTP public listener on a free loopback port and one
// webhook subscription (/webhooks/cv, signed) whose enrolments a CSV drop
// connection appends to an export file, and returns the main file's path.
func inboundConfig(tb testing.TB, dir, storage string) string {
	tb.Helper()
	require.NoError(tb, os.MkdirAll(filepath.Join(dir, "lms.d"), 0o755))
	require.NoError(tb, os.MkdirAll(filepath.Join(dir, "drop"), 0o755))
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "secret"), []byte(e2eSecret+"\n"), 0o600))
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "whsecret"), []byte(inboundSecret+"\n"), 0o600))
	main := storage + `admin:
  listen: 127.0.0.1:0
targets:
  coachview:
    url: http://127.0.0.1:9/elearning/result.aspx
    secret_file: secret
    hash: sha512
public:
  addr: 127.0.0.1:0
  tls:
    off: true
inbound:
  webhooks:
    - name: cv
      path: /webhooks/cv
      signing_secret_file: whsecret
      event_path: Event
      event_id_path: Id
      events:
        deelnemer.aangemeld:
          action: enrol
          person_id: Data.PersoonExterneId
          elearningcode: Data.Elearningcode
          first_name: Data.Voornaam
          infix: Data.Tussenvoegsels
          last_name: Data.Achternaam
          email: Data.Email
`
	lms := `name: export
type: csvdrop
schedule: "@every 1m"
enrol_default: true
settings:
  folder: drop
  columns:
    person: Deelnemer
    elearningcode: Cursuscode
    completed_at: Datum afgerond
    passed: Geslaagd
  enrol_export:
    file: enrolments.csv
`
	cfg := filepath.Join(dir, "cvbridge.yaml")
	require.NoError(tb, os.WriteFile(cfg, []byte(main), 0o644))
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "lms.d", "export.yaml"), []byte(lms), 0o644))
	return cfg
}

// waitPublicURL waits until the daemon logging to logPath reports its
// public listener and returns the listener's base URL (ending in /).
func waitPublicURL(tb testing.TB, logPath string) string {
	tb.Helper()
	re := regexp.MustCompile(`public listener" address=(http://[0-9.:]+/)`)
	var url string
	waitUntil(tb, time.Minute, "public listener", func() bool {
		log, _ := os.ReadFile(logPath)
		if m := re.FindSubmatch(log); m != nil {
			url = string(m[1])
		}
		return url != ""
	})
	return url
}

var (
	loadOnce  sync.Once
	loadBin   string
	loadErr   error
	sinkRegex = regexp.MustCompile(`sink listening on (http://[0-9.:]+/)`)
)

// buildLoadTool builds cmd/cvbload once per test binary.
func buildLoadTool(tb testing.TB) string {
	tb.Helper()
	loadOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cvbload-bin-")
		if err != nil {
			loadErr = err
			return
		}
		loadBin = filepath.Join(dir, "cvbload")
		out, err := exec.Command("go", "build", "-o", loadBin, "../cvbload").CombinedOutput()
		if err != nil {
			loadErr = fmt.Errorf("go build ../cvbload: %v\n%s", err, out)
		}
	})
	require.NoError(tb, loadErr)
	return loadBin
}

// sinkProcess starts `cvbload sink` on cfg, logging beside it to sink.log,
// and returns its base URL; it is stopped when tb ends.
func sinkProcess(tb testing.TB, load, cfg string) string {
	tb.Helper()
	cmd := exec.Command(load, "sink", "-config", cfg, "-listen", "127.0.0.1:0")
	logFile, err := os.Create(filepath.Join(filepath.Dir(cfg), "sink.log"))
	require.NoError(tb, err)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	require.NoError(tb, err)
	require.NoError(tb, cmd.Start())
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = logFile.Close() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(tb, err, "the sink's banner")
	m := sinkRegex.FindStringSubmatch(line)
	require.NotNil(tb, m, "sink banner: %q", line)
	return m[1]
}

// signedWebhook is one message ready to send.
type signedWebhook struct {
	id        string // its event id: the store's dedupe key is "id:" + id
	body      []byte
	signature string
}

// signedWebhooks returns n enrolment messages, each with its own event id
// and person (prefix plus a number), signed as Coachview signs them.
func signedWebhooks(prefix string, n int) []signedWebhook {
	ws := make([]signedWebhook, n)
	for i := range ws {
		id := fmt.Sprintf("%s%07d", prefix, i)
		body := fmt.Appendf(nil, `{"Event":"deelnemer.aangemeld","Id":"%s","Data":{"PersoonExterneId":"P-%s",`+
			`"Voornaam":"Jan","Tussenvoegsels":"van der","Achternaam":"Berg","Email":"%s@example.nl","Elearningcode":"VCA-BASIS"}}`,
			id, id, id)
		mac := hmac.New(sha256.New, []byte(inboundSecret))
		mac.Write(body)
		ws[i] = signedWebhook{id: id, body: body, signature: base64.StdEncoding.EncodeToString(mac.Sum(nil))}
	}
	return ws
}

// loadResult is what one open-loop run saw.
type loadResult struct {
	p50, p99   time.Duration
	errors     int      // requests not answered 200 (status or transport error)
	firstError string   // the first of them, for the log
	achieved   float64  // 200s per second, from the first scheduled send to the last answer
	acked      []string // event ids answered 200
}

// openLoop sends reqs to url at rate per second on a fixed schedule,
// whether or not earlier requests were answered, over keep-alive
// connections (rate/10, between 16 and 512, so each may take 100 ms per
// request at the rate). Latency runs from each request's scheduled time,
// not from when a connection was free to send it: a server that stalls
// makes the requests due meanwhile wait, and that wait is counted
// (no coordinated omission).
func openLoop(url string, reqs []signedWebhook, rate int) loadResult {
	conns := min(max(rate/10, 16), 512)
	transport := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	start := time.Now().Add(10 * time.Millisecond)
	due := func(i int) time.Time { return start.Add(time.Duration(int64(i) * int64(time.Second) / int64(rate))) }
	lat := make([]time.Duration, len(reqs))
	errs := make([]error, len(reqs))
	ends := make([]time.Time, len(reqs))
	jobs := make(chan int, len(reqs))
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for i := range jobs {
				errs[i] = post(client, url, reqs[i])
				ends[i] = time.Now()
				lat[i] = ends[i].Sub(due(i))
			}
		})
	}
	for i := range reqs {
		if d := time.Until(due(i)); d > 0 {
			time.Sleep(d)
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	var res loadResult
	last := start
	for i, err := range errs {
		if err != nil {
			if res.errors == 0 {
				res.firstError = err.Error()
			}
			res.errors++
			continue
		}
		res.acked = append(res.acked, reqs[i].id)
		if ends[i].After(last) {
			last = ends[i]
		}
	}
	res.p50, res.p99 = percentile(lat, 50), percentile(lat, 99)
	if len(res.acked) > 0 {
		res.achieved = float64(len(res.acked)) / last.Sub(start).Seconds()
	}
	return res
}

// post sends one webhook and returns nil if it was answered 200.
func post(client *http.Client, url string, w signedWebhook) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(w.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Coachview-Whsignature", w.signature)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(text)))
	}
	return nil
}

// requireStoredOnce fails tb unless every acknowledged message is in db's
// inbound_messages exactly once, received once, and at most the requests
// that failed are stored beyond them (a request may fail after its commit,
// e.g. on a client timeout).
func requireStoredOnce(tb testing.TB, db *sqlx.DB, acked []string, failed int) {
	tb.Helper()
	var rows []struct {
		Key      string `db:"dedupe_key"`
		Requests int    `db:"requests"`
	}
	require.NoError(tb, db.Select(&rows, `SELECT dedupe_key, requests FROM inbound_messages WHERE source = 'webhook:cv'`))
	stored := make(map[string]int, len(rows))
	for _, r := range rows {
		stored[r.Key] += r.Requests
	}
	lost := 0
	for _, id := range acked {
		n := stored["id:"+id]
		if n == 0 {
			lost++
		}
		require.LessOrEqual(tb, n, 1, "message %s was received %d times", id, n)
	}
	require.Zero(tb, lost, "acknowledged messages missing from the store, of %d acknowledged", len(acked))
	require.LessOrEqual(tb, len(rows), len(acked)+failed, "stored messages: no more than were sent")
}
