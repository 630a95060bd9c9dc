package entra_test

import (
	"context"
	"testing"
	"time"

	"github.com/entramcp/entramcp/entra"
)

// BenchmarkVerifyFirst is a first-time verification: JWT parsing, one RSA-2048 signature check,
// claim checks (the cache is off so every iteration does the full work). Target: under 100µs.
func BenchmarkVerifyFirst(b *testing.B) {
	em := startEmulator(b, nil)
	v := newVerifier(b, em, func(o *entra.VerifierOptions) { o.CacheSize = -1 })
	tok := token(b, em, "alice", api+" profile")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyRepeat is the same token presented again: a SHA-256 of the token and a cache
// lookup. Target: under 5µs.
func BenchmarkVerifyRepeat(b *testing.B) {
	em := startEmulator(b, nil)
	v := newVerifier(b, em, nil)
	tok := token(b, em, "alice", api+" profile")
	if _, err := v.Verify(context.Background(), tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(context.Background(), tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkOBOCacheHit is the whole cost of the On-Behalf-Of layer when warm: hashing the
// assertion, building the key, one LRU lookup.
func BenchmarkOBOCacheHit(b *testing.B) {
	em := startEmulator(b, nil)
	c := oboClient(b, em, secret(em), nil)
	user := token(b, em, "alice", api)
	exp := time.Now().Add(time.Hour)
	if _, err := c.Token(context.Background(), user, exp, []string{graphDefault}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Token(context.Background(), user, exp, []string{graphDefault}); err != nil {
			b.Fatal(err)
		}
	}
}
