// Package metrics is a small Prometheus text-format registry: counters, labelled counters and
// histograms with fixed buckets, all safe for concurrent use and cheap on the request path
// (atomic adds, no allocation per observation). It exists so the server needs no client library
// for the handful of series it exports.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds metrics and writes them in the Prometheus text format.
type Registry struct {
	mu      sync.Mutex
	metrics []writer
}

type writer interface{ write(io.Writer) }

// NewRegistry makes an empty registry.
func NewRegistry() *Registry { return &Registry{} }

func (r *Registry) add(w writer) {
	r.mu.Lock()
	r.metrics = append(r.metrics, w)
	r.mu.Unlock()
}

// Handler serves the registry at /metrics.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.Write(w)
	})
}

// Write writes every metric in the text format.
func (r *Registry) Write(w io.Writer) {
	r.mu.Lock()
	ms := slices.Clone(r.metrics)
	r.mu.Unlock()
	for _, m := range ms {
		m.write(w)
	}
}

// CounterVec is a counter with one label.
type CounterVec struct {
	name, help, label string
	mu                sync.RWMutex
	values            map[string]*atomic.Uint64
}

// NewCounterVec registers a counter with one label.
func (r *Registry) NewCounterVec(name, help, label string) *CounterVec {
	c := &CounterVec{name: name, help: help, label: label, values: map[string]*atomic.Uint64{}}
	r.add(c)
	return c
}

// Inc adds one for the label value.
func (c *CounterVec) Inc(value string) { c.Add(value, 1) }

// Add adds n for the label value.
func (c *CounterVec) Add(value string, n uint64) {
	c.mu.RLock()
	v, ok := c.values[value]
	c.mu.RUnlock()
	if !ok {
		c.mu.Lock()
		if v, ok = c.values[value]; !ok {
			v = new(atomic.Uint64)
			c.values[value] = v
		}
		c.mu.Unlock()
	}
	v.Add(n)
}

// Get returns the current count for the label value (tests).
func (c *CounterVec) Get(value string) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if v, ok := c.values[value]; ok {
		return v.Load()
	}
	return 0
}

func (c *CounterVec) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", c.name, c.help, c.name)
	c.mu.RLock()
	keys := make([]string, 0, len(c.values))
	for k := range c.values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s{%s=%q} %d\n", c.name, c.label, escape(k), c.values[k].Load())
	}
	c.mu.RUnlock()
}

// Histogram counts observations (seconds) in fixed buckets.
type Histogram struct {
	name, help string
	bounds     []float64
	counts     []atomic.Uint64
	count      atomic.Uint64
	sumMicros  atomic.Uint64
}

// DefaultLatencyBuckets span 100µs to 10s.
var DefaultLatencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// NewHistogram registers a histogram.
func (r *Registry) NewHistogram(name, help string, bounds []float64) *Histogram {
	h := &Histogram{name: name, help: help, bounds: bounds, counts: make([]atomic.Uint64, len(bounds))}
	r.add(h)
	return h
}

// Observe records one value in seconds.
func (h *Histogram) Observe(seconds float64) {
	i := sort.SearchFloat64s(h.bounds, seconds)
	if i < len(h.counts) {
		h.counts[i].Add(1)
	}
	h.count.Add(1)
	h.sumMicros.Add(uint64(math.Max(seconds, 0) * 1e6))
}

func (h *Histogram) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", h.name, h.help, h.name)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", h.name, b, cum)
	}
	n := h.count.Load()
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", h.name, n, h.name, float64(h.sumMicros.Load())/1e6, h.name, n)
}

// GaugeFunc reports a value computed at scrape time.
type GaugeFunc struct {
	name, help string
	fn         func() float64
}

// NewGaugeFunc registers a gauge read from fn.
func (r *Registry) NewGaugeFunc(name, help string, fn func() float64) {
	r.add(&GaugeFunc{name: name, help: help, fn: fn})
}

func (g *GaugeFunc) write(w io.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", g.name, g.help, g.name, g.name, g.fn())
}

func escape(s string) string { return strings.ReplaceAll(s, "\n", " ") }
