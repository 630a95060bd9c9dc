// Package store is entramcp's one storage interface: everything the OAuth proxy and the
// On-Behalf-Of cache share across restarts and replicas lives behind it. Backends: memory (tests,
// one process), bbolt (the embedded default, one process, a file) and Redis (several replicas).
// Every backend passes the same conformance suite (store/storetest).
//
// Records are opaque byte values under (kind, key). Callers key secrets by a hash of the secret,
// never by the secret itself, and wrap the store with Encrypted so values are sealed at rest. The
// security-critical operations (atomic Take for single-use codes, atomic Update for rotation,
// Create that fails on an existing key) are part of the interface, not optional extras.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Errors. ErrUnavailable (the backend cannot be reached) is distinct from ErrNotFound: a
// security decision must never treat an outage as "no such record".
var (
	ErrNotFound      = errors.New("store: not found")
	ErrAlreadyExists = errors.New("store: already exists")
	ErrUnavailable   = errors.New("store: unavailable")
)

// UpdateFunc computes a record's new value from the old one; returning an error aborts the
// update and leaves the record as it was.
type UpdateFunc func(old []byte) (value []byte, ttl time.Duration, err error)

// Store holds records with optional expiry. A ttl of 0 means no expiry; expired records are
// invisible at once, whether or not a sweep has removed them yet.
type Store interface {
	// Get returns a record or ErrNotFound.
	Get(ctx context.Context, kind, key string) ([]byte, error)
	// Create writes a record that must not exist yet (ErrAlreadyExists otherwise).
	Create(ctx context.Context, kind, key string, value []byte, ttl time.Duration) error
	// Put writes a record, replacing any.
	Put(ctx context.Context, kind, key string, value []byte, ttl time.Duration) error
	// Update atomically replaces a record with fn(old); ErrNotFound when missing. Concurrent
	// updates of one record are serialised: none is lost.
	Update(ctx context.Context, kind, key string, fn UpdateFunc) error
	// Take atomically returns and deletes a record (single-use codes and state): of concurrent
	// takers exactly one gets it, the others ErrNotFound.
	Take(ctx context.Context, kind, key string) ([]byte, error)
	// Delete removes a record; deleting a missing record is not an error.
	Delete(ctx context.Context, kind, key string) error
	// Ping reports whether the backend is reachable (readiness).
	Ping(ctx context.Context) error
	// Close releases the backend.
	Close() error
}

// Open opens a store from its URL: "memory:", "bolt:///path/to/file.db" (or "bolt:relative.db"),
// "redis://[user:password@]host:port/db" or "rediss://..." for TLS.
func Open(ctx context.Context, rawURL string) (Store, error) {
	switch {
	case rawURL == "memory:" || rawURL == "memory://":
		return NewMemory(), nil
	case strings.HasPrefix(rawURL, "bolt:"):
		p := strings.TrimPrefix(strings.TrimPrefix(rawURL, "bolt:"), "//")
		if p == "" {
			return nil, fmt.Errorf("ENTRAMCP_STORE %q: give a file path, e.g. bolt:///var/lib/entramcp/entramcp.db", rawURL)
		}
		return OpenBolt(p)
	case strings.HasPrefix(rawURL, "redis://") || strings.HasPrefix(rawURL, "rediss://"):
		return OpenRedis(ctx, rawURL)
	}
	u, _ := url.Parse(rawURL)
	scheme := ""
	if u != nil {
		scheme = u.Scheme
	}
	return nil, fmt.Errorf("ENTRAMCP_STORE: unsupported store %q (scheme %q); use memory:, bolt:///path or redis://host:port", redactURL(rawURL), scheme)
}

// redactURL hides a password in a store URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

func checkKindKey(kind, key string) error {
	if kind == "" || key == "" || strings.ContainsAny(kind, ":\x00") || len(key) > 1024 {
		return fmt.Errorf("store: invalid kind %q or key (empty, too long, or kind with ':')", kind)
	}
	return nil
}
