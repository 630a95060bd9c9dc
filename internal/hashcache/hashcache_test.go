package hashcache

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"
)

// The cache must keep memory flat however many distinct tokens arrive: one
// million insertions into a 50,000-entry cache leave at most 50,000 entries and a heap that does
// not grow with the count.
func TestMemoryIsBounded(t *testing.T) {
	c := New[string](50_000)
	until := time.Now().Add(time.Hour)
	var k [32]byte
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	fill := func(from, to int) {
		for i := from; i < to; i++ {
			binary.LittleEndian.PutUint64(k[:], uint64(i))
			k[31] = byte(i) // spread across shards
			c.Put(k, "k", until)
		}
	}
	fill(0, 100_000)
	base := heap()
	fill(100_000, 1_000_000)
	after := heap()
	if n := c.Len(); n > 50_000 {
		t.Fatalf("cache holds %d entries, bound is 50,000", n)
	}
	if after > base+base/4+(4<<20) {
		t.Fatalf("heap grew from %d to %d bytes over 900,000 more distinct tokens", base, after)
	}
	t.Logf("heap after 100k tokens: %.1f MB; after 1M: %.1f MB; entries: %d", float64(base)/1e6, float64(after)/1e6, c.Len())
}

func TestExpiry(t *testing.T) {
	c := New[string](100)
	now := time.Now()
	k := Key("token")
	c.Put(k, "k", now.Add(time.Minute))
	if _, ok := c.Get(k, now); !ok {
		t.Fatal("fresh entry missing")
	}
	if _, ok := c.Get(k, now.Add(2*time.Minute)); ok {
		t.Fatal("entry outlived the token")
	}
	if _, ok := c.Get(k, now); ok {
		t.Fatal("an expired entry must be dropped, not kept")
	}
}
