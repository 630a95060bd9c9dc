// Package entra holds what entramcp knows about Microsoft Entra ID: clouds and authorities,
// scope names, the access-token verifier with its signing-key cache, and the caller's Identity.
//
// The verifier accepts only what Entra issues for this API: RS256 tokens signed by a key the
// tenant publishes, from the expected issuer and tenant, for this app's audience, within their
// lifetime, with the required scopes (or, for app-only tokens, app roles). Everything else is
// rejected with an error that says why in words an administrator can act on. A token for another
// audience, Microsoft Graph above all, is never accepted (confused-deputy guard).
//
// This package never logs a token. Identity keeps the raw token for On-Behalf-Of exchanges;
// Identity's String and LogValue leave it out.
package entra
