// Package graph is a small typed Microsoft Graph REST client: the calls entramcp's tools make,
// with timeouts, retries on 429/503 that honour Retry-After within a bounded budget,
// @odata.nextLink paging with a cap, ConsistencyLevel where Graph needs it, and Graph's error
// envelope as a typed error. It never logs the bearer token it is given.
package graph
