package oauthproxy

import "time"

// WithCallerForTest exposes withCaller to the external tests.
var WithCallerForTest = withCaller

// CacheForTest exposes how long a document response with headers h is cached.
func (d *Documents) CacheForTest(h map[string][]string) time.Duration { return d.cacheFor(h) }
