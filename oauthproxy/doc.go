// Package oauthproxy is the authorization-server facade entramcp puts in front of Entra for MCP
// clients that need what Entra lacks. This file set so far holds its signing keys and the
// access tokens it issues: short-lived ES256 JWTs with a kid, published at its JWKS, whose keys
// live in the store so every replica signs and verifies with the same set. It never logs a
// token or a private key.
package oauthproxy
