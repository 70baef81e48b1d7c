package sign_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cvbridge/cvbridge/bridge/sign"
)

const vectorDir = "../../testdata/sign"

// vector is one entry of testdata/sign/vectors.json, computed by openssl
// (see testdata/sign/regen.sh).
type vector struct {
	Name      string `json:"name"`
	Body      string `json:"body"`
	Secret    string `json:"secret"`
	HexKey    string `json:"hexkey"`
	Alg       string `json:"alg"`
	Signature string `json:"signature"`
	Command   string `json:"command"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(vectorDir, "vectors.json"))
	require.NoError(t, err)
	var vs []vector
	require.NoError(t, json.Unmarshal(raw, &vs))
	require.NotEmpty(t, vs)
	return vs
}

func (v vector) key(t *testing.T) []byte {
	t.Helper()
	if v.HexKey != "" {
		k, err := hex.DecodeString(v.HexKey)
		require.NoError(t, err, "vector %s: hexkey", v.Name)
		return k
	}
	return []byte(v.Secret)
}

func TestOpenSSLVectors(t *testing.T) {
	t.Parallel()
	vs := loadVectors(t)
	algs := map[sign.Algorithm]int{}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(filepath.Join(vectorDir, v.Body))
			require.NoError(t, err)
			alg, err := sign.ParseAlgorithm(v.Alg)
			require.NoError(t, err)
			key := v.key(t)

			assert.Equal(t, v.Signature, sign.Sign(alg, key, body), "openssl command: %s", v.Command)
			assert.True(t, sign.Verify(alg, key, body, v.Signature))

			s, err := sign.NewSigner(alg, key)
			require.NoError(t, err)
			assert.Equal(t, v.Signature, s.Sign(body))
			assert.Equal(t, v.Signature, s.Sign(body), "second call on a pooled state must give the same signature")
			assert.True(t, s.Verify(body, v.Signature))
			assert.False(t, s.Verify(append(body, ' '), v.Signature), "one extra byte must break the signature")
		})
		alg, err := sign.ParseAlgorithm(v.Alg)
		require.NoError(t, err)
		algs[alg]++
	}
	for _, alg := range []sign.Algorithm{sign.SHA512, sign.SHA256, sign.SHA1} {
		assert.Positive(t, algs[alg], "vectors.json has no %s vector", alg)
	}
}

// TestRegenReproducesVectors checks the provenance of vectors.json: running
// regen.sh again with openssl must give the same file byte for byte.
func TestRegenReproducesVectors(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not on PATH; vectors.json is checked by TestOpenSSLVectors")
	}
	out := filepath.Join(t.TempDir(), "vectors.json")
	cmd := exec.Command("bash", filepath.Join(vectorDir, "regen.sh"), out)
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "regen.sh: %s", msg)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	want, err := os.ReadFile(filepath.Join(vectorDir, "vectors.json"))
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))
}

func TestParseAlgorithm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    sign.Algorithm
		wantErr bool
	}{
		{name: "empty is the Coachview default", in: "", want: sign.SHA512},
		{name: "sha512", in: "sha512", want: sign.SHA512},
		{name: "upper case with dash", in: "SHA-512", want: sign.SHA512},
		{name: "hmac prefix", in: "HMAC-SHA512", want: sign.SHA512},
		{name: "hmac prefix no dash", in: "HMACSHA256", want: sign.SHA256},
		{name: "surrounding space", in: "  sha256 ", want: sign.SHA256},
		{name: "underscore", in: "sha_256", want: sign.SHA256},
		{name: "sha1", in: "Sha-1", want: sign.SHA1},
		{name: "md5 unsupported", in: "md5", wantErr: true},
		{name: "sha384 unsupported", in: "sha384", wantErr: true},
		{name: "hmac alone", in: "hmac", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := sign.ParseAlgorithm(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				assert.ErrorContains(t, err, fmt.Sprintf("%q", tt.in))
				assert.ErrorContains(t, err, "sha512")
				assert.ErrorContains(t, err, "sha256")
				assert.ErrorContains(t, err, "sha1")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestAlgorithmUnmarshalText(t *testing.T) {
	t.Parallel()
	var cfg struct {
		Alg sign.Algorithm `json:"alg"`
	}
	require.NoError(t, json.Unmarshal([]byte(`{"alg":"HMAC-SHA-256"}`), &cfg))
	assert.Equal(t, sign.SHA256, cfg.Alg)

	err := json.Unmarshal([]byte(`{"alg":"whirlpool"}`), &cfg)
	assert.ErrorContains(t, err, `"whirlpool"`)
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	secret := []byte("geheim")
	body := []byte("<CoachviewResultaat/>")
	good := sign.Sign(sign.SHA512, secret, body)
	require.True(t, sign.Verify(sign.SHA512, secret, body, good))
	urlAlphabet := strings.NewReplacer("+", "-", "/", "_").Replace(good)
	require.NotEqual(t, good, urlAlphabet, "pick a body whose signature has + or /")

	tests := []struct {
		name   string
		alg    sign.Algorithm
		secret []byte
		body   []byte
		sig    string
	}{
		{name: "empty signature", alg: sign.SHA512, secret: secret, body: body, sig: ""},
		{name: "not base64", alg: sign.SHA512, secret: secret, body: body, sig: "not*base64!"},
		{name: "padding removed", alg: sign.SHA512, secret: secret, body: body, sig: good[:len(good)-2]},
		{name: "non-zero padding bits", alg: sign.SHA512, secret: secret, body: body, sig: flipPaddingBit(t, good)},
		{name: "line break inside", alg: sign.SHA512, secret: secret, body: body, sig: good[:40] + "\n" + good[40:]},
		{name: "trailing line break", alg: sign.SHA512, secret: secret, body: body, sig: good + "\r\n"},
		{name: "url alphabet", alg: sign.SHA512, secret: secret, body: body, sig: urlAlphabet},
		{name: "truncated mac", alg: sign.SHA512, secret: secret, body: body, sig: sign.Sign(sign.SHA256, secret, body)},
		{name: "wrong secret", alg: sign.SHA512, secret: []byte("Geheim"), body: body, sig: good},
		{name: "changed body", alg: sign.SHA512, secret: secret, body: []byte("<CoachviewResultaat />"), sig: good},
		{name: "other algorithm", alg: sign.SHA256, secret: secret, body: body, sig: good},
		{name: "unknown algorithm", alg: sign.Algorithm("md5"), secret: secret, body: body, sig: good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.False(t, sign.Verify(tt.alg, tt.secret, tt.body, tt.sig))
			if s, err := sign.NewSigner(tt.alg, tt.secret); err == nil {
				assert.False(t, s.Verify(tt.body, tt.sig))
			}
		})
	}
}

// flipPaddingBit returns sig with a bit set that a SHA-512 signature (64
// bytes, so 4 unused bits in the last character) leaves zero: lenient
// base64 decoders read it as the same MAC.
func flipPaddingBit(t *testing.T, sig string) string {
	t.Helper()
	require.True(t, strings.HasSuffix(sig, "=="))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(alphabet, sig[len(sig)-3])
	require.Zero(t, i&0xf)
	lenient, err := base64.StdEncoding.DecodeString(sig[:len(sig)-3] + string(alphabet[i|1]) + "==")
	require.NoError(t, err)
	canonical, err := base64.StdEncoding.DecodeString(sig)
	require.NoError(t, err)
	require.Equal(t, canonical, lenient, "a lenient decoder must see the same MAC")
	return sig[:len(sig)-3] + string(alphabet[i|1]) + "=="
}

func TestZeroAlgorithmIsSHA512(t *testing.T) {
	t.Parallel()
	secret, body := []byte("s"), []byte("b")
	assert.Equal(t, sign.Sign(sign.SHA512, secret, body), sign.Sign("", secret, body))
	s, err := sign.NewSigner("", secret)
	require.NoError(t, err)
	assert.Equal(t, sign.SHA512, s.Algorithm())
	assert.Equal(t, sign.Sign(sign.SHA512, secret, body), s.Sign(body))
}

func TestUnknownAlgorithm(t *testing.T) {
	t.Parallel()
	_, err := sign.NewSigner("sha384", []byte("s"))
	assert.ErrorContains(t, err, `"sha384"`)
	assert.PanicsWithValue(t, `sign: unknown signature algorithm "sha384"`, func() {
		sign.Sign("sha384", []byte("s"), nil)
	})
}

func TestSignerCopiesSecret(t *testing.T) {
	t.Parallel()
	secret := []byte("geheim")
	body := []byte("body")
	want := sign.Sign(sign.SHA256, secret, body)
	s, err := sign.NewSigner(sign.SHA256, secret)
	require.NoError(t, err)
	copy(secret, "XXXXXX")
	assert.Equal(t, want, s.Sign(body))
}

func TestSignerConcurrent(t *testing.T) {
	t.Parallel()
	secret := []byte("geheim")
	s, err := sign.NewSigner(sign.SHA512, secret)
	require.NoError(t, err)

	const workers, perWorker = 8, 200
	var wg sync.WaitGroup
	errs := make(chan string, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				body := fmt.Appendf(nil, "<r w=\"%d\" i=\"%d\"/>", w, i)
				got := s.Sign(body)
				if want := sign.Sign(sign.SHA512, secret, body); got != want {
					errs <- fmt.Sprintf("worker %d body %d: got %s want %s", w, i, got, want)
				}
				if !s.Verify(body, got) {
					errs <- fmt.Sprintf("worker %d body %d: own signature rejected", w, i)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func benchBody(b *testing.B) []byte {
	b.Helper()
	body, err := os.ReadFile(filepath.Join(vectorDir, "bodies", "seed1-resultaat.xml"))
	require.NoError(b, err)
	return body
}

func BenchmarkSign(b *testing.B) {
	body := benchBody(b)
	secret := []byte("geheim-van-coachview")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		sign.Sign(sign.SHA512, secret, body)
	}
}

func BenchmarkSignerSign(b *testing.B) {
	body := benchBody(b)
	s, err := sign.NewSigner(sign.SHA512, []byte("geheim-van-coachview"))
	require.NoError(b, err)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Sign(body)
		}
	})
}

// FuzzSignVerify checks that every signature Sign makes verifies, that a
// Signer agrees with Sign, and that Verify never panics on outside input.
func FuzzSignVerify(f *testing.F) {
	f.Add([]byte("geheim"), []byte("<CoachviewResultaat/>"), "kU/lbybOLXR9==")
	f.Add([]byte{}, []byte{}, "")
	f.Fuzz(func(t *testing.T, secret, body []byte, signature string) {
		for _, alg := range []sign.Algorithm{sign.SHA512, sign.SHA256, sign.SHA1} {
			sig := sign.Sign(alg, secret, body)
			if !sign.Verify(alg, secret, body, sig) {
				t.Fatalf("%s: own signature rejected", alg)
			}
			s, err := sign.NewSigner(alg, secret)
			require.NoError(t, err)
			if got := s.Sign(body); got != sig {
				t.Fatalf("%s: Signer gives %s, Sign gives %s", alg, got, sig)
			}
			if signature != sig && sign.Verify(alg, secret, body, signature) {
				t.Fatalf("%s: accepted %q, want only %q", alg, signature, sig)
			}
		}
	})
}
