package emulator

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
)

// The managed-identity endpoints issue tokens for the configured user-assigned identities, in
// the two shapes MSAL and the Azure SDKs read: IMDS (Metadata: true header, string numbers) and
// App Service (X-IDENTITY-HEADER secret). Their main use is a token for api://AzureADTokenExchange
// that an app presents as its federated credential.

// IdentityHeader is the secret App Service style callers must send in X-IDENTITY-HEADER.
func (em *Emulator) IdentityHeader() string { return em.ssoMAC("identity-header")[:32] }

// IMDSEndpoint is the IMDS-style token URL (the stand-in for
// http://169.254.169.254/metadata/identity/oauth2/token).
func (em *Emulator) IMDSEndpoint() string { return em.URL() + "/metadata/identity/oauth2/token" }

// IdentityEndpoint is the App Service style IDENTITY_ENDPOINT.
func (em *Emulator) IdentityEndpoint() string { return em.URL() + "/msi/token" }

func (em *Emulator) handleIMDS(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Metadata"), "true") {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Required metadata header not specified"})
		return
	}
	em.issueMI(w, r, true)
}

func (em *Emulator) handleAppServiceMI(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-IDENTITY-HEADER")), []byte(em.IdentityHeader())) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"statusCode": 401, "message": "Unauthorized: the X-IDENTITY-HEADER value is missing or wrong."})
		return
	}
	em.issueMI(w, r, false)
}

func (em *Emulator) issueMI(w http.ResponseWriter, r *http.Request, imds bool) {
	q := r.URL.Query()
	em.stats.countToken("managed_identity")
	resource := strings.TrimSuffix(q.Get("resource"), "/.default")
	if resource == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Required query variable 'resource' is missing"})
		return
	}
	em.dir.mu.RLock()
	defer em.dir.mu.RUnlock()
	clientID := q.Get("client_id")
	principal := q.Get("object_id") + q.Get("principal_id")
	mi := em.dir.managedIdentity(clientID, principal)
	if mi == nil || q.Get("mi_res_id") != "" || q.Get("msi_res_id") != "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Identity not found"})
		return
	}
	res := em.dir.resourceByIdentifier(resource)
	if res == nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_resource", "error_description": "AADSTS500011: The resource principal named " + truncate(resource, 200) + " was not found in the tenant."})
		return
	}
	at, exp, err := em.mint(issue{mi: mi, clientAuth: "2", resource: res, viaURI: resource, roles: em.dir.roleValues(res, mi.PrincipalID)})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	now := em.now()
	secs := strconv.Itoa(int(exp.Sub(now).Seconds()))
	body := map[string]any{
		"access_token": at, "client_id": mi.ClientID, "expires_on": strconv.FormatInt(exp.Unix(), 10),
		"resource": resource, "token_type": "Bearer",
	}
	if imds {
		body["expires_in"], body["ext_expires_in"] = secs, secs
		body["not_before"] = strconv.FormatInt(now.Add(-5*60*1e9).Unix(), 10)
	}
	writeJSON(w, http.StatusOK, body)
}
