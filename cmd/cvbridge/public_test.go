package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/adapters/moodle/moodletest"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with serial to
// cert.pem and key.pem in dir, and returns it for a client's trust pool.
func writeCert(t *testing.T, dir string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "cvbridge test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}

// TestPublicListener: over TLS, a signed Coachview webhook is acknowledged
// and the person is enrolled in a Moodle (a fake speaking Moodle's REST
// format); a renewed certificate is picked up on SIGHUP, a broken one is
// refused and the old one kept.
func TestPublicListener(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level test: skipped with -short")
	}
	bin, cfgPath, dir, _ := simulatedSetup(t)

	moodle := moodletest.New(t, map[string]moodletest.Token{"tok": {ViewIDNumbers: true, CourseUpdate: true}})
	moodle.AddCourse(moodletest.Course{ID: 7, ShortName: "VCA", FullName: "VCA Basis", IDNumber: "VCA-BASIS"})
	require.NoError(t, os.WriteFile(filepath.Join(dir, "token"), []byte("tok\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lms.d", "moodle.yaml"), []byte(fmt.Sprintf(
		"type: moodle\nschedule: \"@hourly\"\nenrol_codes: [\"VCA-*\"]\nsettings:\n  mode: webservice\n  url: %s\n  token_file: token\n", moodle.URL)), 0o644))
	whSecret := "webhook-signing-secret"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "whsecret"), []byte(whSecret+"\n"), 0o600))
	first := writeCert(t, dir, 1)
	text, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	text = append(text, []byte(`public:
  addr: 127.0.0.1:0
  tls:
    cert_file: cert.pem
    key_file: key.pem
inbound:
  webhooks:
    - name: cv
      path: /webhooks/cv
      signing_secret_file: whsecret
      event_path: Event
      events:
        deelnemer.ingeschreven:
          action: enrol
          person_id: Data.PersoonExterneId
          elearningcode: Data.Elearningcode
          first_name: Data.Voornaam
          infix: Data.Tussenvoegsels
          last_name: Data.Achternaam
          email: Data.Email
`)...)
	require.NoError(t, os.WriteFile(cfgPath, text, 0o644))

	d := startDaemonProcess(t, bin, cfgPath, "daemon")
	logPath := filepath.Join(dir, "daemon.log")
	daemonLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	var addr string
	waitFor(t, 30*time.Second, func() bool {
		m := regexp.MustCompile(`public listener" address=https://([0-9.:]+)/`).FindStringSubmatch(daemonLog())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	second := writeCertAside(t, dir)
	roots := x509.NewCertPool()
	roots.AddCert(first)
	roots.AddCert(second)
	serial := func() int64 {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
		require.NoError(t, err)
		defer func() { _ = conn.Close() }()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	require.Equal(t, int64(1), serial())

	// A signed webhook: acknowledged, then the person is enrolled in Moodle.
	body := []byte(`{"Event":"deelnemer.ingeschreven","Data":{"PersoonExterneId":"P777","Elearningcode":"VCA-BASIS",` +
		`"Voornaam":"Jan","Tussenvoegsels":"van der","Achternaam":"Berg","Email":"jan@example.nl"}}`)
	mac := hmac.New(sha256.New, []byte(whSecret))
	mac.Write(body)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	post := func(sig string) int {
		req, err := http.NewRequest(http.MethodPost, "https://"+addr+"/webhooks/cv", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("x-coachview-whsignature", sig)
		resp, err := client.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusUnauthorized, post(base64.StdEncoding.EncodeToString([]byte("forged"))))

	// A foreign host name (DNS rebinding) is refused; the certificate names
	// only 127.0.0.1, which an IP literal Host always matches.
	foreign, err := http.NewRequest(http.MethodGet, "https://"+addr+"/webhooks/cv", nil)
	require.NoError(t, err)
	foreign.Host = "rebind.attacker.example"
	resp, err := client.Do(foreign)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusMisdirectedRequest, resp.StatusCode)

	// TLS 1.2 with CBC-SHA1 suites only (Go's client still offers them): no
	// handshake; the listener offers authenticated encryption only.
	_, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}})
	assert.Error(t, err, "a CBC-SHA1 suite was accepted")
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12})
	require.NoError(t, err)
	assert.Contains(t, aeadSuites, conn.ConnectionState().CipherSuite)
	_ = conn.Close()
	assert.Equal(t, http.StatusOK, post(base64.StdEncoding.EncodeToString(mac.Sum(nil))))
	waitFor(t, 30*time.Second, func() bool { return moodle.UserCount() == 1 })
	enrolled := false
	for id := int64(100); id < 110; id++ { // the fake numbers users from 100
		if user, ok := moodle.User(id); ok && user.IDNumber == "P777" {
			assert.Equal(t, "van der Berg", user.LastName, "Dutch name split: the tussenvoegsel goes with the last name")
			_, enrolled = moodle.Enrolled(id, 7)
		}
	}
	assert.True(t, enrolled, "P777 enrolled in the course whose idnumber is the Elearningcode")

	// A broken certificate is refused; the running one stays.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cert.pem"), []byte("not a certificate"), 0o644))
	require.NoError(t, d.Process.Signal(syscall.SIGHUP))
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(daemonLog(), "reload refused") })
	assert.Equal(t, int64(1), serial())

	// A renewed certificate is picked up.
	require.NoError(t, os.Rename(filepath.Join(dir, "next-cert.pem"), filepath.Join(dir, "cert.pem")))
	require.NoError(t, os.Rename(filepath.Join(dir, "next-key.pem"), filepath.Join(dir, "key.pem")))
	require.NoError(t, d.Process.Signal(syscall.SIGHUP))
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(daemonLog(), "configuration reloaded") })
	assert.Equal(t, int64(2), serial())

	require.NoError(t, d.Process.Signal(syscall.SIGTERM))
	require.NoError(t, d.Wait())
}

// writeCertAside makes the renewed certificate (serial 2) as next-cert.pem
// and next-key.pem, for the test to move into place later.
func writeCertAside(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	aside := t.TempDir()
	cert := writeCert(t, aside, 2)
	require.NoError(t, os.Rename(filepath.Join(aside, "cert.pem"), filepath.Join(dir, "next-cert.pem")))
	require.NoError(t, os.Rename(filepath.Join(aside, "key.pem"), filepath.Join(dir, "next-key.pem")))
	return cert
}
