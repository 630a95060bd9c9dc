package emulator

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// authCode is an issued authorization code, stored under the hash of its value.
type authCode struct {
	clientID    string
	redirectURI string
	platform    string // web, publicClient or spa
	userID      string
	scopes      *scopeRequest
	challenge   string
	method      string
	nonce       string
	mfa         bool
	authTime    time.Time
	expires     time.Time
	redeemed    bool
}

// refreshGrant backs a refresh token. Entra refresh tokens work for any resource the client has
// consent for, and using one returns a new one without revoking the old.
type refreshGrant struct {
	clientID string
	userID   string
	platform string
	oidc     []string
	scopes   *scopeRequest // what a refresh without a scope parameter renews
	mfa      bool
	authTime time.Time
	issued   time.Time
	expires  time.Time
}

const (
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
	grantClientCredentials = "client_credentials"
	grantPassword          = "password"
	grantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	grantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
)

// grantStatName is the key of /_emulator/stats' token counters for each grant type.
var grantStatName = map[string]string{
	grantAuthorizationCode: "authorization_code",
	grantRefreshToken:      "refresh_token",
	grantClientCredentials: "client_credentials",
	grantPassword:          "password",
	grantJWTBearer:         "on_behalf_of",
	grantDeviceCode:        "device_code",
}

// singleValued are the token parameters that must not repeat.
var singleValued = []string{"grant_type", "client_id", "client_secret", "client_assertion", "client_assertion_type",
	"code", "redirect_uri", "code_verifier", "scope", "refresh_token", "assertion", "requested_token_use",
	"username", "password", "device_code"}

func (em *Emulator) handleToken(w http.ResponseWriter, r *http.Request) {
	if _, e := em.resolveTenant(r.PathValue("tenant")); e != nil {
		em.writeTokenError(w, r, e)
		return
	}
	if r.Method != http.MethodPost {
		em.writeTokenError(w, r, aad("invalid_request", 900561, "The endpoint only accepts POST requests. Received a %s request.", r.Method))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		em.writeTokenError(w, r, aad("invalid_request", 9002313, "Invalid request. Request is malformed or invalid: the body is not a valid form."))
		return
	}
	form := r.PostForm
	for _, k := range singleValued {
		if len(form[k]) > 1 {
			em.writeTokenError(w, r, aad("invalid_request", 9002313, "Invalid request. Request is malformed or invalid: parameter '%s' is duplicated.", k))
			return
		}
	}
	gt := form.Get("grant_type")
	if gt == "" {
		em.writeTokenError(w, r, aad("invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'."))
		return
	}
	name, ok := grantStatName[gt]
	if !ok {
		em.writeTokenError(w, r, aad("unsupported_grant_type", 70003, "The app requested an unsupported grant type '%s'.", truncate(gt, 100)))
		return
	}
	em.stats.countToken(name)
	em.dir.mu.RLock()
	var resp map[string]any
	var e *aadError
	switch gt {
	case grantAuthorizationCode:
		resp, e = em.grantCode(r, form)
	case grantRefreshToken:
		resp, e = em.grantRefresh(r, form)
	case grantClientCredentials:
		resp, e = em.grantClientCredentials(r, form)
	case grantPassword:
		resp, e = em.grantPassword(r, form)
	case grantJWTBearer:
		resp, e = em.grantOBO(r, form)
	case grantDeviceCode:
		resp, e = em.grantDevice(r, form)
	}
	em.dir.mu.RUnlock()
	if e != nil {
		em.writeTokenError(w, r, e)
		return
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

// isPublicFlow: ROPC, device code and client-less refresh are public-client flows when the app
// allows them (isFallbackPublicClient).
func isFallbackPublic(a *Application) bool {
	return a.IsFallbackPublicClient != nil && *a.IsFallbackPublicClient
}

func (em *Emulator) grantCode(r *http.Request, form url.Values) (map[string]any, *aadError) {
	code := form.Get("code")
	if code == "" {
		return nil, aad("invalid_request", 900144, "The request body must contain the following parameter: 'code'.")
	}
	em.grantsMu.Lock()
	ac := em.codes[hashToken(code)]
	var wasRedeemed bool
	if ac != nil {
		wasRedeemed = ac.redeemed
		ac.redeemed = true
	}
	em.grantsMu.Unlock()
	if ac == nil {
		return nil, aad("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid: the authorization code is not valid.")
	}
	ca, e := em.authenticateClient(r, form, func(a *Application) bool { return ac.platform != "web" })
	if e != nil {
		return nil, e
	}
	switch {
	case wasRedeemed:
		return nil, aad("invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
	case em.now().After(ac.expires):
		return nil, aad("invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
	case ca.app.AppID != ac.clientID:
		return nil, aad("invalid_grant", 70000, "The provided value for the 'code' parameter is not valid: the code was issued to another client.")
	case form.Get("redirect_uri") != ac.redirectURI:
		return nil, aad("invalid_grant", 500112, "The reply address '%s' does not match the reply address '%s' provided when requesting Authorization code.", truncate(form.Get("redirect_uri"), 200), ac.redirectURI)
	case ac.platform == "spa" && r.Header.Get("Origin") == "":
		return nil, aad("invalid_request", 9002327, "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin requests.")
	}
	if ac.challenge != "" && !pkceMatches(ac.challenge, ac.method, form.Get("code_verifier")) {
		return nil, aad("invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.")
	}
	// scope is optional here (x/oauth2 omits it): the authorized scopes apply. A scope
	// parameter that is present but blank is AADSTS28003.
	sr := ac.scopes
	if _, present := form["scope"]; present {
		if strings.TrimSpace(form.Get("scope")) == "" {
			return nil, aad("invalid_request", 28003, "Provided value for the input parameter scope cannot be empty when requesting an access token using the provided authorization code. Please specify a valid scope.")
		}
		var e *aadError
		if sr, e = em.dir.parseScopes(form.Get("scope")); e != nil {
			return nil, e
		}
	}
	u := em.dir.userByID(ac.userID)
	if u == nil {
		return nil, aad("invalid_grant", 50034, "The user account does not exist in the %s directory.", em.dir.tenant.Domain)
	}
	rg := &refreshGrant{clientID: ca.app.AppID, userID: u.ID, platform: ac.platform, oidc: ac.scopes.oidc, scopes: sr, mfa: ac.mfa, authTime: ac.authTime}
	return em.userTokens(ca, u, sr, rg, ac.nonce, form)
}

// userTokens issues the access token (and refresh, ID token, client_info as asked) for a user.
func (em *Emulator) userTokens(ca *authenticatedClient, u *User, sr *scopeRequest, rg *refreshGrant, nonce string, form url.Values) (map[string]any, *aadError) {
	if u.AccountEnabled != nil && !*u.AccountEnabled {
		return nil, aad("invalid_grant", 50057, "The user account is disabled.")
	}
	granted, missing := em.dir.grantScopes(ca.app, u, sr)
	if len(missing) > 0 {
		e := aad("invalid_grant", 65001, "The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource.", ca.app.AppID, ca.app.DisplayName)
		e.SubError = "consent_required"
		return nil, e
	}
	if p := em.dir.mfaPolicy(u, sr.resource); p != nil && !rg.mfa {
		return nil, mfaRequired(p, sr.resource)
	}
	oidc := rg.oidc
	is := issue{
		client: ca.app, clientAuth: ca.acr, user: u, resource: sr.resource, viaURI: sr.audience(),
		scopes: granted, roles: em.dir.userRoleValues(sr.resource, u), mfa: rg.mfa, authTime: rg.authTime,
		profile: slices.Contains(oidc, "profile") || sr.has("profile"),
	}
	at, exp, err := em.mint(is)
	if err != nil {
		return nil, aad("server_error", 90033, "A transient error has occurred. Please try again.")
	}
	now := em.now()
	resp := map[string]any{
		"token_type": "Bearer", "scope": sr.responseScope(granted), "access_token": at,
		"expires_in": int(exp.Sub(now).Seconds()), "ext_expires_in": int(exp.Sub(now).Seconds()),
	}
	if slices.Contains(oidc, "offline_access") || sr.has("offline_access") {
		resp["refresh_token"] = em.storeRefresh(rg)
		if rg.platform == "spa" {
			resp["refresh_token_expires_in"] = int(em.refreshLifetime("spa").Seconds())
		}
	}
	if slices.Contains(oidc, "openid") || sr.has("openid") {
		idt, err := em.idToken(ca.app, u, nonce, rg.mfa, rg.authTime)
		if err == nil {
			resp["id_token"] = idt
		}
	}
	if form.Get("client_info") == "1" {
		resp["client_info"] = em.clientInfo(u)
	}
	return resp, nil
}

func mfaRequired(p *Policy, resource *Application) *aadError {
	code, verb := 50079, "enroll in"
	if p.ErrorCode == 50076 {
		code, verb = 50076, "use"
	}
	e := aad("interaction_required", code, "Due to a configuration change made by your administrator, or because you moved to a new location, you must %s multi-factor authentication to access '%s'.", verb, resource.AppID)
	e.Claims = `{"access_token":{"polids":{"essential":true,"values":["` + p.ID + `"]}}}`
	return e
}

func (em *Emulator) refreshLifetime(platform string) time.Duration {
	s := em.dir.settings
	if platform == "spa" {
		if s.SPARefreshTokenLifetime > 0 {
			return time.Duration(s.SPARefreshTokenLifetime)
		}
		return 24 * time.Hour
	}
	if s.RefreshTokenLifetime > 0 {
		return time.Duration(s.RefreshTokenLifetime)
	}
	return 90 * 24 * time.Hour
}

func (em *Emulator) storeRefresh(rg *refreshGrant) string {
	tok := "1.AQ" + randomToken(96)
	g := *rg
	g.issued = em.now()
	g.expires = g.issued.Add(em.refreshLifetime(g.platform))
	em.grantsMu.Lock()
	em.refresh[hashToken(tok)] = &g
	em.grantsMu.Unlock()
	return tok
}

func (em *Emulator) grantRefresh(r *http.Request, form url.Values) (map[string]any, *aadError) {
	rt := form.Get("refresh_token")
	if rt == "" {
		return nil, aad("invalid_request", 900144, "The request body must contain the following parameter: 'refresh_token'.")
	}
	em.grantsMu.Lock()
	rg := em.refresh[hashToken(rt)]
	em.grantsMu.Unlock()
	if rg == nil {
		return nil, aad("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid: the refresh token is not valid.")
	}
	ca, e := em.authenticateClient(r, form, func(a *Application) bool { return rg.platform != "web" })
	if e != nil {
		return nil, e
	}
	now := em.now()
	u := em.dir.userByID(rg.userID)
	switch {
	case ca.app.AppID != rg.clientID:
		return nil, aad("invalid_grant", 70000, "The provided value for the 'refresh_token' parameter is not valid: it was issued to another client.")
	case now.After(rg.expires):
		return nil, aad("invalid_grant", 700082, "The refresh token has expired due to inactivity. The token was issued on %s and was inactive for %s.", rg.issued.UTC().Format(time.RFC3339), em.refreshLifetime(rg.platform))
	case u == nil:
		return nil, aad("invalid_grant", 50034, "The user account does not exist in the %s directory.", em.dir.tenant.Domain)
	case em.revokedBefore(u, rg.issued):
		return nil, aad("invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '%s'.", rg.issued.UTC().Format(time.RFC3339))
	case rg.platform == "spa" && r.Header.Get("Origin") == "":
		return nil, aad("invalid_request", 9002327, "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin requests.")
	}
	sr := rg.scopes
	if strings.TrimSpace(form.Get("scope")) != "" || sr == nil {
		if sr, e = em.dir.parseScopes(form.Get("scope")); e != nil {
			return nil, e
		}
	}
	next := *rg
	next.scopes = sr
	if rg.platform == "spa" {
		next.expires = rg.expires // SPA refresh tokens do not extend their 24-hour life
	}
	resp, e := em.userTokens(ca, u, sr, &next, "", form)
	if e == nil {
		if _, ok := resp["refresh_token"]; !ok { // a refresh always returns a new refresh token
			resp["refresh_token"] = em.storeRefresh(&next)
		}
	}
	return resp, e
}

func (em *Emulator) grantClientCredentials(r *http.Request, form url.Values) (map[string]any, *aadError) {
	ca, e := em.authenticateClient(r, form, func(*Application) bool { return false })
	if e != nil {
		return nil, e
	}
	// MSAL appends "openid offline_access profile" to every request; Entra ignores them here.
	var resourceScopes []string
	for _, f := range strings.Fields(form.Get("scope")) {
		if !isOIDCScope(f) {
			resourceScopes = append(resourceScopes, f)
		}
	}
	scope := strings.Join(resourceScopes, " ")
	if strings.TrimSpace(form.Get("scope")) == "" {
		return nil, aad("invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
	}
	if len(resourceScopes) != 1 || !strings.HasSuffix(scope, "/.default") {
		return nil, aad("invalid_scope", 1002012, "The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", truncate(scope, 200))
	}
	sr, e := em.dir.parseScopes(scope)
	if e != nil {
		return nil, e
	}
	if sr.resource.AppID == ca.app.AppID && !strings.EqualFold(sr.via, ca.app.AppID) {
		return nil, aad("invalid_request", 90009, "Application '%s'(%s) is requesting a token for itself. This scenario is supported only if resource is specified using the GUID based App Identifier.", ca.app.AppID, ca.app.DisplayName)
	}
	sp := em.dir.spByAppID(ca.app.AppID)
	var roles []string
	if sp != nil {
		roles = em.dir.roleValues(sr.resource, sp.ID)
	}
	at, exp, err := em.mint(issue{client: ca.app, clientAuth: ca.acr, resource: sr.resource, viaURI: sr.audience(), roles: roles})
	if err != nil {
		return nil, aad("server_error", 90033, "A transient error has occurred. Please try again.")
	}
	secs := int(exp.Sub(em.now()).Seconds())
	return map[string]any{"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": at}, nil
}

func (em *Emulator) grantPassword(r *http.Request, form url.Values) (map[string]any, *aadError) {
	hasCred := form.Get("client_secret") != "" || form.Get("client_assertion") != "" || r.Header.Get("Authorization") != ""
	ca, e := em.authenticateClient(r, form, func(a *Application) bool { return !hasCred && isFallbackPublic(a) })
	if e != nil {
		return nil, e
	}
	username, password := form.Get("username"), form.Get("password")
	if username == "" || password == "" {
		return nil, aad("invalid_request", 900144, "The request body must contain the following parameter: 'username' and 'password'.")
	}
	u := em.dir.userByHint(username)
	if u == nil || !strings.Contains(username, "@") && !strings.EqualFold(u.Name, username) {
		return nil, aad("invalid_grant", 50034, "The user account {EUII Hidden} does not exist in the %s directory. To sign into this application, the account must be added to the directory.", em.dir.tenant.Domain)
	}
	if u.Password == "" || !constantTimeEqual(u.Password, password) {
		return nil, aad("invalid_grant", 50126, "Error validating credentials due to invalid username or password.")
	}
	if u.AccountEnabled != nil && !*u.AccountEnabled {
		return nil, aad("invalid_grant", 50057, "The user account is disabled.")
	}
	if p := em.dir.anyMFAPolicy(u); p != nil {
		e := aad("invalid_grant", 50076, "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access this resource. The password grant cannot satisfy policy '%s'.", p.DisplayName)
		e.SubError = "basic_action"
		return nil, e
	}
	sr, e := em.dir.parseScopes(form.Get("scope"))
	if e != nil {
		return nil, e
	}
	platform := "publicClient"
	if hasCred {
		platform = "web"
	}
	rg := &refreshGrant{clientID: ca.app.AppID, userID: u.ID, platform: platform, oidc: sr.oidc, scopes: sr, authTime: em.now()}
	return em.userTokens(ca, u, sr, rg, "", form)
}

func (em *Emulator) revokedBefore(u *User, t time.Time) bool {
	em.grantsMu.Lock()
	defer em.grantsMu.Unlock()
	from, ok := em.validFrom[u.ID]
	return ok && t.Before(from)
}
