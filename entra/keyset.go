package entra

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// KeySet caches a tenant's token-signing keys (its JWKS). It refreshes them on a schedule,
// refetches when a token names an unknown kid (at most once per MinRefetch, so forged kids cannot
// turn into a request flood), collapses concurrent fetches into one, and keeps the last good keys
// while Entra is unreachable.
type KeySet struct {
	url        string
	client     *http.Client
	log        *slog.Logger
	refresh    time.Duration
	minRefetch time.Duration
	onFetch    func(ok bool)

	mu          sync.RWMutex
	keys        map[string]*rsa.PublicKey
	loaded      bool
	lastAttempt time.Time
	lastErr     error
	inflight    chan struct{}
}

// KeySetOptions tune a KeySet; zero values take the defaults.
type KeySetOptions struct {
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Refresh is the scheduled refresh interval (default 6h; Entra rolls keys over weeks).
	Refresh time.Duration
	// MinRefetch bounds refetches for unknown kids (default 1m).
	MinRefetch time.Duration
	// OnFetch is called after every fetch attempt (for metrics).
	OnFetch func(ok bool)
}

// NewKeySet makes a KeySet for a jwks_uri. Call Fetch or Run to load it.
func NewKeySet(jwksURL string, o KeySetOptions) *KeySet {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Refresh <= 0 {
		o.Refresh = 6 * time.Hour
	}
	if o.MinRefetch <= 0 {
		o.MinRefetch = time.Minute
	}
	return &KeySet{url: jwksURL, client: o.HTTPClient, log: o.Logger, refresh: o.Refresh, minRefetch: o.MinRefetch, onFetch: o.OnFetch, keys: map[string]*rsa.PublicKey{}}
}

// Ready reports whether keys have been loaded at least once.
func (k *KeySet) Ready() bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.loaded
}

// Key returns the public key for kid. An unknown kid triggers a refetch unless one happened
// within MinRefetch. The error is ErrKeysUnavailable when the keys could not be fetched, and a
// plain "not found" otherwise.
func (k *KeySet) Key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	k.mu.RLock()
	key, ok := k.keys[kid]
	recent := time.Since(k.lastAttempt) < k.minRefetch
	lastErr := k.lastErr
	k.mu.RUnlock()
	if ok {
		return key, nil
	}
	if !recent {
		lastErr = k.Fetch(ctx)
		k.mu.RLock()
		key, ok = k.keys[kid]
		k.mu.RUnlock()
		if ok {
			return key, nil
		}
	}
	if lastErr != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, lastErr)
	}
	return nil, errKeyNotFound
}

var errKeyNotFound = errors.New("signing key not found")

// Has reports whether kid is currently published (no fetch). A nil KeySet has no keys.
func (k *KeySet) Has(kid string) bool {
	if k == nil {
		return false
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	_, ok := k.keys[kid]
	return ok
}

// Fetch loads the keys now. Concurrent callers share one request. On failure the previous keys
// stay in use.
func (k *KeySet) Fetch(ctx context.Context) error {
	k.mu.Lock()
	if ch := k.inflight; ch != nil {
		k.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		k.mu.RLock()
		defer k.mu.RUnlock()
		return k.lastErr
	}
	ch := make(chan struct{})
	k.inflight = ch
	k.lastAttempt = time.Now()
	k.mu.Unlock()

	// The fetch outlives a cancelled caller: others may be waiting for it.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	keys, err := k.download(fctx)
	cancel()

	k.mu.Lock()
	if err == nil {
		k.keys, k.loaded = keys, true
	}
	k.lastErr = err
	k.inflight = nil
	close(ch)
	k.mu.Unlock()
	if k.onFetch != nil {
		k.onFetch(err == nil)
	}
	if err != nil {
		k.log.Warn("fetching signing keys failed; keeping the previous keys", "url", k.url, "err", err)
	}
	return err
}

// Run refreshes on schedule until ctx ends, retrying faster (1s doubling to 1m) while the keys
// have never loaded or the last fetch failed.
func (k *KeySet) Run(ctx context.Context) {
	backoff := time.Second
	for {
		err := k.Fetch(ctx)
		wait := k.refresh
		if err != nil {
			wait, backoff = backoff, min(backoff*2, time.Minute)
		} else {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

type jwk struct {
	Kty string   `json:"kty"`
	Use string   `json:"use"`
	Kid string   `json:"kid"`
	N   string   `json:"n"`
	E   string   `json:"e"`
	Alg string   `json:"alg"`
	X5c []string `json:"x5c"`
}

func (k *KeySet) download(ctx context.Context) (map[string]*rsa.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks_uri answered HTTP %d", resp.StatusCode)
	}
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("jwks_uri: %w", err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, j := range doc.Keys {
		if j.Kty != "RSA" || (j.Use != "" && j.Use != "sig") || (j.Alg != "" && j.Alg != "RS256") || j.Kid == "" {
			continue
		}
		pub, err := rsaKey(j.N, j.E)
		if err != nil {
			k.log.Warn("ignoring an unusable key in the JWKS", "kid", j.Kid, "err", err)
			continue
		}
		keys[j.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks_uri published no usable RSA signing key")
	}
	return keys, nil
}

func rsaKey(n64, e64 string) (*rsa.PublicKey, error) {
	nb, err := base64.RawURLEncoding.DecodeString(n64)
	if err != nil {
		return nil, err
	}
	eb, err := base64.RawURLEncoding.DecodeString(e64)
	if err != nil || len(eb) == 0 || len(eb) > 4 {
		return nil, errors.New("bad exponent")
	}
	n := new(big.Int).SetBytes(nb)
	if n.BitLen() < 2048 {
		return nil, fmt.Errorf("RSA key of %d bits is too small", n.BitLen())
	}
	e := int(new(big.Int).SetBytes(eb).Int64())
	if e < 3 || e%2 == 0 {
		return nil, errors.New("bad exponent")
	}
	return &rsa.PublicKey{N: n, E: e}, nil
}
