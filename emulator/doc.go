// Package emulator is a local stand-in for Microsoft Entra ID (the v2 identity platform) and the
// slice of Microsoft Graph that entramcp uses.
//
// It exists because no Entra tenant is reachable from development machines or CI, yet every other
// package must be proven against Entra's real wire formats. It therefore follows the facts recorded
// in shared/ENTRA-FACTS.md: v2 discovery and JWKS, /authorize with a sign-in page, every grant of
// the token endpoint including On-Behalf-Of, the AADSTS error envelope, v1 and v2 access tokens,
// Graph tokens with an unverifiable nonce header, managed-identity endpoints, and Graph's /me,
// group membership, Message Center and app-registration calls. Known differences from Entra are
// listed in docs/emulator.md.
//
// The emulator serves HTTPS on loopback with a certificate authority it generates, because MSAL
// refuses authorities that are not https. Its test controls (statistics, faults, key rotation,
// clock offset) live under /_emulator/ and answer loopback callers only.
//
// It is used by tests and by `entramcp dev`; no production package imports it. It never logs a
// token, secret, password or authorization code.
package emulator
