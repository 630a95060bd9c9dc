package store

import (
	"context"
	"errors"
	"time"
)

// TokenCache adapts a Store to entra.SharedTokenCache, the On-Behalf-Of cache's shared tier, so
// replicas reuse each other's exchanges. Wrap the store with Encrypted: the values are tokens.
type TokenCache struct{ S Store }

// Get implements entra.SharedTokenCache.
func (c TokenCache) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := c.S.Get(ctx, "obo", key)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	return v, err == nil, err
}

// Set implements entra.SharedTokenCache.
func (c TokenCache) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return c.S.Put(ctx, "obo", key, value, ttl)
}
