package oauthproxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
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

// allow counts one event for remote and reports whether it is within limit per minute
// (limit <= 0: the default, 10).
func (l *limiter) allow(remote string, limit int, now time.Time) bool {
	if limit <= 0 {
		limit = 10
	}
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

// withCaller records the request's client address for rate limits deeper down (the metadata
// document fetch happens inside a client lookup).
func (r *Registry) withCaller(req *http.Request) context.Context {
	return context.WithValue(req.Context(), callerKey{}, ClientAddress(req, r.TrustedProxies))
}

func callerFrom(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}

// ClientAddress is the address a request counts against: the TCP peer, unless the peer is a
// trusted proxy (an ingress or load balancer), in which case X-Forwarded-For is read from the
// right, skipping trusted hops, and the first untrusted address is the client. Entries left
// of it are the client's own claims and are ignored. Without trusted proxies the header is
// never read: anyone can send it.
func ClientAddress(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !inAny(peer.Unmap(), trusted) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	client := peer.Unmap()
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: stop at the last address we could trust to be real
		}
		client = a.Unmap()
		if !inAny(client, trusted) {
			break
		}
	}
	return client.String()
}

func inAny(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
