package oauthproxy

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// Metadata describes the proxy as an OAuth 2.1 authorization server (RFC 8414).
type Metadata struct {
	Issuer string   // e.g. https://mcp.contoso.com
	Scopes []string // full scope URIs clients request
	// ClientIDMetadataDocuments is advertised only when the proxy accepts https client_ids
	// (not yet: a client that believed it would fail at /authorize).
	ClientIDMetadataDocuments bool
}

// Document is the RFC 8414 metadata: what Entra's discovery lacks for MCP clients (PKCE
// methods, a registration endpoint, RFC 9207 iss).
func (m Metadata) Document() map[string]any {
	base := strings.TrimSuffix(m.Issuer, "/")
	auth := []string{"none"}
	if m.ClientIDMetadataDocuments {
		auth = append(auth, "private_key_jwt") // for document clients that declare it
	}
	doc := map[string]any{
		"issuer":                                         base,
		"authorization_endpoint":                         base + "/authorize",
		"token_endpoint":                                 base + "/token",
		"registration_endpoint":                          base + "/register",
		"revocation_endpoint":                            base + "/revoke",
		"jwks_uri":                                       base + "/jwks",
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":               []string{"S256"},
		"token_endpoint_auth_methods_supported":          auth,
		"revocation_endpoint_auth_methods_supported":     auth,
		"client_id_metadata_document_supported":          m.ClientIDMetadataDocuments,
		"authorization_response_iss_parameter_supported": true,
		"scopes_supported":                               append(append([]string{}, m.Scopes...), "offline_access"),
	}
	if m.ClientIDMetadataDocuments {
		doc["token_endpoint_auth_signing_alg_values_supported"] = assertionAlgs
		doc["revocation_endpoint_auth_signing_alg_values_supported"] = assertionAlgs
	}
	return doc
}

// Handler serves the document; mount it at /.well-known/oauth-authorization-server and
// /.well-known/openid-configuration (some MCP clients look there).
func (m Metadata) Handler() http.Handler {
	doc, _ := json.Marshal(m.Document())
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(doc)
	})
}

// JWKSHandler publishes the public keys of ks.
func JWKSHandler(ks *KeySet) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "public, max-age=300")
		json.NewEncoder(w).Encode(ks.JWKS())
	})
}

func randomID() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
