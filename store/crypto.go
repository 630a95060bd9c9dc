package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Keyring holds the AES-256-GCM keys that seal records at rest. The first key seals new
// records; every key opens records sealed with it, so a key is rotated by putting a new one first
// and dropping the old one once its records have expired or been rewritten.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// ParseKeyring reads ENTRAMCP_ENCRYPTION_KEY: one or more comma-separated "kid:base64key"
// entries (a bare base64 key gets the id "k1"), each key exactly 32 random bytes. Keys that are
// short or visibly not random are refused; a record's associated data binds it to its kind and
// key, so a sealed value cannot be moved to another record. Each record key is derived from the
// master key with HKDF, per key id.
func ParseKeyring(spec string) (*Keyring, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New("ENTRAMCP_ENCRYPTION_KEY is required: 32 random bytes, base64 (e.g. `openssl rand -base64 32`)")
	}
	kr := &Keyring{aeads: map[string]cipher.AEAD{}}
	for i, entry := range strings.Split(spec, ",") {
		kid, b64, ok := strings.Cut(strings.TrimSpace(entry), ":")
		if !ok {
			kid, b64 = fmt.Sprintf("k%d", i+1), kid
		}
		if kid == "" || len(kid) > 16 || strings.ContainsAny(kid, ". ") {
			return nil, fmt.Errorf("ENTRAMCP_ENCRYPTION_KEY: key id %q must be 1-16 characters without dots or spaces", kid)
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			raw, err = base64.RawURLEncoding.DecodeString(b64)
		}
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("ENTRAMCP_ENCRYPTION_KEY: key %q must be 32 bytes, base64-encoded", kid)
		}
		if weak(raw) {
			return nil, fmt.Errorf("ENTRAMCP_ENCRYPTION_KEY: key %q does not look random; generate one with `openssl rand -base64 32`", kid)
		}
		if _, dup := kr.aeads[kid]; dup {
			return nil, fmt.Errorf("ENTRAMCP_ENCRYPTION_KEY: key id %q appears twice", kid)
		}
		derived, err := hkdf.Key(sha256.New, raw, nil, "entramcp store "+kid, 32)
		if err != nil {
			return nil, err
		}
		block, _ := aes.NewCipher(derived)
		aead, _ := cipher.NewGCM(block)
		kr.aeads[kid] = aead
		if kr.current == "" {
			kr.current = kid
		}
	}
	return kr, nil
}

// weak catches keys that are obviously not random: few distinct bytes (all zeros, a repeated
// pattern, printable text).
func weak(k []byte) bool {
	seen := map[byte]bool{}
	printable := 0
	for _, b := range k {
		seen[b] = true
		if b >= 0x20 && b < 0x7f {
			printable++
		}
	}
	return len(seen) < 16 || printable == len(k)
}

// NewRandomKeyring makes a keyring with one fresh key (for dev and tests), and returns its
// ENTRAMCP_ENCRYPTION_KEY form.
func NewRandomKeyring() (*Keyring, string) {
	for {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			panic(err)
		}
		spec := "k1:" + base64.StdEncoding.EncodeToString(raw)
		if kr, err := ParseKeyring(spec); err == nil {
			return kr, spec
		}
	}
}

func ad(kind, key string) []byte { return []byte("entramcp\x00" + kind + "\x00" + key) }

// Seal encrypts a value for (kind, key): "kid.nonce+ciphertext".
func (k *Keyring) Seal(kind, key string, plaintext []byte) []byte {
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	out := append([]byte(k.current+"."), aead.Seal(nonce, nonce, plaintext, ad(kind, key))...)
	return out
}

// ErrDecrypt means a record could not be opened: a missing key id, or tampering.
var ErrDecrypt = errors.New("store: record cannot be decrypted (unknown key id or tampered)")

// Open decrypts a value sealed for (kind, key).
func (k *Keyring) Open(kind, key string, sealed []byte) ([]byte, error) {
	kid, rest, ok := strings.Cut(string(sealed), ".")
	aead := k.aeads[kid]
	if !ok || aead == nil || len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrDecrypt
	}
	b := []byte(rest)
	pt, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], ad(kind, key))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// Encrypted wraps a store so every value is sealed with the keyring on the way in and opened on
// the way out. Keys are left as they are: callers already key secrets by hash.
func Encrypted(inner Store, kr *Keyring) Store { return &encrypted{inner: inner, kr: kr} }

type encrypted struct {
	inner Store
	kr    *Keyring
}

func (e *encrypted) Get(ctx context.Context, kind, key string) ([]byte, error) {
	v, err := e.inner.Get(ctx, kind, key)
	if err != nil {
		return nil, err
	}
	return e.kr.Open(kind, key, v)
}

func (e *encrypted) Create(ctx context.Context, kind, key string, value []byte, ttl time.Duration) error {
	return e.inner.Create(ctx, kind, key, e.kr.Seal(kind, key, value), ttl)
}

func (e *encrypted) Put(ctx context.Context, kind, key string, value []byte, ttl time.Duration) error {
	return e.inner.Put(ctx, kind, key, e.kr.Seal(kind, key, value), ttl)
}

func (e *encrypted) Update(ctx context.Context, kind, key string, fn UpdateFunc) error {
	return e.inner.Update(ctx, kind, key, func(old []byte) ([]byte, time.Duration, error) {
		pt, err := e.kr.Open(kind, key, old)
		if err != nil {
			return nil, 0, err
		}
		v, ttl, err := fn(pt)
		if err != nil {
			return nil, 0, err
		}
		return e.kr.Seal(kind, key, v), ttl, nil
	})
}

func (e *encrypted) Take(ctx context.Context, kind, key string) ([]byte, error) {
	v, err := e.inner.Take(ctx, kind, key)
	if err != nil {
		return nil, err
	}
	return e.kr.Open(kind, key, v)
}

func (e *encrypted) Delete(ctx context.Context, kind, key string) error {
	return e.inner.Delete(ctx, kind, key)
}

func (e *encrypted) Ping(ctx context.Context) error { return e.inner.Ping(ctx) }

func (e *encrypted) Close() error { return e.inner.Close() }
