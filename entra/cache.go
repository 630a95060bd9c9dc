package entra

import (
	"crypto/sha256"
	"sync"
	"time"
	"unsafe"
)

// tokenCache remembers tokens that passed full verification so a token presented again is not
// verified again (RSA and JSON work). It is keyed by SHA-256 of the whole token, holds at most
// size entries (two generations per shard: the older half is dropped when the newer fills up),
// and an entry is used only until the token's own expiry, never longer.
type tokenCache struct {
	shards [16]cacheShard
	perGen int
}

// A shard takes a read lock for the common case, a hit in the current generation: every
// request of a busy client presents the same token, so the hit path must not serialise.
type cacheShard struct {
	mu       sync.RWMutex
	cur, old map[[32]byte]cacheEntry
}

type cacheEntry struct {
	id    *Identity
	kid   string
	until time.Time
}

func newTokenCache(size int) *tokenCache {
	c := &tokenCache{perGen: max(size/len(tokenCache{}.shards)/2, 1)}
	for i := range c.shards {
		c.shards[i].cur = make(map[[32]byte]cacheEntry)
		c.shards[i].old = make(map[[32]byte]cacheEntry)
	}
	return c
}

// cacheKey hashes the token in place: converting a 1-2 KB token to []byte would copy and
// allocate it on every request, and sha256 only reads its input.
func cacheKey(raw string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
}

func (c *tokenCache) get(k [32]byte, now time.Time) (cacheEntry, bool) {
	s := &c.shards[k[0]&15]
	s.mu.RLock()
	e, ok := s.cur[k]
	s.mu.RUnlock()
	if ok && !now.After(e.until) {
		return e, true
	}
	// Miss, expiry, or a hit in the old generation: the write lock promotes or drops it.
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok = s.cur[k]; !ok {
		if e, ok = s.old[k]; ok {
			delete(s.old, k)
			s.putLocked(c.perGen, k, e)
		}
	}
	if ok && now.After(e.until) {
		delete(s.cur, k)
		return cacheEntry{}, false
	}
	return e, ok
}

func (c *tokenCache) put(k [32]byte, e cacheEntry) {
	s := &c.shards[k[0]&15]
	s.mu.Lock()
	s.putLocked(c.perGen, k, e)
	s.mu.Unlock()
}

func (s *cacheShard) putLocked(perGen int, k [32]byte, e cacheEntry) {
	if len(s.cur) >= perGen {
		s.old, s.cur = s.cur, make(map[[32]byte]cacheEntry, perGen)
	}
	s.cur[k] = e
}

// len counts entries (tests and metrics).
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.cur) + len(s.old)
		s.mu.RUnlock()
	}
	return n
}
