package emulator

import (
	"bytes"
	"crypto/sha1" // #nosec: customKeyIdentifier is the SHA-1 thumbprint, as in Graph
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The app-registration slice of Graph that `entramcp setup` and `doctor` use: applications,
// passwords, federated credentials, service principals and delegated permission grants.

var (
	appReadDelegated   = []string{"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All"}
	appReadRoles       = []string{"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All"}
	appWriteDelegated  = []string{"Application.ReadWrite.All"}
	appWriteRoles      = []string{"Application.ReadWrite.All"}
	grantReadDelegated = []string{"DelegatedPermissionGrant.ReadWrite.All", "Directory.Read.All"}
	grantWriteRoles    = []string{"DelegatedPermissionGrant.ReadWrite.All"}
	appAdminRoles      = []string{"Global Administrator", "Application Administrator", "Cloud Application Administrator"}
	grantAdminRoles    = []string{"Global Administrator", "Privileged Role Administrator"}
)

func canRead(c *graphCaller, delegated, roles []string) *graphError {
	if !c.hasAny(delegated, roles) {
		return errInsufficient
	}
	return nil
}

// canWrite needs the permission and, for a signed-in user, an admin role.
func canWrite(c *graphCaller, delegated, roles, userRoles []string) *graphError {
	if !c.hasAny(delegated, roles) {
		return errInsufficient
	}
	if c.user != nil && !c.user.hasDirectoryRole(userRoles...) {
		return errInsufficient
	}
	return nil
}

func (em *Emulator) registerAppRoutes(mux *http.ServeMux) {
	em.graphRoute(mux, "GET /v1.0/applications", em.listApplications)
	em.graphRoute(mux, "POST /v1.0/applications", em.createApplication)
	em.graphRoute(mux, "GET /v1.0/applications/{id}", em.getApplication)
	em.graphRoute(mux, "PATCH /v1.0/applications/{id}", em.patchApplication)
	em.graphRoute(mux, "DELETE /v1.0/applications/{id}", em.deleteApplication)
	em.graphRoute(mux, "POST /v1.0/applications/{id}/addPassword", em.addPassword)
	em.graphRoute(mux, "POST /v1.0/applications/{id}/removePassword", em.removePassword)
	em.graphRoute(mux, "GET /v1.0/applications/{id}/federatedIdentityCredentials", em.listFICs)
	em.graphRoute(mux, "POST /v1.0/applications/{id}/federatedIdentityCredentials", em.createFIC)
	em.graphRoute(mux, "DELETE /v1.0/applications/{id}/federatedIdentityCredentials/{fic}", em.deleteFIC)
	em.graphRoute(mux, "GET /v1.0/servicePrincipals", em.listServicePrincipals)
	em.graphRoute(mux, "POST /v1.0/servicePrincipals", em.createServicePrincipal)
	em.graphRoute(mux, "GET /v1.0/servicePrincipals/{id}", em.getServicePrincipal)
	em.graphRoute(mux, "GET /v1.0/oauth2PermissionGrants", em.listGrants)
	em.graphRoute(mux, "POST /v1.0/oauth2PermissionGrants", em.createGrant)
	em.graphRoute(mux, "GET /v1.0/oauth2PermissionGrants/{id}", em.getGrant)
	em.graphRoute(mux, "PATCH /v1.0/oauth2PermissionGrants/{id}", em.patchGrant)
	em.graphRoute(mux, "DELETE /v1.0/oauth2PermissionGrants/{id}", em.deleteGrant)
	// Alternate keys: /applications(appId='...') and /servicePrincipals(appId='...').
	em.graphRoute(mux, "GET /v1.0/{key}", em.getByAlternateKey)
	em.graphRoute(mux, "PATCH /v1.0/{key}", em.patchByAlternateKey)
}

var altKey = regexp.MustCompile(`^(applications|servicePrincipals)\(appId='([0-9a-fA-F-]{36})'\)$`)

func (em *Emulator) getByAlternateKey(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	m := altKey.FindStringSubmatch(r.PathValue("key"))
	if m == nil {
		return gerr(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+truncate(r.PathValue("key"), 80)+"'.")
	}
	if m[1] == "applications" {
		a := em.dir.appByAppID(m[2])
		if a == nil || isBuiltin(a) {
			return notFound(m[2])
		}
		r.SetPathValue("id", a.ID)
		return em.getApplication(w, r, c)
	}
	sp := em.dir.spByAppID(m[2])
	if sp == nil {
		return notFound(m[2])
	}
	r.SetPathValue("id", sp.ID)
	return em.getServicePrincipal(w, r, c)
}

func (em *Emulator) patchByAlternateKey(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	m := altKey.FindStringSubmatch(r.PathValue("key"))
	if m == nil || m[1] != "applications" {
		return gerr(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+truncate(r.PathValue("key"), 80)+"'.")
	}
	a := em.dir.appByAppID(m[2])
	if a == nil || isBuiltin(a) {
		return notFound(m[2])
	}
	r.SetPathValue("id", a.ID)
	return em.patchApplication(w, r, c)
}

func notFound(id string) *graphError {
	return gerr(http.StatusNotFound, "Request_ResourceNotFound", "Resource '"+truncate(id, 80)+"' does not exist or one of its queried reference-property objects are not present.")
}

// isBuiltin: Microsoft's own apps (Graph, first-party clients) are not registrations of this
// tenant and are not listed under /applications.
func isBuiltin(a *Application) bool {
	return a.AppID == GraphAppID || a.AppID == TokenExchangeAppID || a.FirstParty
}

// applicationJSON is the Graph view of an app: secrets and certificate bodies never appear, nor
// emulator-only fields.
func applicationJSON(a *Application) map[string]any {
	m := toMap(a)
	for _, k := range []string{"federatedIdentityCredentials", "firstParty", "noServicePrincipal"} {
		delete(m, k)
	}
	if pcs, ok := m["passwordCredentials"].([]any); ok {
		for _, pc := range pcs {
			if p, ok := pc.(map[string]any); ok {
				p["secretText"] = nil
			}
		}
	}
	if kcs, ok := m["keyCredentials"].([]any); ok {
		for _, kc := range kcs {
			if k, ok := kc.(map[string]any); ok {
				k["key"] = nil
			}
		}
	}
	for _, k := range []string{"identifierUris", "appRoles", "requiredResourceAccess", "passwordCredentials", "keyCredentials"} {
		if m[k] == nil {
			m[k] = []any{}
		}
	}
	return m
}

var appFilterFields = []string{"id", "appId", "displayName", "identifierUris", "signInAudience"}

func (em *Emulator) listApplications(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canRead(c, appReadDelegated, appReadRoles); ge != nil {
		return ge
	}
	var items []map[string]any
	for _, a := range em.dir.apps {
		if !isBuiltin(a) {
			items = append(items, applicationJSON(a))
		}
	}
	items, ge := filterObjects(items, r.URL.Query().Get("$filter"), appFilterFields)
	if ge != nil {
		return ge
	}
	return em.writePage(w, r, items, 100, 999, "applications")
}

func (em *Emulator) appFromPath(r *http.Request) (*Application, *graphError) {
	a := em.dir.appByObjectID(r.PathValue("id"))
	if a == nil || isBuiltin(a) {
		return nil, notFound(r.PathValue("id"))
	}
	return a, nil
}

func (em *Emulator) getApplication(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canRead(c, appReadDelegated, appReadRoles); ge != nil {
		return ge
	}
	a, ge := em.appFromPath(r)
	if ge != nil {
		return ge
	}
	return writeEntity(w, r, em.GraphURL()+"/v1.0/$metadata#applications/$entity", applicationJSON(a))
}

// writableAppFields are the application properties a client may set.
var writableAppFields = []string{"displayName", "signInAudience", "identifierUris", "isFallbackPublicClient", "groupMembershipClaims",
	"web", "publicClient", "spa", "api", "appRoles", "requiredResourceAccess", "keyCredentials", "description", "notes", "tags", "info"}

func readBody(r *http.Request) (map[string]any, *graphError) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, gerr(http.StatusRequestEntityTooLarge, "Request_BadRequest", "The request body is too large.")
	}
	m := map[string]any{}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, gerr(http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
	}
	return m, nil
}

func checkFields(body map[string]any, allowed []string, typ string) *graphError {
	for k := range body {
		if !slices.Contains(allowed, k) {
			return gerr(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Property '%s' is read-only or does not exist on type 'microsoft.graph.%s'.", truncate(k, 60), typ))
		}
	}
	return nil
}

// decodeApp turns a merged JSON object back into an Application, strictly.
func decodeApp(m map[string]any) (*Application, *graphError) {
	b, _ := json.Marshal(m)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var a Application
	if err := dec.Decode(&a); err != nil {
		return nil, gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid property value: "+truncate(err.Error(), 200))
	}
	return &a, nil
}

func (em *Emulator) createApplication(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canWrite(c, appWriteDelegated, appWriteRoles, appAdminRoles); ge != nil {
		return ge
	}
	body, ge := readBody(r)
	if ge != nil {
		return ge
	}
	if ge := checkFields(body, writableAppFields, "application"); ge != nil {
		return ge
	}
	delete(body, "description")
	delete(body, "notes")
	delete(body, "tags")
	delete(body, "info")
	a, ge := decodeApp(body)
	if ge != nil {
		return ge
	}
	if strings.TrimSpace(a.DisplayName) == "" {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "Property 'displayName' is required.")
	}
	a.ID, a.AppID = newGUID(), newGUID()
	if a.SignInAudience == "" {
		a.SignInAudience = "AzureADandPersonalMicrosoftAccount"
	}
	now := em.now().UTC().Truncate(time.Second)
	a.CreatedDateTime = &now
	if ge := em.validateApp(a, nil); ge != nil {
		return ge
	}
	em.dir.apps = append(em.dir.apps, a)
	out := applicationJSON(a)
	out["@odata.context"] = em.GraphURL() + "/v1.0/$metadata#applications/$entity"
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// validateApp applies the rules Graph enforces that setup is likely to trip over.
func (em *Emulator) validateApp(a, old *Application) *graphError {
	for _, u := range a.IdentifierURIs {
		ok := strings.HasPrefix(u, "api://"+a.AppID) || strings.HasPrefix(u, "api://"+em.dir.tenant.ID) ||
			strings.HasPrefix(strings.ToLower(u), "https://"+strings.ToLower(em.dir.tenant.Domain)) ||
			strings.HasPrefix(strings.ToLower(u), "api://"+strings.ToLower(em.dir.tenant.Domain))
		if !ok {
			return gerr(http.StatusBadRequest, "HostNameNotOnVerifiedDomain", "Values of identifierUris property must use a verified domain of the organization or its subdomain: '"+truncate(u, 100)+"'")
		}
		for _, other := range em.dir.apps {
			if other != old && other.AppID != a.AppID && slices.ContainsFunc(other.IdentifierURIs, func(x string) bool { return strings.EqualFold(x, u) }) {
				return gerr(http.StatusBadRequest, "Request_BadRequest", "Another object with the same value for property identifierUris already exists.")
			}
		}
	}
	seen := map[string]bool{}
	for _, s := range a.API.OAuth2PermissionScopes {
		if !isGUID(s.ID) || s.Value == "" || strings.ContainsAny(s.Value, " \"") || seen[s.ID] || seen["v:"+s.Value] {
			return gerr(http.StatusBadRequest, "Request_BadRequest", "Each oauth2PermissionScopes entry needs a unique GUID id and a unique value without spaces.")
		}
		seen[s.ID], seen["v:"+s.Value] = true, true
	}
	for _, role := range a.AppRoles {
		if !isGUID(role.ID) || role.Value == "" || seen[role.ID] {
			return gerr(http.StatusBadRequest, "Request_BadRequest", "Each appRoles entry needs a unique GUID id and a value.")
		}
		seen[role.ID] = true
	}
	if old != nil {
		for _, s := range old.API.OAuth2PermissionScopes {
			if !s.IsEnabled {
				continue
			}
			i := slices.IndexFunc(a.API.OAuth2PermissionScopes, func(x PermissionScope) bool { return x.ID == s.ID })
			if i < 0 || a.API.OAuth2PermissionScopes[i].Value != s.Value {
				return gerr(http.StatusBadRequest, "CannotDeleteOrUpdateEnabledEntitlement", "Permission (scope or role) cannot be deleted or updated unless disabled first.")
			}
		}
	}
	if a.API.RequestedAccessTokenVersion != nil && *a.API.RequestedAccessTokenVersion != 1 && *a.API.RequestedAccessTokenVersion != 2 {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "api.requestedAccessTokenVersion must be 1, 2 or null.")
	}
	for i := range a.KeyCredentials {
		kc := &a.KeyCredentials[i]
		if kc.Key == "" && old != nil {
			for _, ok := range old.KeyCredentials {
				if ok.KeyID == kc.KeyID {
					kc.Key = ok.Key
				}
			}
		}
		der, err := base64.StdEncoding.DecodeString(kc.Key)
		if err != nil {
			return gerr(http.StatusBadRequest, "Request_BadRequest", "keyCredentials: key must be a base64 DER certificate.")
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return gerr(http.StatusBadRequest, "Request_BadRequest", "keyCredentials: key is not a valid certificate.")
		}
		if kc.KeyID == "" {
			kc.KeyID = newGUID()
		}
		if kc.Type == "" {
			kc.Type = "AsymmetricX509Cert"
		}
		if kc.Usage == "" {
			kc.Usage = "Verify"
		}
		sum := sha1.Sum(der) // #nosec G401
		kc.CustomKeyIdentifier = strings.ToUpper(hex.EncodeToString(sum[:]))
		start, end := cert.NotBefore.UTC(), cert.NotAfter.UTC()
		kc.StartDateTime, kc.EndDateTime = &start, &end
	}
	return nil
}

// mergeJSON merges patch into base: objects recursively, everything else replaced.
func mergeJSON(base, patch map[string]any) {
	for k, v := range patch {
		if pv, ok := v.(map[string]any); ok {
			if bv, ok := base[k].(map[string]any); ok {
				mergeJSON(bv, pv)
				continue
			}
		}
		base[k] = v
	}
}

func (em *Emulator) patchApplication(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canWrite(c, appWriteDelegated, appWriteRoles, appAdminRoles); ge != nil {
		return ge
	}
	a, ge := em.appFromPath(r)
	if ge != nil {
		return ge
	}
	body, ge := readBody(r)
	if ge != nil {
		return ge
	}
	if ge := checkFields(body, writableAppFields, "application"); ge != nil {
		return ge
	}
	for _, k := range []string{"description", "notes", "tags", "info"} {
		delete(body, k)
	}
	base := toMap(a)
	mergeJSON(base, body)
	next, ge := decodeApp(base)
	if ge != nil {
		return ge
	}
	next.ID, next.AppID, next.CreatedDateTime = a.ID, a.AppID, a.CreatedDateTime
	next.PasswordCredentials, next.FederatedIdentityCredentials = a.PasswordCredentials, a.FederatedIdentityCredentials
	if ge := em.validateApp(next, a); ge != nil {
		return ge
	}
	*a = *next
	if sp := em.dir.spByAppID(a.AppID); sp != nil { // the SP mirrors the app's published permissions
		sp.DisplayName, sp.AppRoles, sp.OAuth2PermissionScopes = a.DisplayName, a.AppRoles, a.API.OAuth2PermissionScopes
		sp.ServicePrincipalNames = append([]string{a.AppID}, a.IdentifierURIs...)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (em *Emulator) deleteApplication(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canWrite(c, appWriteDelegated, appWriteRoles, appAdminRoles); ge != nil {
		return ge
	}
	a, ge := em.appFromPath(r)
	if ge != nil {
		return ge
	}
	em.dir.apps = slices.DeleteFunc(em.dir.apps, func(x *Application) bool { return x == a })
	if sp := em.dir.spByAppID(a.AppID); sp != nil {
		em.dir.sps = slices.DeleteFunc(em.dir.sps, func(x *ServicePrincipal) bool { return x == sp })
		em.dir.grants = slices.DeleteFunc(em.dir.grants, func(g *PermissionGrant) bool { return g.ClientID == sp.ID || g.ResourceID == sp.ID })
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (em *Emulator) addPassword(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canWrite(c, appWriteDelegated, appWriteRoles, appAdminRoles); ge != nil {
		return ge
	}
	a, ge := em.appFromPath(r)
	if ge != nil {
		return ge
	}
	var body struct {
		PasswordCredential struct {
			DisplayName   string     `json:"displayName"`
			StartDateTime *time.Time `json:"startDateTime"`
			EndDateTime   *time.Time `json:"endDateTime"`
		} `json:"passwordCredential"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil && err != io.EOF {
		return gerr(http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload.")
	}
	now := em.now().UTC().Truncate(time.Second)
	pc := PasswordCredential{KeyID: newGUID(), DisplayName: body.PasswordCredential.DisplayName, StartDateTime: &now}
	end := now.AddDate(2, 0, 0)
	if e := body.PasswordCredential.EndDateTime; e != nil {
		if !e.After(now) {
			return gerr(http.StatusBadRequest, "Request_BadRequest", "endDateTime must be in the future.")
		}
		end = e.UTC()
	}
	if s := body.PasswordCredential.StartDateTime; s != nil {
		pc.StartDateTime = s
	}
	pc.EndDateTime = &end
	pc.SecretText = randomToken(3)[:3] + "8Q~" + randomToken(27)
	pc.Hint = pc.SecretText[:3]
	a.PasswordCredentials = append(a.PasswordCredentials, pc)
	out := toMap(pc)
	out["customKeyIdentifier"] = nil
	out["@odata.context"] = em.GraphURL() + "/v1.0/$metadata#microsoft.graph.passwordCredential"
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (em *Emulator) removePassword(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canWrite(c, appWriteDelegated, appWriteRoles, appAdminRoles); ge != nil {
		return ge
	}
	a, ge := em.appFromPath(r)
	if ge != nil {
		return ge
	}
	var body struct {
		KeyID string `json:"keyId"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	n := len(a.PasswordCredentials)
	a.PasswordCredentials = slices.DeleteFunc(a.PasswordCredentials, func(p PasswordCredential) bool { return p.KeyID == body.KeyID })
	if len(a.PasswordCredentials) == n {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "No password credential with keyId '"+truncate(body.KeyID, 40)+"'.")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (em *Emulator) listFICs(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canRead(c, appReadDelegated, appReadRoles); ge != nil {
		return ge
	}
	a, ge := em.appFromPath(r)
	if ge != nil {
		return ge
	}
	items := []map[string]any{}
	for _, f := range a.FederatedIdentityCredentials {
		items = append(items, toMap(f))
	}
	return em.writePage(w, r, items, 100, 100, "applications('"+a.ID+"')/federatedIdentityCredentials")
}

func (em *Emulator) createFIC(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canWrite(c, appWriteDelegated, appWriteRoles, appAdminRoles); ge != nil {
		return ge
	}
	a, ge := em.appFromPath(r)
	if ge != nil {
		return ge
	}
	var f FederatedIdentityCredential
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid federatedIdentityCredential: "+truncate(err.Error(), 120))
	}
	if f.Name == "" || f.Issuer == "" || f.Subject == "" || len(f.Audiences) != 1 {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "name, issuer, subject and exactly one audience are required.")
	}
	if len(a.FederatedIdentityCredentials) >= 20 {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "An application can have at most 20 federated identity credentials.")
	}
	for _, x := range a.FederatedIdentityCredentials {
		if x.Name == f.Name || (x.Issuer == f.Issuer && x.Subject == f.Subject) {
			return gerr(http.StatusConflict, "Request_MultipleObjectsWithSameKeyValue", "FederatedIdentityCredential with name "+f.Name+" or the same issuer and subject already exists.")
		}
	}
	f.ID = newGUID()
	a.FederatedIdentityCredentials = append(a.FederatedIdentityCredentials, f)
	writeJSON(w, http.StatusCreated, toMap(f))
	return nil
}

func (em *Emulator) deleteFIC(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canWrite(c, appWriteDelegated, appWriteRoles, appAdminRoles); ge != nil {
		return ge
	}
	a, ge := em.appFromPath(r)
	if ge != nil {
		return ge
	}
	id := r.PathValue("fic")
	n := len(a.FederatedIdentityCredentials)
	a.FederatedIdentityCredentials = slices.DeleteFunc(a.FederatedIdentityCredentials, func(f FederatedIdentityCredential) bool { return f.ID == id || f.Name == id })
	if len(a.FederatedIdentityCredentials) == n {
		return notFound(id)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

var spFilterFields = []string{"id", "appId", "displayName", "servicePrincipalNames"}

func (em *Emulator) listServicePrincipals(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canRead(c, appReadDelegated, appReadRoles); ge != nil {
		return ge
	}
	var items []map[string]any
	for _, sp := range em.dir.sps {
		items = append(items, toMap(sp))
	}
	items, ge := filterObjects(items, r.URL.Query().Get("$filter"), spFilterFields)
	if ge != nil {
		return ge
	}
	return em.writePage(w, r, items, 100, 999, "servicePrincipals")
}

func (em *Emulator) getServicePrincipal(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canRead(c, appReadDelegated, appReadRoles); ge != nil {
		return ge
	}
	sp := em.dir.spByID(r.PathValue("id"))
	if sp == nil {
		return notFound(r.PathValue("id"))
	}
	return writeEntity(w, r, em.GraphURL()+"/v1.0/$metadata#servicePrincipals/$entity", toMap(sp))
}

func (em *Emulator) createServicePrincipal(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canWrite(c, appWriteDelegated, appWriteRoles, appAdminRoles); ge != nil {
		return ge
	}
	var body struct {
		AppID string `json:"appId"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || !isGUID(body.AppID) {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "appId is required and must be a GUID.")
	}
	a := em.dir.appByAppID(body.AppID)
	if a == nil {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "The appId '"+body.AppID+"' of the service principal does not reference a valid application object.")
	}
	if em.dir.spByAppID(a.AppID) != nil {
		return gerr(http.StatusConflict, "Request_MultipleObjectsWithSameKeyValue", "The service principal cannot be created, updated, or restored because the service principal name "+a.AppID+" is already in use.")
	}
	sp := em.dir.addServicePrincipal(a)
	writeJSON(w, http.StatusCreated, toMap(sp))
	return nil
}

var grantFilterFields = []string{"id", "clientId", "resourceId", "consentType", "principalId"}

func (em *Emulator) listGrants(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canRead(c, grantReadDelegated, append(grantWriteRoles, "Directory.Read.All")); ge != nil {
		return ge
	}
	var items []map[string]any
	for _, g := range em.dir.grants {
		items = append(items, grantJSON(g))
	}
	items, ge := filterObjects(items, r.URL.Query().Get("$filter"), grantFilterFields)
	if ge != nil {
		return ge
	}
	return em.writePage(w, r, items, 100, 999, "oauth2PermissionGrants")
}

func grantJSON(g *PermissionGrant) map[string]any {
	m := toMap(g)
	if g.PrincipalID == "" {
		m["principalId"] = nil
	}
	return m
}

func (em *Emulator) grantFromPath(r *http.Request) (*PermissionGrant, *graphError) {
	for _, g := range em.dir.grants {
		if g.ID == r.PathValue("id") {
			return g, nil
		}
	}
	return nil, notFound(r.PathValue("id"))
}

func (em *Emulator) getGrant(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canRead(c, grantReadDelegated, append(grantWriteRoles, "Directory.Read.All")); ge != nil {
		return ge
	}
	g, ge := em.grantFromPath(r)
	if ge != nil {
		return ge
	}
	return writeEntity(w, r, em.GraphURL()+"/v1.0/$metadata#oauth2PermissionGrants/$entity", grantJSON(g))
}

// checkGrantScopes verifies each scope is a delegated permission the resource exposes.
func (em *Emulator) checkGrantScopes(resource *ServicePrincipal, scope string) *graphError {
	if strings.TrimSpace(scope) == "" {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "scope must list at least one permission.")
	}
	app := em.dir.appByAppID(resource.AppID)
	for _, s := range strings.Fields(scope) {
		if app == nil || (findScope(app, s) == nil && !isOIDCScope(s)) {
			return gerr(http.StatusBadRequest, "Request_BadRequest", "Permission entry '"+truncate(s, 60)+"' is not a delegated permission of the resource.")
		}
	}
	return nil
}

func (em *Emulator) createGrant(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canWrite(c, []string{"DelegatedPermissionGrant.ReadWrite.All"}, grantWriteRoles, grantAdminRoles); ge != nil {
		return ge
	}
	var g PermissionGrant
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid oAuth2PermissionGrant: "+truncate(err.Error(), 120))
	}
	cs, rs := em.dir.spByID(g.ClientID), em.dir.spByID(g.ResourceID)
	if cs == nil || rs == nil {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "clientId and resourceId must be service principal object ids.")
	}
	switch g.ConsentType {
	case "AllPrincipals":
		g.PrincipalID = ""
	case "Principal":
		if em.dir.userByID(g.PrincipalID) == nil {
			return gerr(http.StatusBadRequest, "Request_BadRequest", "principalId must be a user id when consentType is Principal.")
		}
	default:
		return gerr(http.StatusBadRequest, "Request_BadRequest", "consentType must be AllPrincipals or Principal.")
	}
	if ge := em.checkGrantScopes(rs, g.Scope); ge != nil {
		return ge
	}
	for _, x := range em.dir.grants {
		if x.ClientID == g.ClientID && x.ResourceID == g.ResourceID && x.PrincipalID == g.PrincipalID {
			return gerr(http.StatusConflict, "Request_MultipleObjectsWithSameKeyValue", "Permission entry already exists.")
		}
	}
	g.ID = newGUID()
	em.dir.grants = append(em.dir.grants, &g)
	writeJSON(w, http.StatusCreated, grantJSON(&g))
	return nil
}

func (em *Emulator) patchGrant(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canWrite(c, []string{"DelegatedPermissionGrant.ReadWrite.All"}, grantWriteRoles, grantAdminRoles); ge != nil {
		return ge
	}
	g, ge := em.grantFromPath(r)
	if ge != nil {
		return ge
	}
	body, ge := readBody(r)
	if ge != nil {
		return ge
	}
	if ge := checkFields(body, []string{"scope"}, "oAuth2PermissionGrant"); ge != nil {
		return ge
	}
	scope, _ := body["scope"].(string)
	if ge := em.checkGrantScopes(em.dir.spByID(g.ResourceID), scope); ge != nil {
		return ge
	}
	g.Scope = strings.Join(strings.Fields(scope), " ")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (em *Emulator) deleteGrant(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if ge := canWrite(c, []string{"DelegatedPermissionGrant.ReadWrite.All"}, grantWriteRoles, grantAdminRoles); ge != nil {
		return ge
	}
	g, ge := em.grantFromPath(r)
	if ge != nil {
		return ge
	}
	em.dir.grants = slices.DeleteFunc(em.dir.grants, func(x *PermissionGrant) bool { return x == g })
	w.WriteHeader(http.StatusNoContent)
	return nil
}
