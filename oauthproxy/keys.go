package oauthproxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/entramcp/entramcp/store"
)

// signingKey is one ES256 key.
type signingKey struct {
	Kid     string    `json:"kid"`
	Created time.Time `json:"created"`
	PKCS8   []byte    `json:"pkcs8"`
	priv    *ecdsa.PrivateKey
}

// KeySet holds the proxy's signing keys: the newest signs, all verify. Rotation adds a key and
// keeps the previous ones until every token they signed has expired (Overlap).
type KeySet struct {
	st      store.Store // sealed: private keys at rest are encrypted
	overlap time.Duration
	now     func() time.Time

	mu   sync.RWMutex
	keys []*signingKey // newest first
}

const keysKind, keysKey = "signing", "keys"

// LoadKeys reads the key set from the store, creating the first key if there is none. Replicas
// racing to create it agree on one (Create is atomic). pemKey, when set (ENTRAMCP_SIGNING_KEY),
// is used as the only key instead. overlap must be at least the access-token lifetime.
func LoadKeys(ctx context.Context, st store.Store, pemKey string, overlap time.Duration) (*KeySet, error) {
	ks := &KeySet{st: st, overlap: overlap, now: time.Now}
	if pemKey != "" {
		k, err := parsePEMKey(pemKey)
		if err != nil {
			return nil, fmt.Errorf("ENTRAMCP_SIGNING_KEY: %w", err)
		}
		ks.keys = []*signingKey{k}
		return ks, nil
	}
	if err := ks.reload(ctx); errors.Is(err, store.ErrNotFound) {
		k, err := newKey(ks.now())
		if err != nil {
			return nil, err
		}
		data, _ := json.Marshal([]*signingKey{k})
		if err := st.Create(ctx, keysKind, keysKey, data, 0); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return nil, err
		}
		return ks, ks.reload(ctx)
	} else if err != nil {
		return nil, err
	}
	return ks, nil
}

func (ks *KeySet) reload(ctx context.Context) error {
	data, err := ks.st.Get(ctx, keysKind, keysKey)
	if err != nil {
		return err
	}
	keys, err := decodeKeys(data)
	if err != nil {
		return err
	}
	ks.mu.Lock()
	ks.keys = keys
	ks.mu.Unlock()
	return nil
}

// Reload picks up keys another replica rotated in.
func (ks *KeySet) Reload(ctx context.Context) error {
	if ks.st == nil {
		return nil
	}
	return ks.reload(ctx)
}

func decodeKeys(data []byte) ([]*signingKey, error) {
	var keys []*signingKey
	if err := json.Unmarshal(data, &keys); err != nil || len(keys) == 0 {
		return nil, errors.New("the stored signing keys are unreadable")
	}
	for _, k := range keys {
		p, err := x509.ParsePKCS8PrivateKey(k.PKCS8)
		ec, ok := p.(*ecdsa.PrivateKey)
		if err != nil || !ok || ec.Curve != elliptic.P256() {
			return nil, errors.New("a stored signing key is not a P-256 key")
		}
		k.priv = ec
	}
	return keys, nil
}

func newKey(now time.Time) (*signingKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return keyFrom(priv, now)
}

func keyFrom(priv *ecdsa.PrivateKey, now time.Time) (*signingKey, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return &signingKey{Kid: thumbprint(&priv.PublicKey), Created: now.UTC(), PKCS8: der, priv: priv}, nil
}

func parsePEMKey(s string) (*signingKey, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil, errors.New("not a PEM private key")
	}
	var priv any
	var err error
	switch b.Type {
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(b.Bytes)
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", b.Type)
	}
	ec, ok := priv.(*ecdsa.PrivateKey)
	if err != nil || !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("the key must be an ECDSA P-256 private key (openssl ecparam -name prime256v1 -genkey)")
	}
	return keyFrom(ec, time.Now())
}

// thumbprint is the RFC 7638 JWK thumbprint, used as kid.
func thumbprint(pub *ecdsa.PublicKey) string {
	x, y := coords(pub)
	canon := fmt.Sprintf(`{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, x, y)
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// coords are the JWK x and y: the halves of the uncompressed point 0x04||X||Y.
func coords(pub *ecdsa.PublicKey) (string, string) {
	b, err := pub.Bytes()
	if err != nil || len(b) != 65 {
		panic("oauthproxy: not a P-256 public key")
	}
	return base64.RawURLEncoding.EncodeToString(b[1:33]), base64.RawURLEncoding.EncodeToString(b[33:])
}

// Rotate adds a new signing key and drops keys retired longer than the overlap ago. It updates
// the stored set atomically, so concurrent rotations on two replicas do not lose a key.
func (ks *KeySet) Rotate(ctx context.Context) error {
	_, err := ks.rotate(ctx, 0)
	return err
}

// RotateIfOlder rotates when the signing key is older than maxAge. The age is checked inside
// the atomic update, so replicas calling it together rotate once.
func (ks *KeySet) RotateIfOlder(ctx context.Context, maxAge time.Duration) (rotated bool, err error) {
	return ks.rotate(ctx, maxAge)
}

func (ks *KeySet) rotate(ctx context.Context, maxAge time.Duration) (bool, error) {
	if ks.st == nil {
		return false, errors.New("keys given by ENTRAMCP_SIGNING_KEY are rotated by changing the setting")
	}
	now := ks.now()
	k, err := newKey(now)
	if err != nil {
		return false, err
	}
	rotated := false
	err = ks.st.Update(ctx, keysKind, keysKey, func(old []byte) ([]byte, time.Duration, error) {
		keys, err := decodeKeys(old)
		if err != nil {
			return nil, 0, err
		}
		if maxAge > 0 && now.Sub(keys[0].Created) < maxAge {
			rotated = false
			return old, 0, nil // young enough (or another replica just rotated)
		}
		rotated = true
		next := []*signingKey{k}
		// A key stays while a token it signed can still be valid: it stopped signing when the
		// next newer key was made.
		for i, o := range keys {
			retired := k.Created
			if i > 0 {
				retired = keys[i-1].Created
			}
			if now.Sub(retired) < ks.overlap {
				next = append(next, o)
			}
		}
		data, err := json.Marshal(next)
		return data, 0, err
	})
	if err != nil {
		return false, err
	}
	return rotated, ks.reload(ctx)
}

// KeepFresh rotates the signing key whenever it is older than maxAge, checking every hour
// until ctx ends. Failures (the store is down) are retried at the next check.
func (ks *KeySet) KeepFresh(ctx context.Context, maxAge time.Duration, onRotate func(error)) {
	if ks.st == nil || maxAge <= 0 {
		return
	}
	check := func() {
		if rotated, err := ks.RotateIfOlder(ctx, maxAge); rotated || err != nil {
			if onRotate != nil && ctx.Err() == nil {
				onRotate(err)
			}
		}
	}
	check()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check()
		}
	}
}

func (ks *KeySet) current() *signingKey {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.keys[0]
}

func (ks *KeySet) byKid(kid string) *signingKey {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	for _, k := range ks.keys {
		if k.Kid == kid {
			return k
		}
	}
	return nil
}

// JWKS is the public key set document.
func (ks *KeySet) JWKS() map[string]any {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	keys := make([]map[string]string, 0, len(ks.keys))
	for _, k := range ks.keys {
		x, y := coords(&k.priv.PublicKey)
		keys = append(keys, map[string]string{"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": k.Kid, "x": x, "y": y})
	}
	return map[string]any{"keys": keys}
}
