package metrics

import (
	"strings"
	"sync"
	"testing"
)

func TestTextFormat(t *testing.T) {
	r := NewRegistry()
	c := r.NewCounterVec("x_total", "Things.", "kind")
	h := r.NewHistogram("lat_seconds", "Latency.", []float64{0.001, 0.01})
	r.NewGaugeFunc("g", "Gauge.", func() float64 { return 3 })
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); c.Inc("a"); h.Observe(0.005) }()
	}
	wg.Wait()
	c.Add("b\nc", 2)
	h.Observe(5)
	var b strings.Builder
	r.Write(&b)
	out := b.String()
	for _, want := range []string{
		"# TYPE x_total counter", `x_total{kind="a"} 100`, `x_total{kind="b c"} 2`,
		`lat_seconds_bucket{le="0.001"} 0`, `lat_seconds_bucket{le="0.01"} 100`, `lat_seconds_bucket{le="+Inf"} 101`, "lat_seconds_count 101",
		"g 3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if c.Get("a") != 100 || c.Get("none") != 0 {
		t.Errorf("Get: %d %d", c.Get("a"), c.Get("none"))
	}
}
