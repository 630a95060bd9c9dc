package entra

import (
	"github.com/entramcp/entramcp/internal/hashcache"
)

// cacheEntry is a verified token's identity and the kid that signed it: a cached token is
// still refused once its key leaves the JWKS.
type cacheEntry struct {
	id  *Identity
	kid string
}

// tokenCache remembers tokens that passed full verification so a token presented again is not
// verified again (RSA and JSON work), never beyond the token's own expiry.
type tokenCache = hashcache.Cache[cacheEntry]

func newTokenCache(size int) *tokenCache { return hashcache.New[cacheEntry](size) }

// cacheKey is the SHA-256 of the token (also the On-Behalf-Of cache's key).
func cacheKey(raw string) [32]byte { return hashcache.Key(raw) }
