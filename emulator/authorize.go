package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// authorizeRequest is a validated /authorize request.
type authorizeRequest struct {
	path         string // the authorize path, without the query, for the sign-in form's action
	form         url.Values
	client       *Application
	redirectURI  string
	platform     string
	responseMode string
	state        string
	scopes       *scopeRequest
	challenge    string
	method       string
	prompt       string
	claims       string
}

// authorizeParams are echoed into the sign-in page's form so its POST repeats the request.
var authorizeParams = []string{"client_id", "response_type", "redirect_uri", "scope", "response_mode", "state",
	"prompt", "login_hint", "domain_hint", "nonce", "code_challenge", "code_challenge_method", "claims", "resource"}

func (em *Emulator) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	kind, e := em.resolveTenant(r.PathValue("tenant"))
	if e != nil {
		em.errorPage(w, e)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		em.errorPage(w, aad("invalid_request", 9002313, "Invalid request. Request is malformed or invalid."))
		return
	}
	for _, k := range authorizeParams {
		if len(r.Form[k]) > 1 {
			em.errorPage(w, aad("invalid_request", 9002313, "Invalid request. Request is malformed or invalid: parameter '%s' is duplicated.", k))
			return
		}
	}
	em.dir.mu.Lock() // consent may be recorded below
	defer em.dir.mu.Unlock()
	ar, e := em.validateAuthorize(r, kind)
	if e != nil {
		if ar == nil || ar.redirectURI == "" {
			em.errorPage(w, e)
		} else {
			em.redirectError(w, r, ar.redirectURI, ar.responseMode, ar.state, e)
		}
		return
	}
	em.continueAuthorize(w, r, ar)
}

// validateAuthorize checks the request. Errors found before the redirect URI is validated come
// back with a nil or redirect-less request, so they are shown on a page and never redirected.
func (em *Emulator) validateAuthorize(r *http.Request, kind string) (*authorizeRequest, *aadError) {
	f := r.Form
	ar := &authorizeRequest{path: r.URL.Path, form: f, state: f.Get("state"), prompt: f.Get("prompt"), claims: f.Get("claims")}
	clientID := f.Get("client_id")
	if clientID == "" {
		return nil, aad("invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
	}
	if kind == "consumers" {
		return nil, aad("unauthorized_client", 700016, "Application with identifier '%s' was not found in the directory 'Microsoft Accounts'. The emulator has no personal accounts.", truncate(clientID, 60))
	}
	ar.client = em.dir.appByAppID(clientID)
	if ar.client == nil {
		return nil, aad("unauthorized_client", 700016, "Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", truncate(clientID, 60), em.dir.tenant.DisplayName)
	}
	ru := f.Get("redirect_uri")
	if ru == "" {
		return nil, aad("invalid_request", 900144, "The request body must contain the following parameter: 'redirect_uri'.")
	}
	ar.platform = matchRedirect(ar.client, ru)
	if ar.platform == "" {
		return nil, aad("invalid_request", 50011, "The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.", truncate(ru, 300), ar.client.AppID)
	}
	ar.redirectURI = ru
	ar.responseMode = f.Get("response_mode")
	switch ar.responseMode {
	case "", "query", "fragment", "form_post":
	default:
		ar.responseMode = ""
		return ar, aad("invalid_request", 90131, "The response_mode '%s' is not supported; use query, fragment or form_post.", truncate(f.Get("response_mode"), 40))
	}
	switch rt := f.Get("response_type"); rt {
	case "code":
	case "":
		return ar, aad("invalid_request", 900144, "The request body must contain the following parameter: 'response_type'.")
	default:
		return ar, aad("unsupported_response_type", 700054, "response_type '%s' is not enabled for the application.", truncate(rt, 40))
	}
	if strings.TrimSpace(f.Get("scope")) == "" {
		return ar, aad("invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
	}
	sr, e := em.dir.parseScopes(f.Get("scope"))
	if e != nil {
		return ar, e
	}
	ar.scopes = sr
	if res := f.Get("resource"); res != "" {
		if sr.implicit || !slices.Contains(sr.resource.IdentifierURIs, res) {
			return ar, aad("invalid_target", 9010010, "The resource parameter provided in the request doesn't match with the requested scopes.")
		}
	}
	ar.challenge, ar.method = f.Get("code_challenge"), f.Get("code_challenge_method")
	if ar.challenge != "" {
		if ar.method == "" {
			ar.method = "plain"
		}
		if ar.method != "S256" && ar.method != "plain" {
			return ar, aad("invalid_request", 501478, "The code_challenge_method '%s' is not supported; use S256 or plain.", truncate(ar.method, 20))
		}
		if n := len(ar.challenge); n < 43 || n > 128 {
			return ar, aad("invalid_request", 501491, "Invalid size of Code_Challenge parameter.")
		}
	} else if ar.platform == "spa" {
		return ar, aad("invalid_request", 9002325, "Proof Key for Code Exchange is required for cross-origin authorization code redemption.")
	}
	switch ar.prompt {
	case "", "login", "none", "consent", "select_account", "create":
	default:
		return ar, aad("invalid_request", 90023, "The prompt value '%s' is not supported.", truncate(ar.prompt, 30))
	}
	return ar, nil
}

// matchRedirect finds the platform whose redirect list holds ru: exact and case-sensitive, except
// that http://localhost and http://127.0.0.1 match on any port. [::1] is not supported.
func matchRedirect(a *Application, ru string) string {
	for _, p := range []struct {
		name string
		list []string
	}{{"web", a.Web.RedirectURIs}, {"publicClient", a.PublicClient.RedirectURIs}, {"spa", a.SPA.RedirectURIs}} {
		for _, reg := range p.list {
			if reg == ru || loopbackMatch(reg, ru) {
				return p.name
			}
		}
	}
	return ""
}

func loopbackMatch(registered, requested string) bool {
	a, err1 := url.Parse(registered)
	b, err2 := url.Parse(requested)
	if err1 != nil || err2 != nil || a.Scheme != "http" || b.Scheme != "http" {
		return false
	}
	if a.Hostname() != b.Hostname() || (a.Hostname() != "localhost" && a.Hostname() != "127.0.0.1") {
		return false
	}
	if b.User != nil || b.Fragment != "" {
		return false
	}
	pa, pb := a.EscapedPath(), b.EscapedPath()
	if pa == "" {
		pa = "/"
	}
	if pb == "" {
		pb = "/"
	}
	return pa == pb && a.RawQuery == b.RawQuery
}

// continueAuthorize signs the user in (page, SSO cookie or auto-approve), asks for consent when
// needed, and issues the code.
func (em *Emulator) continueAuthorize(w http.ResponseWriter, r *http.Request, ar *authorizeRequest) {
	f := ar.form
	var u *User
	posted := r.Method == http.MethodPost && f.Get("emu_user") != ""
	switch {
	case posted:
		u = em.dir.userByHint(f.Get("emu_user"))
	case em.dir.settings.AutoApprove && f.Get("login_hint") != "" && em.dir.userByHint(f.Get("login_hint")) != nil:
		u = em.dir.userByHint(f.Get("login_hint"))
	case ar.prompt != "login" && ar.prompt != "select_account":
		u = em.ssoUser(r)
	}
	if u == nil {
		if ar.prompt == "none" {
			em.redirectError(w, r, ar.redirectURI, ar.responseMode, ar.state, aad("login_required", 50058, "A silent sign-in request was sent but no user is signed in."))
			return
		}
		em.renderSignIn(w, ar, nil, nil)
		return
	}
	if u.AccountEnabled != nil && !*u.AccountEnabled {
		em.errorPage(w, aad("invalid_grant", 50057, "The user account is disabled."))
		return
	}
	_, missing := em.dir.grantScopes(ar.client, u, ar.scopes)
	mustShowConsent := len(missing) > 0 || (ar.prompt == "consent" && !em.dir.settings.AutoApprove)
	if mustShowConsent {
		if slices.Contains(missing, ".default") {
			em.redirectError(w, r, ar.redirectURI, ar.responseMode, ar.state, aad("invalid_client", 650053, "The application '%s' asked for scope '.default' on a resource for which it has no configured permissions.", ar.client.DisplayName))
			return
		}
		if len(missing) > 0 && !em.canConsent(u, ar.scopes.resource, missing) {
			em.errorPage(w, aad("consent_required", 90094, "Need admin approval: '%s' needs permission to access resources in your organization that only an admin can grant. Please ask an admin to grant permission to this app before you can use it.", ar.client.DisplayName))
			return
		}
		switch {
		case posted && f.Get("emu_consent") == "accept":
		case posted && f.Get("emu_consent") == "deny":
			em.redirectError(w, r, ar.redirectURI, ar.responseMode, ar.state, aad("access_denied", 65004, "User declined to consent to access the app."))
			return
		case em.dir.settings.AutoApprove && ar.prompt != "consent":
		case ar.prompt == "none":
			e := aad("consent_required", 65001, "The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource.", ar.client.AppID, ar.client.DisplayName)
			em.redirectError(w, r, ar.redirectURI, ar.responseMode, ar.state, e)
			return
		default:
			em.renderSignIn(w, ar, u, missing)
			return
		}
		if len(missing) > 0 {
			em.recordUserConsent(ar.client, ar.scopes.resource, u, missing, posted && f.Get("emu_consent_org") == "1" && isConsentAdmin(u))
		}
	}
	// Interactive sign-in satisfies MFA when a policy asks for it or a claims challenge is answered.
	mfa := ar.claims != "" || em.dir.mfaPolicy(u, ar.scopes.resource) != nil || em.dir.mfaPolicy(u, nil) != nil
	now := em.now()
	code := "1.AQ" + randomToken(64)
	em.grantsMu.Lock()
	em.codes[hashToken(code)] = &authCode{
		clientID: ar.client.AppID, redirectURI: ar.redirectURI, platform: ar.platform, userID: u.ID,
		scopes: ar.scopes, challenge: ar.challenge, method: ar.method, nonce: f.Get("nonce"),
		mfa: mfa, authTime: now, expires: now.Add(em.codeLifetime()),
	}
	em.grantsMu.Unlock()
	em.setSSO(w, u)
	v := url.Values{}
	v.Set("code", code)
	if ar.state != "" {
		v.Set("state", ar.state)
	}
	v.Set("session_state", deriveGUID("session", u.ID))
	em.respondToClient(w, ar.redirectURI, ar.responseMode, v)
}

func (em *Emulator) codeLifetime() time.Duration {
	if d := time.Duration(em.dir.settings.AuthorizationCodeLifetime); d > 0 {
		return d
	}
	return 10 * time.Minute
}

// canConsent: users may consent to "User" scopes unless user consent is disabled; "Admin"
// scopes need an administrator.
func (em *Emulator) canConsent(u *User, resource *Application, scopes []string) bool {
	if isConsentAdmin(u) {
		return true
	}
	if em.dir.settings.DisableUserConsent {
		return false
	}
	for _, s := range scopes {
		if ps := findScope(resource, s); ps == nil || ps.Type == "Admin" {
			return false
		}
	}
	return true
}

func isConsentAdmin(u *User) bool {
	return u.hasDirectoryRole("Global Administrator", "Privileged Role Administrator", "Cloud Application Administrator", "Application Administrator")
}

// recordUserConsent stores the consent as Graph would: a Principal grant, or an AllPrincipals
// grant when an admin consents for the organisation. The caller holds the write lock.
func (em *Emulator) recordUserConsent(client, resource *Application, u *User, scopes []string, org bool) {
	cs := em.dir.spByAppID(client.AppID)
	if cs == nil {
		cs = em.dir.addServicePrincipal(client) // Entra creates the client's SP on first consent
	}
	rs := em.dir.spByAppID(resource.AppID)
	principal := u.ID
	if org {
		principal = ""
	}
	em.dir.mergeGrant(cs.ID, rs.ID, principal, scopes)
}

// The SSO cookie names the signed-in user; it is HMAC-signed with a key derived from the CA key.
func (em *Emulator) ssoMAC(v string) string {
	m := hmac.New(sha256.New, em.macKey)
	m.Write([]byte("sso\x00" + v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (em *Emulator) setSSO(w http.ResponseWriter, u *User) {
	v := u.ID + "." + strconv.FormatInt(em.now().Unix(), 10)
	http.SetCookie(w, &http.Cookie{Name: "ESTSAUTH", Value: v + "." + em.ssoMAC(v), Path: "/", HttpOnly: true, Secure: true, SameSite: http.SameSiteNoneMode})
}

func (em *Emulator) ssoUser(r *http.Request) *User {
	c, err := r.Cookie("ESTSAUTH")
	if err != nil {
		return nil
	}
	i := strings.LastIndex(c.Value, ".")
	if i < 0 || !hmac.Equal([]byte(c.Value[i+1:]), []byte(em.ssoMAC(c.Value[:i]))) {
		return nil
	}
	id, _, _ := strings.Cut(c.Value[:i], ".")
	return em.dir.userByID(id)
}

func (em *Emulator) errorPage(w http.ResponseWriter, e *aadError) {
	em.countError(e.Code)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.WriteHeader(http.StatusBadRequest)
	_ = pageTemplate.ExecuteTemplate(w, "error", map[string]any{
		"Code": e.Code, "Error": e.Err, "Message": e.Message, "Time": em.now().UTC().Format(time.RFC3339),
	})
}

func (em *Emulator) renderSignIn(w http.ResponseWriter, ar *authorizeRequest, u *User, missing []string) {
	hidden := map[string]string{}
	for _, k := range authorizeParams {
		if v := ar.form.Get(k); v != "" {
			hidden[k] = v
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	_ = pageTemplate.ExecuteTemplate(w, "signin", map[string]any{
		"Action": ar.path, "Tenant": em.dir.tenant.DisplayName, "Client": ar.client.DisplayName, "ClientID": ar.client.AppID,
		"Hidden": hidden, "Users": em.dir.users, "User": u, "Missing": missing,
		"Resource": ar.scopes.resource.DisplayName, "CanOrg": u != nil && isConsentAdmin(u),
	})
}

var pageTemplate = template.Must(template.New("pages").Parse(`
{{define "head"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{.}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;color:#1b1b1b}
button{display:block;width:100%;margin:.4rem 0;padding:.7rem;font-size:1rem;text-align:left;cursor:pointer}
.muted{color:#666;font-size:.9rem}.err{border-left:4px solid #c50f1f;padding-left:1rem}</style></head><body>{{end}}
{{define "signin"}}{{template "head" "Sign in to your account"}}
<p class="muted">{{.Tenant}} &middot; entramcp emulator (local test identity provider)</p>
<form method="post" action="{{.Action}}">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">{{end}}
{{if .User}}
<h1>Permissions requested</h1>
<p><strong>{{.Client}}</strong> ({{.ClientID}}) wants to access <strong>{{.Resource}}</strong> as {{.User.DisplayName}}:</p>
<ul id="scopes">{{range .Missing}}<li>{{.}}</li>{{end}}</ul>
<input type="hidden" name="emu_user" value="{{.User.Name}}">
{{if .CanOrg}}<label><input type="checkbox" name="emu_consent_org" value="1"> Consent on behalf of your organization</label>{{end}}
<button id="consent-accept" name="emu_consent" value="accept">Accept</button>
<button id="consent-deny" name="emu_consent" value="deny">Cancel</button>
{{else}}
<h1>Pick an account</h1>
<p>to continue to <strong>{{.Client}}</strong></p>
{{range .Users}}<button id="user-{{.Name}}" name="emu_user" value="{{.Name}}">{{.DisplayName}}<br><span class="muted">{{.UserPrincipalName}}</span></button>{{end}}
{{end}}
</form></body></html>{{end}}
{{define "error"}}{{template "head" "Sign in error"}}
<h1>Sorry, but we're having trouble signing you in.</h1>
<div class="err" id="error"><p><strong>AADSTS{{.Code}}</strong>: {{.Message}}</p>
<p class="muted">Error: {{.Error}} &middot; Timestamp: {{.Time}}</p></div></body></html>{{end}}
`))

// writeFormPost answers with an auto-submitting form (response_mode=form_post).
func writeFormPost(w http.ResponseWriter, action string, v url.Values) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fields := ""
	for k, vs := range v {
		for _, x := range vs {
			fields += fmt.Sprintf(`<input type="hidden" name="%s" value="%s">`, template.HTMLEscapeString(k), template.HTMLEscapeString(x))
		}
	}
	fmt.Fprintf(w, `<!doctype html><html><head><title>Working...</title></head><body onload="document.forms[0].submit()"><form method="POST" action="%s">%s<noscript><button>Continue</button></noscript></form></body></html>`,
		template.HTMLEscapeString(action), fields)
}
