// Package sign owns the X-WebHook-Signature that authenticates a result sent
// to Coachview: base64 (standard alphabet, padded) of an HMAC over the exact
// body bytes, keyed with the shared secret used as raw bytes. The hash is a
// Coachview setting; SHA-512 is its default.
//
// It knows nothing of results, HTTP clients or configuration files.
package sign

import (
	"crypto/hmac"
	"crypto/sha1" // Coachview offers HMAC-SHA1 as a setting; HMAC-SHA1 is not affected by SHA-1 collisions.
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// Header is the HTTP header that carries the signature.
const Header = "X-WebHook-Signature"

// Algorithm names the hash of the HMAC. The zero value means SHA512, the
// Coachview default.
type Algorithm string

// The algorithms Coachview offers under "Versleuteling resultaten webhook".
const (
	SHA512 Algorithm = "sha512"
	SHA256 Algorithm = "sha256"
	SHA1   Algorithm = "sha1"
)

// ParseAlgorithm reads an algorithm name as an operator writes it. It ignores
// case, surrounding space, '-' and '_' and an "hmac" prefix, so "SHA-512",
// "sha512" and "HMAC-SHA512" are all SHA512. The empty string is SHA512.
func ParseAlgorithm(s string) (Algorithm, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	if n == "" {
		return SHA512, nil
	}
	n = strings.NewReplacer("-", "", "_", "").Replace(n)
	n = strings.TrimPrefix(n, "hmac")
	switch n {
	case "sha512":
		return SHA512, nil
	case "sha256":
		return SHA256, nil
	case "sha1":
		return SHA1, nil
	}
	return "", fmt.Errorf("sign: unknown signature algorithm %q: choose sha512 (the Coachview default), sha256 or sha1", s)
}

// UnmarshalText lets configuration decoders read an Algorithm with
// ParseAlgorithm.
func (a *Algorithm) UnmarshalText(text []byte) error {
	parsed, err := ParseAlgorithm(string(text))
	if err != nil {
		return err
	}
	*a = parsed
	return nil
}

// newHash returns the hash constructor for a, or nil if a is not one of
// the supported algorithms. The zero value is SHA512.
func (a Algorithm) newHash() func() hash.Hash {
	switch a {
	case SHA512, "":
		return sha512.New
	case SHA256:
		return sha256.New
	case SHA1:
		return sha1.New
	}
	return nil
}

// Sign returns the X-WebHook-Signature value for body: base64 of
// HMAC-alg(secret, body). It panics if alg is not SHA512, SHA256, SHA1 or
// empty; parse operator input with ParseAlgorithm first. For many bodies
// with one secret, a Signer is cheaper.
func Sign(alg Algorithm, secret, body []byte) string {
	h := alg.newHash()
	if h == nil {
		panic(fmt.Sprintf("sign: unknown signature algorithm %q", string(alg)))
	}
	mac := hmac.New(h, secret)
	mac.Write(body)
	var sum [sha512.Size]byte
	return base64.StdEncoding.EncodeToString(mac.Sum(sum[:0]))
}

// Verify reports whether signature is the X-WebHook-Signature of body under
// alg and secret. The comparison is constant-time; a signature that is not
// the canonical padded standard base64 of a MAC, or an unknown alg, gives
// false.
func Verify(alg Algorithm, secret, body []byte, signature string) bool {
	h := alg.newHash()
	if h == nil {
		return false
	}
	return verify(hmac.New(h, secret), body, signature)
}

// verify compares in constant time. Only the canonical encoding of the MAC
// is accepted: its exact length (which also excludes the line breaks the
// decoder would skip) and strict padding bits, so one MAC has one signature.
func verify(mac hash.Hash, body []byte, signature string) bool {
	if len(signature) != base64.StdEncoding.EncodedLen(mac.Size()) {
		return false
	}
	got, err := base64.StdEncoding.Strict().DecodeString(signature)
	if err != nil {
		return false
	}
	mac.Write(body)
	var sum [sha512.Size]byte
	return hmac.Equal(mac.Sum(sum[:0]), got)
}

// Signer signs and verifies bodies with one algorithm and secret. It keeps
// keyed HMAC states in a pool, so a call neither re-derives the key pads nor
// allocates more than the returned string. It is safe for concurrent use.
type Signer struct {
	alg  Algorithm
	pool sync.Pool // of *state
}

// state is one keyed HMAC with scratch space for its sum and encoding.
type state struct {
	mac hash.Hash
	sum [sha512.Size]byte
	enc [(sha512.Size + 2) / 3 * 4]byte
}

// NewSigner returns a Signer for alg and secret. The secret is copied. It
// fails if alg is not SHA512, SHA256, SHA1 or empty (meaning SHA512).
func NewSigner(alg Algorithm, secret []byte) (*Signer, error) {
	h := alg.newHash()
	if h == nil {
		return nil, fmt.Errorf("sign: unknown signature algorithm %q: choose sha512, sha256 or sha1", string(alg))
	}
	if alg == "" {
		alg = SHA512
	}
	key := append([]byte(nil), secret...)
	s := &Signer{alg: alg}
	s.pool.New = func() any { return &state{mac: hmac.New(h, key)} }
	return s, nil
}

// Algorithm returns the algorithm the Signer uses.
func (s *Signer) Algorithm() Algorithm { return s.alg }

// Sign returns the X-WebHook-Signature value for body.
func (s *Signer) Sign(body []byte) string {
	st := s.pool.Get().(*state)
	defer s.put(st)
	st.mac.Write(body)
	sum := st.mac.Sum(st.sum[:0])
	n := base64.StdEncoding.EncodedLen(len(sum))
	base64.StdEncoding.Encode(st.enc[:n], sum)
	return string(st.enc[:n])
}

// Verify reports, in constant time, whether signature is the
// X-WebHook-Signature of body; malformed base64 gives false.
func (s *Signer) Verify(body []byte, signature string) bool {
	st := s.pool.Get().(*state)
	defer s.put(st)
	return verify(st.mac, body, signature)
}

// put resets st to its keyed initial state and returns it to the pool.
func (s *Signer) put(st *state) {
	st.mac.Reset()
	s.pool.Put(st)
}
