package oauthproxy

import (
	"context"
	"net/http"
	"time"
)

// WithCallerForTest exposes withCaller to the external tests.
func WithCallerForTest(r *http.Request) context.Context { return (&Registry{}).withCaller(r) }

// CacheForTest exposes how long a document response with headers h is cached.
func (d *Documents) CacheForTest(h map[string][]string) time.Duration { return d.cacheFor(h) }
