// Package hashcache is a bounded, sharded cache keyed by the SHA-256 of a secret (a bearer
// token), whose entries live no longer than a per-entry deadline. The verifiers use it to skip
// signature work for a token they have already verified, without ever keeping the token itself.
package hashcache

import (
	"crypto/sha256"
	"sync"
	"time"
	"unsafe"
)

// Cache holds at most the size given to New entries (two generations per shard: the older half
// is dropped when the newer fills up), so memory stays flat however many distinct keys arrive.
type Cache[V any] struct {
	shards [16]shard[V]
	perGen int
}

// A shard takes a read lock for the common case, a hit in the current generation: every
// request of a busy client presents the same token, so the hit path must not serialise.
type shard[V any] struct {
	mu       sync.RWMutex
	cur, old map[[32]byte]entry[V]
}

type entry[V any] struct {
	v     V
	until time.Time
}

// New returns a cache bounded to about size entries.
func New[V any](size int) *Cache[V] {
	c := &Cache[V]{perGen: max(size/16/2, 1)}
	for i := range c.shards {
		c.shards[i].cur = make(map[[32]byte]entry[V])
		c.shards[i].old = make(map[[32]byte]entry[V])
	}
	return c
}

// Key hashes the secret in place: converting a 1-2 KB token to []byte would copy and allocate
// it on every request, and sha256 only reads its input.
func Key(raw string) [32]byte {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(raw), len(raw)))
}

// Get returns the value stored under k if its deadline has not passed at now. An expired entry
// is dropped.
func (c *Cache[V]) Get(k [32]byte, now time.Time) (V, bool) {
	s := &c.shards[k[0]&15]
	s.mu.RLock()
	e, ok := s.cur[k]
	s.mu.RUnlock()
	if ok && !now.After(e.until) {
		return e.v, true
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
		var zero V
		return zero, false
	}
	return e.v, ok
}

// Put stores v under k until the deadline.
func (c *Cache[V]) Put(k [32]byte, v V, until time.Time) {
	s := &c.shards[k[0]&15]
	s.mu.Lock()
	s.putLocked(c.perGen, k, entry[V]{v, until})
	s.mu.Unlock()
}

func (s *shard[V]) putLocked(perGen int, k [32]byte, e entry[V]) {
	if len(s.cur) >= perGen {
		s.old, s.cur = s.cur, make(map[[32]byte]entry[V], perGen)
	}
	s.cur[k] = e
}

// Len counts entries (tests and metrics).
func (c *Cache[V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.cur) + len(s.old)
		s.mu.RUnlock()
	}
	return n
}
