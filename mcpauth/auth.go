package mcpauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/entramcp/entramcp/entra"
)

// TokenVerifier turns a bearer token into an identity. *entra.Verifier is one; the OAuth proxy
// adds one for its own tokens. Errors should be *entra.VerifyError so the right challenge goes
// back; any other error is a 401 invalid_token.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*entra.Identity, error)
}

// Options configure Auth.
type Options struct {
	// Verifier checks tokens. Required.
	Verifier TokenVerifier
	// ResourceURL is the public URL of the MCP endpoint (RFC 9728 resource), e.g.
	// https://mcp.contoso.com/mcp. Required.
	ResourceURL string
	// AuthorizationServers are advertised in the protected resource metadata: the Entra v2
	// authority in verify mode, or our own issuer in proxy mode. Required.
	AuthorizationServers []string
	// Scopes are the full scope URIs clients should request, advertised in the metadata and in
	// challenges.
	Scopes []string
	// ResourceName is a human-readable name for the metadata.
	ResourceName string
	// Leeway is the clock skew the verifier allows; the go-sdk's own expiry check is told the
	// same (default 1 minute).
	Leeway time.Duration
	// OnDenied is called for every refused request with the reason and status (for metrics and
	// audit). Reasons are entra.Reason* values plus "no_token", "token_in_query" and
	// "multiple_authorization_headers".
	OnDenied func(r *http.Request, reason string, status int)
}

// Auth is the bearer-token layer of an MCP server.
type Auth struct {
	infos       tokenInfos
	opts        Options
	metadataURL string
	metadata    []byte
	challenge   string // the scope and resource_metadata parameters every challenge carries
	sdkBridge   func(http.Handler) http.Handler
}

// tokenInfos memoises the go-sdk TokenInfo of each identity: the verifier hands out the same
// immutable *entra.Identity for a token it has cached, so the TokenInfo (and its map) is built
// once per token instead of once per request. Reads take no lock; the map is dropped and started
// afresh when it reaches 10,000 entries, which bounds its memory.
type tokenInfos struct {
	m     sync.Map // *entra.Identity -> *auth.TokenInfo
	count atomic.Int64
}

func (t *tokenInfos) get(id *entra.Identity) *auth.TokenInfo {
	if ti, ok := t.m.Load(id); ok {
		return ti.(*auth.TokenInfo)
	}
	if t.count.Add(1) > 10_000 {
		t.m.Clear()
		t.count.Store(1)
	}
	ti := &auth.TokenInfo{Scopes: id.Scopes, Expiration: id.Expiry, UserID: id.UserKey(), Extra: map[string]any{identityKey: id}}
	actual, _ := t.m.LoadOrStore(id, ti)
	return actual.(*auth.TokenInfo)
}

// verifiedPlaceholder replaces the Authorization header once the token is verified.
var verifiedPlaceholder = []string{"Bearer verified-by-entramcp"}

// identityKey is where the go-sdk's TokenInfo.Extra carries our identity.
const identityKey = "entramcp.identity"

// CheckResourceURL validates an MCP resource URL: absolute http(s) without query or fragment,
// and http only on a loopback host (bearer tokens must not travel in clear text).
func CheckResourceURL(resource string) (*url.URL, error) {
	u, err := url.Parse(resource)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" || u.RawQuery != "" {
		return nil, fmt.Errorf("ENTRAMCP_BASE_URL: the MCP resource URL %q must be an absolute http(s) URL without query or fragment", resource)
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("ENTRAMCP_BASE_URL: %q uses http on a non-loopback host; tokens would travel in clear text (use https)", resource)
	}
	return u, nil
}

// New validates the options.
func New(o Options) (*Auth, error) {
	if o.Verifier == nil {
		return nil, errors.New("mcpauth: a Verifier is required")
	}
	u, err := CheckResourceURL(o.ResourceURL)
	if err != nil {
		return nil, err
	}
	if len(o.AuthorizationServers) == 0 {
		return nil, errors.New("mcpauth: at least one authorization server is required")
	}
	if o.Leeway == 0 {
		o.Leeway = time.Minute
	}
	a := &Auth{opts: o}
	a.metadataURL = u.Scheme + "://" + u.Host + "/.well-known/oauth-protected-resource" + strings.TrimSuffix(u.EscapedPath(), "/")
	a.metadata, err = json.Marshal(map[string]any{
		"resource":                 o.ResourceURL,
		"authorization_servers":    o.AuthorizationServers,
		"scopes_supported":         nonNil(o.Scopes),
		"bearer_methods_supported": []string{"header"},
		"resource_name":            o.ResourceName,
	})
	if err != nil {
		return nil, err
	}
	a.challenge = fmt.Sprintf(`resource_metadata="%s"`, a.metadataURL)
	if len(o.Scopes) > 0 {
		a.challenge += fmt.Sprintf(`, scope="%s"`, quoteSafe(strings.Join(o.Scopes, " ")))
	}
	// The go-sdk keeps TokenInfo under a private context key that only its own middleware can
	// set. This bridge runs after our verification and hands the verified identity over, so
	// the SDK binds each session to tid:oid.
	a.sdkBridge = auth.RequireBearerToken(func(ctx context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		id := entra.IdentityFromContext(r.Context())
		if id == nil {
			return nil, auth.ErrInvalidToken
		}
		return a.infos.get(id), nil
	}, &auth.RequireBearerTokenOptions{ClockSkew: o.Leeway})
	return a, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// MetadataURL is where the protected resource metadata is served (the resource_metadata
// parameter of challenges).
func (a *Auth) MetadataURL() string { return a.metadataURL }

// Mount registers the protected resource metadata at the path-specific well-known URL and at the
// root one.
func (a *Auth) Mount(mux *http.ServeMux) {
	u, _ := url.Parse(a.metadataURL)
	mux.Handle("GET "+u.Path, a.MetadataHandler())
	if u.Path != "/.well-known/oauth-protected-resource" {
		mux.Handle("GET /.well-known/oauth-protected-resource", a.MetadataHandler())
	}
}

// MetadataHandler serves the RFC 9728 document; it is public and cacheable.
func (a *Auth) MetadataHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(a.metadata)
	})
}

// Require lets through only requests with a valid token, with the identity in the context
// (entra.IdentityFromContext) and in the go-sdk's TokenInfo.
func (a *Auth) Require(next http.Handler) http.Handler {
	bridged := a.sdkBridge(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, reason := bearerToken(r)
		switch reason {
		case "":
		case "no_token":
			a.deny(w, r, reason, http.StatusUnauthorized, "", "")
			return
		case "token_in_query", "multiple_authorization_headers":
			a.deny(w, r, reason, http.StatusBadRequest, "invalid_request", map[string]string{
				"token_in_query":                 "access tokens are accepted only in the Authorization header, never in the URL",
				"multiple_authorization_headers": "send exactly one Authorization header",
			}[reason])
			return
		default:
			a.deny(w, r, reason, http.StatusUnauthorized, "invalid_token", "the Authorization header must be 'Bearer <token>'")
			return
		}
		id, err := a.opts.Verifier.Verify(r.Context(), tok)
		if err != nil {
			var ve *entra.VerifyError
			if !errors.As(err, &ve) {
				ve = &entra.VerifyError{Reason: entra.ReasonMalformed, Description: "the token could not be verified"}
			}
			switch ve.HTTPStatus() {
			case http.StatusForbidden:
				a.denyScope(w, r, ve.Reason, ve.Description, ve.Scopes)
			case http.StatusServiceUnavailable:
				w.Header().Set("Retry-After", "5")
				a.deny(w, r, ve.Reason, http.StatusServiceUnavailable, "temporarily_unavailable", ve.Description)
			default:
				a.deny(w, r, ve.Reason, http.StatusUnauthorized, "invalid_token", ve.Description)
			}
			return
		}
		// The token has served its purpose here. Downstream handlers (the go-sdk copies headers
		// into every tool request) see a placeholder: tools reach the token only through
		// Identity.Token, on purpose, for On-Behalf-Of. It also spares the SDK re-parsing it.
		r.Header["Authorization"] = verifiedPlaceholder
		cw, release := a.withChallengeSlot(w, r)
		defer release()
		bridged.ServeHTTP(cw, r.WithContext(entra.WithIdentity(r.Context(), id)))
	})
}

// bearerToken extracts the token, or says why there is none.
func bearerToken(r *http.Request) (string, string) {
	if strings.Contains(r.URL.RawQuery, "access_token") && r.URL.Query().Has("access_token") {
		return "", "token_in_query"
	}
	hs := r.Header.Values("Authorization")
	switch len(hs) {
	case 0:
		return "", "no_token"
	case 1:
	default:
		return "", "multiple_authorization_headers"
	}
	scheme, tok, _ := strings.Cut(strings.TrimSpace(hs[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", "no_token" // another scheme: no bearer credentials were presented
	}
	// Anything else that is not a well-formed JWT fails verification with a precise reason.
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", entra.ReasonMalformed
	}
	return tok, ""
}

// deny writes a challenge. errCode "" is the bare challenge for a request without credentials.
func (a *Auth) deny(w http.ResponseWriter, r *http.Request, reason string, status int, errCode, desc string) {
	if a.opts.OnDenied != nil {
		a.opts.OnDenied(r, reason, status)
	}
	params := a.challenge
	if errCode != "" {
		params = fmt.Sprintf(`error="%s", error_description="%s", %s`, errCode, quoteSafe(desc), a.challenge)
	}
	if status == http.StatusUnauthorized || status == http.StatusBadRequest {
		w.Header().Set("WWW-Authenticate", "Bearer "+params)
	}
	writeError(w, status, errCode, desc)
}

// denyScope is the 403 insufficient_scope challenge naming the scopes needed (step-up).
func (a *Auth) denyScope(w http.ResponseWriter, r *http.Request, reason, desc string, scopes []string) {
	if a.opts.OnDenied != nil {
		a.opts.OnDenied(r, reason, http.StatusForbidden)
	}
	params := fmt.Sprintf(`error="insufficient_scope", error_description="%s", resource_metadata="%s"`, quoteSafe(desc), a.metadataURL)
	if len(scopes) > 0 {
		params += fmt.Sprintf(`, scope="%s"`, quoteSafe(strings.Join(scopes, " ")))
	}
	w.Header().Set("WWW-Authenticate", "Bearer "+params)
	writeError(w, http.StatusForbidden, "insufficient_scope", desc)
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if code == "" {
		code, desc = "unauthorized", "this MCP server requires an Entra access token; see the WWW-Authenticate header"
	}
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// quoteSafe keeps a value legal inside a quoted-string of a challenge.
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < ' ' || r > '~' {
			return '\''
		}
		return r
	}, s)
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1" || strings.HasPrefix(h, "127.")
}

func identityFromTokenInfo(ti *auth.TokenInfo) *entra.Identity {
	if ti == nil {
		return nil
	}
	id, _ := ti.Extra[identityKey].(*entra.Identity)
	return id
}
