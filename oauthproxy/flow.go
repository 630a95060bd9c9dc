package oauthproxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/store"
)

// Proxy is the authorization server facade: MCP clients register and sign in with it; users
// sign in only at Entra; Entra's tokens stay on the server, sealed in the store.
type Proxy struct {
	Store    store.Store // sealed (store.Encrypted)
	Registry *Registry
	Tokens   *Tokens
	Verifier *entra.Verifier // checks the Entra tokens the callback receives
	Issuer   string          // our base URL; callback is Issuer + "/auth/callback"
	Resource string          // the MCP resource URL
	// Upstream Entra application (the API app itself) and its credential.
	AuthorityHost, TenantID, ClientID string
	Credential                        entra.Credential
	HTTPClient                        *http.Client
	// UpstreamScopes are requested from Entra: the API's scopes (full form); offline_access,
	// openid and profile are added.
	UpstreamScopes []string
	// ExtraScopes lists the other scopes of our API (short names) a client may ask for, to
	// step up after a 403 insufficient_scope (the server passes its Policy's StepUpScopes).
	// Requested scopes not listed here are ignored. nil: none.
	ExtraScopes func() []string
	// RefreshGrace is how long a refresh token that was just used answers a duplicate request
	// with the same response instead of revoking the family (default 10s).
	RefreshGrace time.Duration
	Logger       *slog.Logger
	// OnEvent receives security-relevant events for the audit log (nil: none).
	OnEvent func(Event)
}

// Event is a security-relevant proxy event: a sign-in, a token issued, a grant revoked and
// why. It never carries a token, code or secret.
type Event struct {
	Name               string // signin.completed, signin.failed, consent.denied, token.issued, grant.revoked
	ClientID           string
	TenantID, ObjectID string // the user, when known
	Reason             string // grant type, or why it was refused or revoked
}

func (p *Proxy) event(e Event) {
	if p.OnEvent != nil {
		p.OnEvent(e)
	}
}

// Record kinds in the store. Secrets are keyed by their SHA-256, never by themselves.
const (
	kindAuthz    = "authz"
	kindUpstate  = "upstate"
	kindGrant    = "grant"
	kindCode     = "code"
	kindUsedCode = "usedcode"
	kindAT       = "at"
	kindRT       = "rt"
)

func hashKey(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }

func (p *Proxy) secure() bool { return strings.HasPrefix(p.Issuer, "https://") }

func (p *Proxy) cookieName() string {
	if p.secure() {
		return "__Host-entramcp-browser"
	}
	return "entramcp-browser"
}

func (p *Proxy) log() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

func putJSON(ctx context.Context, s store.Store, kind, key string, v any, ttl time.Duration) error {
	b, _ := json.Marshal(v)
	return s.Put(ctx, kind, key, b, ttl)
}

func getJSON(ctx context.Context, s store.Store, kind, key string, v any) error {
	b, err := s.Get(ctx, kind, key)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func takeJSON(ctx context.Context, s store.Store, kind, key string, v any) error {
	b, err := s.Take(ctx, kind, key)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

type authzRecord struct {
	ClientID, ClientName, RedirectURI, State, Challenge, Scope string
	Browser, CSRF                                              string
	LoginHint                                                  string // forwarded to Entra
	// Scopes are the full names asked of Entra: ours (UpstreamScopes) and the step-up scopes
	// (ExtraScopes) the client asked for.
	Scopes []string
	// Prompt is what Entra gets of the client's prompt: login or select_account (they only
	// add user interaction), or none once our consent is settled (remembered).
	Prompt string
	// Remember: the user ticked "don't ask again" (stored at the callback, bound to the user).
	// Remembered: consent was skipped for RememberedUser (tid:oid); the callback checks it.
	Remember       bool
	RememberKey    string
	Remembered     bool
	RememberedUser string
}

// rememberRecord is a per-browser, per-client consent, bound to the user who gave it.
type rememberRecord struct{ User string }

const (
	kindRemember = "remember"
	rememberFor  = 30 * 24 * time.Hour
)

func (p *Proxy) deviceCookieName() string {
	if p.secure() {
		return "__Host-entramcp-device"
	}
	return "entramcp-device"
}

// rememberKey names a remembered consent: this browser (a long-lived random cookie), this
// client and this exact redirect URI. Empty when the browser has no device cookie.
func (p *Proxy) rememberKey(r *http.Request, clientID, redirect string) string {
	c, err := r.Cookie(p.deviceCookieName())
	if err != nil || len(c.Value) < 20 {
		return ""
	}
	return hashKey(c.Value + "\x00" + clientID + "\x00" + redirect)
}

type upstateRecord struct {
	AuthzID, Verifier, Browser string
}

// grantRecord is a user's sign-in through one client: the family every token descends from.
type grantRecord struct {
	ClientID                      string
	TenantID, ObjectID, Name, UPN string
	Scopes, Roles, Groups         []string
	EntraAccess, EntraRefresh     string
	EntraExpiry                   time.Time
	Revoked                       bool
}

type codeRecord struct {
	ClientID, RedirectURI, Challenge, GrantID string
}

type rtRecord struct {
	ClientID, GrantID string
	UsedAt            time.Time
	Response          json.RawMessage // kept for the grace window
}

// Mount registers the proxy's endpoints on mux.
func (p *Proxy) Mount(mux *http.ServeMux) {
	m := Metadata{Issuer: p.Issuer, Scopes: p.UpstreamScopes, ClientIDMetadataDocuments: p.Registry.Documents != nil}
	mux.Handle("GET /.well-known/oauth-authorization-server", m.Handler())
	mux.Handle("GET /.well-known/openid-configuration", m.Handler())
	if u, err := url.Parse(p.Issuer); err == nil && strings.Trim(u.Path, "/") != "" {
		// An issuer with a path (behind a path-routing gateway): RFC 8414 inserts the
		// well-known segment before the path; OIDC appends it. Clients try both.
		path := "/" + strings.Trim(u.Path, "/")
		mux.Handle("GET /.well-known/oauth-authorization-server"+path, m.Handler())
		mux.Handle("GET /.well-known/openid-configuration"+path, m.Handler())
		mux.Handle("GET "+path+"/.well-known/openid-configuration", m.Handler())
	}
	mux.Handle("GET /jwks", JWKSHandler(p.Tokens.Keys))
	mux.Handle("/register", p.Registry)
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /consent", p.consent)
	mux.HandleFunc("GET /auth/callback", p.callback)
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("POST /revoke", p.revoke)
}

// page shows an error that must not be redirected (the redirect is not trusted yet).
func page(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><title>Sign-in error</title><h1>Sign-in error</h1><p>%s</p>", template.HTMLEscapeString(msg))
}

// redirectErr sends an error back to a validated redirect URI (RFC 6749 4.1.2.1, RFC 9207 iss).
func (p *Proxy) redirectErr(w http.ResponseWriter, r *http.Request, redirect, state, code, desc string) {
	q := url.Values{"error": {code}, "error_description": {desc}, "iss": {p.Issuer}}
	if state != "" {
		q.Set("state", state)
	}
	http.Redirect(w, r, redirect+sep(redirect)+q.Encode(), http.StatusFound)
}

func sep(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}

func (p *Proxy) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for _, k := range []string{"client_id", "redirect_uri", "state", "code_challenge", "resource", "login_hint"} {
		if len(q[k]) > 1 {
			page(w, http.StatusBadRequest, "parameter "+k+" is repeated")
			return
		}
	}
	c, err := p.Registry.Lookup(p.Registry.withCaller(r), q.Get("client_id"))
	var docErr *DocumentError
	if errors.As(err, &docErr) {
		page(w, http.StatusBadRequest, "this application cannot sign in: "+docErr.Error())
		return
	} else if errors.Is(err, ErrRateLimited) {
		w.Header().Set("Retry-After", "60")
		page(w, http.StatusTooManyRequests, err.Error())
		return
	} else if errors.Is(err, ErrUnknownClient) {
		page(w, http.StatusBadRequest, "unknown client; the application must register again")
		return
	} else if err != nil {
		page(w, http.StatusServiceUnavailable, "the sign-in service is temporarily unavailable; try again")
		return
	}
	redirect := q.Get("redirect_uri")
	if !MatchRedirect(c.RedirectURIs, redirect) {
		page(w, http.StatusBadRequest, "the redirect_uri is not registered for this client")
		return
	}
	state := q.Get("state")
	switch {
	case q.Get("response_type") != "code":
		p.redirectErr(w, r, redirect, state, "unsupported_response_type", "response_type must be code")
	case q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43:
		p.redirectErr(w, r, redirect, state, "invalid_request", "PKCE with S256 is required")
	case q.Get("resource") != "" && q.Get("resource") != p.Resource:
		p.redirectErr(w, r, redirect, state, "invalid_target", "resource must be "+p.Resource)
	case !validHint(q.Get("login_hint")):
		p.redirectErr(w, r, redirect, state, "invalid_request", "login_hint must be at most 256 printable characters")
	case len(q.Get("prompt")) > 64:
		p.redirectErr(w, r, redirect, state, "invalid_request", "prompt is too long")
	default:
		browser := randomID()
		http.SetCookie(w, &http.Cookie{Name: p.cookieName(), Value: browser, Path: "/", HttpOnly: true, Secure: p.secure(), SameSite: http.SameSiteLaxMode, MaxAge: 600})
		id, csrf := randomID(), randomID()
		prompts := strings.Fields(q.Get("prompt"))
		scopes := p.requestedScopes(q.Get("scope"))
		rec := authzRecord{ClientID: c.ClientID, ClientName: c.ClientName, RedirectURI: redirect, State: state, Challenge: q.Get("code_challenge"),
			Scope: q.Get("scope"), Scopes: scopes, Browser: hashKey(browser), CSRF: csrf, LoginHint: q.Get("login_hint")}
		for _, want := range []string{"login", "select_account"} {
			if slices.Contains(prompts, want) {
				rec.Prompt = want
			}
		}
		if err := putJSON(r.Context(), p.Store, kindAuthz, id, rec, 10*time.Minute); err != nil {
			p.redirectErr(w, r, redirect, state, "temporarily_unavailable", "the sign-in service is temporarily unavailable")
			return
		}
		if key := p.rememberKey(r, c.ClientID, redirect); key != "" && !slices.Contains(prompts, "consent") {
			var rem rememberRecord
			if getJSON(r.Context(), p.Store, kindRemember, key, &rem) == nil {
				rec.Remembered, rec.RememberedUser, rec.RememberKey = true, rem.User, key
				if slices.Contains(prompts, "none") {
					rec.Prompt = "none" // no page here; Entra may still need one, and says so
				}
				p.toEntra(w, r, id, rec)
				return
			}
		}
		if slices.Contains(prompts, "none") {
			// A client cannot skip our consent by asking for no UI: without a remembered
			// approval the answer is the OIDC error, and nothing is forwarded to Entra.
			p.Store.Delete(r.Context(), kindAuthz, id)
			p.redirectErr(w, r, redirect, state, "consent_required", "the user has not approved this application in this browser; sign in interactively")
			return
		}
		p.renderConsent(w, id, csrf, rec)
	}
}

// requestedScopes turns a client's scope parameter into the full scope names asked of Entra:
// always UpstreamScopes, plus those of ExtraScopes the client names, short (mcp-admin) or full
// (api://.../mcp-admin), for step-up. Anything else is ignored, as RFC 6749 allows: OpenID
// and offline_access are ours to add, other resources' tokens come from On-Behalf-Of, and a
// scope Entra does not know would fail the whole sign-in.
func (p *Proxy) requestedScopes(raw string) []string {
	scopes := slices.Clone(p.UpstreamScopes)
	if p.ExtraScopes == nil || len(raw) > 4000 {
		return scopes
	}
	prefix := p.apiPrefix()
	extra := p.ExtraScopes()
	for _, s := range strings.Fields(raw) {
		name := strings.TrimPrefix(s, prefix)
		if full := prefix + name; slices.Contains(extra, name) && !slices.Contains(scopes, full) && len(scopes) < 20 {
			scopes = append(scopes, full)
		}
	}
	return scopes
}

// apiPrefix is our API's scope prefix ("api://{app}/"), from the configured scopes.
func (p *Proxy) apiPrefix() string {
	if len(p.UpstreamScopes) == 0 {
		return ""
	}
	s := p.UpstreamScopes[0]
	return s[:strings.LastIndex(s, "/")+1]
}

// fullScopes names a grant's scopes (short, as in Entra's scp claim) in full.
func (p *Proxy) fullScopes(short []string) []string {
	if len(short) == 0 {
		return slices.Clone(p.UpstreamScopes)
	}
	prefix := p.apiPrefix()
	out := make([]string, 0, len(short))
	for _, s := range short {
		if strings.Contains(s, "/") {
			out = append(out, s)
		} else {
			out = append(out, prefix+s)
		}
	}
	return out
}

// oauthErrorCode keeps an error code from Entra's redirect only if it looks like one (RFC 6749
// error codes are short lowercase words); anything else becomes "unknown", so the redirect
// query cannot put arbitrary text into the audit log or the client's error description.
func oauthErrorCode(e string) string {
	if len(e) == 0 || len(e) > 64 {
		return "unknown"
	}
	for _, r := range e {
		if (r < 'a' || r > 'z') && r != '_' {
			return "unknown"
		}
	}
	return e
}

// validHint accepts an empty login_hint or a short printable one (a UPN or email).
func validHint(h string) bool {
	if len(h) > 256 {
		return false
	}
	for _, r := range h {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Allow access?</title></head><body>
<h1>Allow {{.Client}} to use this MCP server as you?</h1>
<p>After you sign in with Microsoft, <strong>{{.Client}}</strong> will be able to call the server's tools on your behalf.
It will be sent back to <strong>{{.Host}}</strong>.</p>
<p>Permissions: {{range .Scopes}}<code>{{.}}</code> {{end}}</p>
<form method="post" action="/consent"><input type="hidden" name="authz" value="{{.ID}}"><input type="hidden" name="csrf" value="{{.CSRF}}">
<p><label><input type="checkbox" id="remember" name="remember" value="1"> Don't ask again for this application in this browser (30 days)</label></p>
<button id="approve" name="decision" value="approve">Continue to Microsoft sign-in</button>
<button id="deny" name="decision" value="deny">Cancel</button></form></body></html>`))

func (p *Proxy) renderConsent(w http.ResponseWriter, id, csrf string, rec authzRecord) {
	u, _ := url.Parse(rec.RedirectURI)
	name := rec.ClientName
	if name == "" {
		name = "An unnamed application"
	}
	if cu, err := url.Parse(rec.ClientID); err == nil && cu.Scheme == "https" {
		// A document's name is self-asserted; the host that publishes it is what the user can trust.
		name += " (published by " + cu.Host + ")"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action 'self' https:; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	consentPage.Execute(w, map[string]any{"Client": name, "Host": u.Scheme + "://" + u.Host, "Scopes": rec.Scopes, "ID": id, "CSRF": csrf})
}

func (p *Proxy) browser(r *http.Request) string {
	c, err := r.Cookie(p.cookieName())
	if err != nil {
		return ""
	}
	return hashKey(c.Value)
}

func (p *Proxy) consent(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		page(w, http.StatusBadRequest, "bad form")
		return
	}
	id := r.PostForm.Get("authz")
	var rec authzRecord
	// Single use: a replayed consent finds nothing.
	if err := takeJSON(r.Context(), p.Store, kindAuthz, id, &rec); err != nil {
		page(w, http.StatusBadRequest, "this sign-in has expired or was already used; start again from the application")
		return
	}
	if b := p.browser(r); b == "" || subtle.ConstantTimeCompare([]byte(b), []byte(rec.Browser)) != 1 ||
		subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(rec.CSRF)) != 1 {
		page(w, http.StatusForbidden, "this consent did not come from the browser that started the sign-in")
		return
	}
	if r.PostForm.Get("decision") != "approve" {
		p.event(Event{Name: "consent.denied", ClientID: rec.ClientID})
		p.redirectErr(w, r, rec.RedirectURI, rec.State, "access_denied", "the user declined")
		return
	}
	if r.PostForm.Get("remember") == "1" {
		device := ""
		if c, err := r.Cookie(p.deviceCookieName()); err == nil && len(c.Value) >= 20 {
			device = c.Value
		} else {
			device = randomID() + randomID()
			http.SetCookie(w, &http.Cookie{Name: p.deviceCookieName(), Value: device, Path: "/", HttpOnly: true, Secure: p.secure(),
				SameSite: http.SameSiteLaxMode, MaxAge: int(rememberFor.Seconds())})
		}
		rec.Remember, rec.RememberKey = true, hashKey(device+"\x00"+rec.ClientID+"\x00"+rec.RedirectURI)
	}
	p.toEntra(w, r, id, rec)
}

// toEntra sends the browser to Entra's sign-in with our own PKCE pair and a state bound to it.
func (p *Proxy) toEntra(w http.ResponseWriter, r *http.Request, id string, rec authzRecord) {
	upState, verifier := randomID(), randomID()+randomID()
	if err := putJSON(r.Context(), p.Store, kindUpstate, hashKey(upState), upstateRecord{AuthzID: id, Verifier: verifier, Browser: rec.Browser}, 10*time.Minute); err != nil {
		p.redirectErr(w, r, rec.RedirectURI, rec.State, "temporarily_unavailable", "the sign-in service is temporarily unavailable")
		return
	}
	if err := putJSON(r.Context(), p.Store, kindAuthz, id, rec, 10*time.Minute); err != nil {
		p.redirectErr(w, r, rec.RedirectURI, rec.State, "temporarily_unavailable", "the sign-in service is temporarily unavailable")
		return
	}
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {p.ClientID}, "response_type": {"code"}, "redirect_uri": {p.Issuer + "/auth/callback"},
		"scope": {strings.Join(append(append([]string{}, rec.Scopes...), "offline_access", "openid", "profile"), " ")},
		"state": {upState}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	if rec.LoginHint != "" {
		q.Set("login_hint", rec.LoginHint) // saves the user picking an account; Entra still authenticates
	}
	if rec.Prompt != "" {
		q.Set("prompt", rec.Prompt)
	}
	http.Redirect(w, r, "https://"+p.AuthorityHost+"/"+p.TenantID+"/oauth2/v2.0/authorize?"+q.Encode(), http.StatusFound)
}

func (p *Proxy) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var up upstateRecord
	if err := takeJSON(r.Context(), p.Store, kindUpstate, hashKey(q.Get("state")), &up); err != nil {
		page(w, http.StatusBadRequest, "unknown or already used sign-in state")
		return
	}
	if b := p.browser(r); b == "" || subtle.ConstantTimeCompare([]byte(b), []byte(up.Browser)) != 1 {
		page(w, http.StatusForbidden, "the sign-in finished in another browser than it started in")
		return
	}
	var rec authzRecord
	if err := takeJSON(r.Context(), p.Store, kindAuthz, up.AuthzID, &rec); err != nil {
		page(w, http.StatusBadRequest, "this sign-in has expired; start again from the application")
		return
	}
	if e := q.Get("error"); e != "" {
		e = oauthErrorCode(e)
		p.event(Event{Name: "signin.failed", ClientID: rec.ClientID, Reason: "entra_" + e})
		code := "access_denied"
		if rec.Prompt == "none" && (e == "interaction_required" || e == "login_required" || e == "consent_required") {
			code = e // the client asked for no UI: it must learn that UI is needed
		}
		p.redirectErr(w, r, rec.RedirectURI, rec.State, code, "sign-in at Microsoft failed: "+e)
		return
	}
	tok, err := p.upstreamToken(r.Context(), url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {p.Issuer + "/auth/callback"}, "code_verifier": {up.Verifier}})
	if err != nil {
		p.log().Warn("upstream code exchange failed", "err", err)
		p.event(Event{Name: "signin.failed", ClientID: rec.ClientID, Reason: "code_exchange_failed"})
		p.redirectErr(w, r, rec.RedirectURI, rec.State, "server_error", "the sign-in at Microsoft could not be completed")
		return
	}
	id, err := p.Verifier.Verify(r.Context(), tok.Access)
	if err != nil {
		p.event(Event{Name: "signin.failed", ClientID: rec.ClientID, Reason: "entra_token_refused"})
		p.redirectErr(w, r, rec.RedirectURI, rec.State, "access_denied", "Microsoft's token was not accepted: "+err.Error())
		return
	}
	user := id.TenantID + ":" + id.ObjectID
	if rec.Remembered && rec.RememberedUser != user {
		// Consent was remembered for someone else in this browser: ask this user themselves.
		p.Store.Delete(r.Context(), kindRemember, rec.RememberKey)
		p.event(Event{Name: "consent.denied", ClientID: rec.ClientID, TenantID: id.TenantID, ObjectID: id.ObjectID, Reason: "remembered_for_another_user"})
		p.redirectErr(w, r, rec.RedirectURI, rec.State, "access_denied", "another account signed in than the one that approved this application; start again and approve it")
		return
	}
	if rec.Remember {
		putJSON(r.Context(), p.Store, kindRemember, rec.RememberKey, rememberRecord{User: user}, rememberFor)
	}
	grantID := randomID()
	g := grantRecord{ClientID: rec.ClientID, TenantID: id.TenantID, ObjectID: id.ObjectID, Name: id.Name, UPN: id.PreferredUsername, Scopes: id.Scopes,
		Roles: id.Roles, Groups: id.Groups, EntraAccess: tok.Access, EntraRefresh: tok.Refresh, EntraExpiry: tok.Expiry}
	code := randomID() + randomID()
	if putJSON(r.Context(), p.Store, kindGrant, grantID, g, 90*24*time.Hour) != nil ||
		putJSON(r.Context(), p.Store, kindCode, hashKey(code), codeRecord{ClientID: rec.ClientID, RedirectURI: rec.RedirectURI, Challenge: rec.Challenge, GrantID: grantID}, 5*time.Minute) != nil {
		p.redirectErr(w, r, rec.RedirectURI, rec.State, "temporarily_unavailable", "the sign-in could not be stored; try again")
		return
	}
	p.event(Event{Name: "signin.completed", ClientID: rec.ClientID, TenantID: id.TenantID, ObjectID: id.ObjectID})
	v := url.Values{"code": {code}, "iss": {p.Issuer}}
	if rec.State != "" {
		v.Set("state", rec.State)
	}
	http.Redirect(w, r, rec.RedirectURI+sep(rec.RedirectURI)+v.Encode(), http.StatusFound)
}

type upstreamTokens struct {
	Access, Refresh string
	Expiry          time.Time
}

func (p *Proxy) upstreamToken(ctx context.Context, form url.Values) (*upstreamTokens, error) {
	endpoint := "https://" + p.AuthorityHost + "/" + p.TenantID + "/oauth2/v2.0/token"
	form.Set("client_id", p.ClientID)
	if err := p.Credential.Apply(ctx, form, endpoint); err != nil {
		return nil, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", entra.ErrEntraUnavailable, err)
	}
	defer resp.Body.Close()
	var b struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int    `json:"expires_in"`
		Error        string `json:"error"`
		Codes        []int  `json:"error_codes"`
	}
	json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&b)
	if resp.StatusCode != http.StatusOK || b.AccessToken == "" {
		if resp.StatusCode >= 500 {
			return nil, fmt.Errorf("%w: HTTP %d", entra.ErrEntraUnavailable, resp.StatusCode)
		}
		return nil, fmt.Errorf("entra refused: %s %v", b.Error, b.Codes)
	}
	return &upstreamTokens{Access: b.AccessToken, Refresh: b.RefreshToken, Expiry: time.Now().Add(time.Duration(b.ExpiresIn) * time.Second)}, nil
}
