package oauthproxy

// WithCallerForTest exposes withCaller to the external tests.
var WithCallerForTest = withCaller
