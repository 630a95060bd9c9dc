package oauthproxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// limiter counts events per remote address in fixed one-minute windows. It is per process:
// with N replicas an address gets up to N times the limit, which still bounds a flood; a shared
// counter would put a store write on every request for little gain.
type limiter struct {
	mu      sync.Mutex
	windows map[string]*rateWindow
}

type rateWindow struct {
	start time.Time
	n     int
}

// allow counts one event for remote and reports whether it is within limit per minute.
func (l *limiter) allow(remote string, limit int, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.windows == nil || len(l.windows) > 10_000 {
		l.windows = map[string]*rateWindow{} // bounded memory: a reset only forgives
	}
	w := l.windows[remote]
	if w == nil || now.Sub(w.start) >= time.Minute {
		w = &rateWindow{start: now}
		l.windows[remote] = w
	}
	w.n++
	return w.n <= limit
}

// ErrRateLimited means the caller's address has made too many requests of this kind in the
// last minute; endpoints answer 429 with Retry-After.
var ErrRateLimited = errors.New("too many requests from this address; try again in a minute")

type callerKey struct{}

// withCaller records the request's remote address for rate limits deeper down (the metadata
// document fetch happens inside a client lookup).
func withCaller(r *http.Request) context.Context {
	return context.WithValue(r.Context(), callerKey{}, remoteHost(r))
}

func callerFrom(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
