package emulator

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// consumersTenantID is the tenant id Entra uses for personal Microsoft accounts.
const consumersTenantID = "9188040d-6c67-4c5b-b112-36a304b66dad"

// resolveTenant maps the authority's tenant segment (GUID, verified domain, organizations,
// common, consumers) to its kind. Unknown tenants get AADSTS90002.
func (em *Emulator) resolveTenant(seg string) (string, *aadError) {
	t := em.dir.tenant
	switch {
	case strings.EqualFold(seg, t.ID), strings.EqualFold(seg, t.Domain):
		return "tenant", nil
	case strings.EqualFold(seg, "organizations"), strings.EqualFold(seg, "common"), strings.EqualFold(seg, "consumers"):
		return strings.ToLower(seg), nil
	}
	return "", aad("invalid_tenant", 90002, "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", truncate(seg, 100))
}

// issuerFor is the issuer a discovery document announces for a tenant segment: the tenant's
// own, the {tenantid} template for common and organizations, or the consumers tenant.
func (em *Emulator) issuerFor(kind string) string {
	switch kind {
	case "common", "organizations":
		return em.URL() + "/{tenantid}/v2.0"
	case "consumers":
		return em.URL() + "/" + consumersTenantID + "/v2.0"
	}
	return em.Issuer()
}

func (em *Emulator) discoveryHeaders(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "max-age=86400, private")
	w.Header().Set("Access-Control-Allow-Origin", "*")
}

func (em *Emulator) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	kind, e := em.resolveTenant(r.PathValue("tenant"))
	if e != nil {
		em.writeTokenError(w, r, e)
		return
	}
	seg := em.dir.tenant.ID
	if kind != "tenant" {
		seg = kind
	}
	auth := em.URL() + "/" + seg
	doc := map[string]any{
		"token_endpoint":                        auth + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              auth + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                em.issuerFor(kind),
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     em.GraphURL() + "/oidc/userinfo",
		"authorization_endpoint":                auth + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         auth + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  auth + "/oauth2/v2.0/logout",
		"claims_supported": []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
			"msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver",
			"at_hash", "c_hash", "email"},
		"kerberos_endpoint":     auth + "/kerberos",
		"tenant_region_scope":   nil,
		"cloud_instance_name":   "microsoftonline.com",
		"cloud_graph_host_name": "graph.windows.net",
		"msgraph_host":          em.graph.addr,
		"rbac_url":              "https://pas.windows.net",
	}
	if kind == "tenant" && em.dir.tenant.Region != "" {
		doc["tenant_region_scope"] = em.dir.tenant.Region
	}
	em.discoveryHeaders(w)
	writeJSON(w, http.StatusOK, doc)
}

func (em *Emulator) handleKeys(w http.ResponseWriter, r *http.Request) {
	kind, e := em.resolveTenant(r.PathValue("tenant"))
	if e != nil {
		em.writeTokenError(w, r, e)
		return
	}
	iss := em.issuerFor(kind)
	em.keyMu.RLock()
	keys := make([]map[string]any, 0, len(em.published))
	for _, k := range em.published {
		keys = append(keys, k.jwk(iss))
	}
	em.keyMu.RUnlock()
	em.stats.countJWKS()
	em.discoveryHeaders(w)
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

// handleInstanceDiscovery answers MSAL's instance discovery for the emulator's own host and
// rejects any other authority, as Entra does for unknown hosts.
func (em *Emulator) handleInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	ae := r.URL.Query().Get("authorization_endpoint")
	u, err := url.Parse(ae)
	host := em.login.addr
	if ae == "" || err != nil || !strings.EqualFold(u.Host, host) {
		e := aad("invalid_instance", 50049, "Unknown or invalid instance.")
		em.writeTokenError(w, r, e)
		return
	}
	tenant := "common"
	if parts := strings.Split(strings.Trim(u.Path, "/"), "/"); len(parts) > 0 && parts[0] != "" {
		tenant = parts[0]
	}
	em.discoveryHeaders(w)
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": em.URL() + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host, "preferred_cache": host, "aliases": []string{host},
		}},
	})
}

// handleErrorPage is the error_uri target: a short page naming the AADSTS code.
func (em *Emulator) handleErrorPage(w http.ResponseWriter, r *http.Request) {
	code, _ := strconv.Atoi(r.URL.Query().Get("code"))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!doctype html><title>AADSTS%d</title><h1>Error AADSTS%d</h1><p>See docs/emulator.md in entramcp for what the emulator models for this code.</p>", code, code)
}

// handleIndex lists the emulator's endpoints for a person who opens the base URL.
func (em *Emulator) handleIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	a := html.EscapeString(em.Authority())
	fmt.Fprintf(w, `<!doctype html><title>entramcp emulator</title><h1>entramcp Entra ID emulator</h1>
<p>Tenant %s (%s)</p><ul>
<li><a href="%s/v2.0/.well-known/openid-configuration">OpenID configuration</a></li>
<li><a href="%s/discovery/v2.0/keys">Signing keys</a></li>
<li>Microsoft Graph: %s</li>
<li><a href="/_emulator/stats">Statistics</a></li></ul>`,
		html.EscapeString(em.dir.tenant.DisplayName), html.EscapeString(em.dir.tenant.ID), a, a, html.EscapeString(em.GraphURL()))
}
