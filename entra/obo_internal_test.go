package entra

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// The OBO cache stays bounded over a million distinct assertions: the LRU evicts the oldest.
func TestOBOCacheMemoryIsBounded(t *testing.T) {
	c := newOBOCache(10_000)
	until := time.Now().Add(time.Hour)
	tok := &DownstreamToken{AccessToken: "x", ExpiresOn: until}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for i := 0; i < 100_000; i++ {
		c.put(oboKey{assertion: cacheKey("assertion-" + strconv.Itoa(i)), scopes: "https://graph.microsoft.com/.default"}, tok, until)
	}
	base := heap()
	for i := 100_000; i < 1_000_000; i++ {
		c.put(oboKey{assertion: cacheKey("assertion-" + strconv.Itoa(i)), scopes: "https://graph.microsoft.com/.default"}, tok, until)
	}
	after := heap()
	if c.len() != 10_000 {
		t.Fatalf("cache holds %d entries, bound 10,000", c.len())
	}
	if after > base+base/4+(4<<20) {
		t.Fatalf("heap grew from %d to %d over 900,000 more assertions", base, after)
	}
	// The most recent entry is there, the oldest gone.
	if _, ok := c.get(oboKey{assertion: cacheKey("assertion-999999"), scopes: "https://graph.microsoft.com/.default"}, time.Now()); !ok {
		t.Fatal("newest entry evicted")
	}
	if _, ok := c.get(oboKey{assertion: cacheKey("assertion-0"), scopes: "https://graph.microsoft.com/.default"}, time.Now()); ok {
		t.Fatal("oldest entry kept")
	}
	t.Logf("heap after 100k assertions %.1f MB, after 1M %.1f MB", float64(base)/1e6, float64(after)/1e6)
}
