package entra

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/entramcp/entramcp/internal/ids"
)

// VerifierOptions configure a Verifier. TenantID and ClientID are required.
type VerifierOptions struct {
	// AuthorityHost is the Entra host users sign in at; default login.microsoftonline.com.
	// It selects the national cloud; an unknown host (an emulator) is trusted as given.
	AuthorityHost string
	// TenantID is the tenant GUID or verified domain, or "organizations" for a multi-tenant API.
	// "common" and "consumers" are refused: personal-account tokens are not for APIs like this.
	TenantID string
	// AllowedTenants restricts a multi-tenant API to these tenant GUIDs (empty: any tenant).
	AllowedTenants []string
	// ClientID is the API's application (client) id: the aud of its v2 tokens.
	ClientID string
	// IdentifierURIs are the API's application id URIs; default api://{ClientID}.
	IdentifierURIs []string
	// RequiredScopes must all be in a user token's scp claim (short or full names).
	RequiredScopes []string
	// AppRoles lets app-only tokens in when their roles claim holds at least one of these.
	// Empty means app-only tokens are refused.
	AppRoles []string
	// AcceptV1 accepts v1.0 tokens (iss https://sts.windows.net/{tid}/). Off by default: set
	// the app's requestedAccessTokenVersion to 2 instead.
	AcceptV1 bool
	// Leeway tolerates clock skew on exp and nbf; default 1 minute, at most 5 minutes.
	Leeway time.Duration
	// CacheSize bounds the cache of verified tokens; default 50,000 entries; negative disables it.
	CacheSize int
	// HTTPClient fetches discovery and keys; default a client with a 10s timeout.
	HTTPClient *http.Client
	// Logger receives key-fetch warnings; never token contents.
	Logger *slog.Logger
	// KeySet overrides key options (refresh interval, refetch bound, fetch callback).
	KeySet KeySetOptions
	// Now replaces the clock in tests.
	Now func() time.Time
}

// Verifier checks Entra access tokens for one API. It is safe for concurrent use.
type Verifier struct {
	opts        VerifierOptions
	cloud       Cloud
	multi       bool
	scopes      []string
	audiences   []string
	cache       *tokenCache
	now         func() time.Time
	discoveryMu sync.Mutex
	tenantID    string // resolved GUID for a single-tenant API
	keys        atomic.Pointer[KeySet]
}

// NewVerifier validates the options. Call Start before Verify.
func NewVerifier(o VerifierOptions) (*Verifier, error) {
	if o.AuthorityHost == "" {
		o.AuthorityHost = PublicCloud.AuthorityHost
	}
	if strings.Contains(o.AuthorityHost, "/") {
		return nil, fmt.Errorf("ENTRA_AUTHORITY_HOST %q must be a host name such as login.microsoftonline.com, without scheme or path", o.AuthorityHost)
	}
	switch strings.ToLower(o.TenantID) {
	case "":
		return nil, errors.New("ENTRA_TENANT_ID is required (the tenant GUID, or organizations for a multi-tenant API)")
	case "common":
		return nil, errors.New("ENTRA_TENANT_ID=common is not supported: it admits personal Microsoft accounts, whose tokens an API cannot validate by tenant; use your tenant id, or organizations for any work or school tenant")
	case "consumers":
		return nil, errors.New("ENTRA_TENANT_ID=consumers is not supported: personal-account tokens are not issued for custom APIs in this form")
	}
	if !isGUID(o.ClientID) {
		return nil, fmt.Errorf("ENTRA_CLIENT_ID %q must be the API's application (client) id, a GUID", o.ClientID)
	}
	for _, t := range o.AllowedTenants {
		if !isGUID(t) {
			return nil, fmt.Errorf("ENTRA_ALLOWED_TENANTS: %q is not a tenant GUID", t)
		}
	}
	if len(o.IdentifierURIs) == 0 {
		o.IdentifierURIs = []string{"api://" + o.ClientID}
	}
	scopes, err := ShortScopes(o.RequiredScopes, o.IdentifierURIs)
	if err != nil {
		return nil, fmt.Errorf("ENTRA_REQUIRED_SCOPES: %w", err)
	}
	if o.Leeway == 0 {
		o.Leeway = time.Minute
	}
	if o.Leeway < 0 || o.Leeway > 5*time.Minute {
		return nil, fmt.Errorf("token leeway %s must be between 0 and 5m", o.Leeway)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	v := &Verifier{opts: o, cloud: CloudForHost(o.AuthorityHost), scopes: scopes, now: o.Now,
		audiences: append([]string{o.ClientID}, o.IdentifierURIs...)}
	v.multi = strings.EqualFold(o.TenantID, "organizations")
	if !v.multi && isGUID(o.TenantID) {
		v.tenantID = strings.ToLower(o.TenantID)
	}
	if o.CacheSize >= 0 {
		size := o.CacheSize
		if size == 0 {
			size = 50_000
		}
		v.cache = newTokenCache(size)
	}
	return v, nil
}

// RequiredScopes are the short scope names every user token must carry.
func (v *Verifier) RequiredScopes() []string { return slices.Clone(v.scopes) }

// IdentifierURIs are the API's application id URIs, the first being the one advertised.
func (v *Verifier) IdentifierURIs() []string { return slices.Clone(v.opts.IdentifierURIs) }

// Authority is the v2 authority clients sign in at: https://{host}/{tenant}/v2.0.
func (v *Verifier) Authority() string {
	t := v.opts.TenantID
	if v.tenantID != "" {
		t = v.tenantID
	}
	return "https://" + v.opts.AuthorityHost + "/" + t + "/v2.0"
}

// Cloud is the national cloud of the authority host.
func (v *Verifier) Cloud() Cloud { return v.cloud }

// Ready reports whether signing keys are loaded.
func (v *Verifier) Ready() bool {
	ks := v.keys.Load()
	return ks != nil && ks.Ready()
}

// Start reads the tenant's OpenID configuration and loads its signing keys, then keeps them
// fresh in the background until ctx ends. When Entra is unreachable it returns the error but
// keeps retrying in the background, so a server can start and become ready later.
func (v *Verifier) Start(ctx context.Context) error {
	jwksURI, err := v.discover(ctx)
	if err != nil {
		go func() {
			backoff := time.Second
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				if uri, err := v.discover(ctx); err == nil {
					v.startKeys(ctx, uri)
					return
				}
				backoff = min(backoff*2, time.Minute)
			}
		}()
		return err
	}
	err = v.startKeys(ctx, jwksURI)
	return err
}

func (v *Verifier) startKeys(ctx context.Context, jwksURI string) error {
	ko := v.opts.KeySet
	if ko.HTTPClient == nil {
		ko.HTTPClient = v.opts.HTTPClient
	}
	if ko.Logger == nil {
		ko.Logger = v.opts.Logger
	}
	ks := NewKeySet(jwksURI, ko)
	err := ks.Fetch(ctx)
	v.keys.Store(ks)
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(ks.refresh):
		}
		ks.Run(ctx)
	}()
	if err != nil {
		go func() { // retry sooner than the schedule while never loaded
			backoff := time.Second
			for !ks.Ready() {
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				_ = ks.Fetch(ctx)
				backoff = min(backoff*2, time.Minute)
			}
		}()
	}
	return err
}

// discover reads the v2 OpenID configuration, checks its issuer as MSAL does (same scheme and
// host as the authority; the configured tenant), and returns the jwks_uri.
func (v *Verifier) discover(ctx context.Context) (string, error) {
	u := "https://" + v.opts.AuthorityHost + "/" + url.PathEscape(v.opts.TenantID) + "/v2.0/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := v.opts.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("reading %s: HTTP %d: %s", u, resp.StatusCode, bytes.TrimSpace(body))
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return "", fmt.Errorf("reading %s: %w", u, err)
	}
	iss, err1 := url.Parse(doc.Issuer)
	jw, err2 := url.Parse(doc.JWKSURI)
	if err1 != nil || err2 != nil || iss.Scheme != "https" || !strings.EqualFold(iss.Host, v.opts.AuthorityHost) || jw.Scheme != "https" {
		return "", fmt.Errorf("%s: issuer %q or jwks_uri %q is not on https://%s", u, doc.Issuer, doc.JWKSURI, v.opts.AuthorityHost)
	}
	if !v.multi {
		tid := strings.TrimSuffix(strings.TrimPrefix(iss.Path, "/"), "/v2.0")
		if !isGUID(tid) || (v.tenantID != "" && !strings.EqualFold(tid, v.tenantID)) {
			return "", fmt.Errorf("%s: issuer %q does not name tenant %s", u, doc.Issuer, v.opts.TenantID)
		}
		v.discoveryMu.Lock()
		v.tenantID = strings.ToLower(tid)
		v.discoveryMu.Unlock()
	}
	return doc.JWKSURI, nil
}

// claims are the access-token claims the verifier reads.
type claims struct {
	Aud               audience       `json:"aud"`
	Iss               string         `json:"iss"`
	Exp               *json.Number   `json:"exp"`
	Nbf               *json.Number   `json:"nbf"`
	Ver               string         `json:"ver"`
	Tid               string         `json:"tid"`
	Oid               string         `json:"oid"`
	Sub               string         `json:"sub"`
	Azp               string         `json:"azp"`
	AppID             string         `json:"appid"`
	Scp               string         `json:"scp"`
	Roles             []string       `json:"roles"`
	Groups            []string       `json:"groups"`
	ClaimNames        map[string]any `json:"_claim_names"`
	HasGroups         bool           `json:"hasgroups"`
	Name              string         `json:"name"`
	PreferredUsername string         `json:"preferred_username"`
	UPN               string         `json:"upn"`
	Idtyp             string         `json:"idtyp"`
}

// audience accepts a string or a one-element array, as JWT allows; Entra sends a string.
type audience string

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = audience(s)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil || len(list) != 1 {
		return errors.New("aud must be a string")
	}
	*a = audience(list[0])
	return nil
}

type header struct {
	Alg   string `json:"alg"`
	Kid   string `json:"kid"`
	Typ   string `json:"typ"`
	Nonce string `json:"nonce"`
	Crit  any    `json:"crit"`
}

// maxTokenBytes bounds what is parsed at all; Entra tokens with 200 groups stay well below.
const maxTokenBytes = 16 << 10

// Verify checks a raw access token and returns the caller's identity. Errors are *VerifyError.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Identity, error) {
	now := v.now()
	var ck [32]byte
	if v.cache != nil && len(raw) <= maxTokenBytes {
		ck = cacheKey(raw)
		// A cached token is still refused once its key leaves the JWKS (emergency rollover).
		if e, ok := v.cache.Get(ck, now.Add(-v.opts.Leeway)); ok && v.keys.Load().Has(e.kid) {
			return e.id, nil
		}
	}
	id, kid, verr := v.verify(ctx, raw, now)
	if verr != nil {
		return nil, verr
	}
	if v.cache != nil {
		v.cache.Put(ck, cacheEntry{id: id, kid: kid}, id.Expiry)
	}
	return id, nil
}

func (v *Verifier) verify(ctx context.Context, raw string, now time.Time) (*Identity, string, *VerifyError) {
	if len(raw) > maxTokenBytes {
		return nil, "", reject(ReasonMalformed, "the token is larger than any Entra access token")
	}
	h64, rest, ok1 := strings.Cut(raw, ".")
	p64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s64, ".") {
		return nil, "", reject(ReasonMalformed, "the token is not a signed JWT (header.payload.signature)")
	}
	hb, err := base64.RawURLEncoding.DecodeString(h64)
	var h header
	if err != nil || json.Unmarshal(hb, &h) != nil {
		return nil, "", reject(ReasonMalformed, "the token header is not valid base64url JSON")
	}
	pb, err := base64.RawURLEncoding.DecodeString(p64)
	var c claims
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(pb))
		dec.UseNumber()
		err = dec.Decode(&c)
	}
	if err != nil {
		return nil, "", reject(ReasonMalformed, "the token payload is not valid base64url JSON")
	}
	// The confused-deputy guard comes first: a Graph token's signature cannot be verified by
	// design (its nonce header), and the administrator needs to hear that it was a Graph token.
	if h.Nonce != "" || isGraphAudience(string(c.Aud)) {
		return nil, "", reject(ReasonGraphToken, "this is a Microsoft Graph access token; this API accepts only tokens issued for itself (request a token for "+FullScope(v.opts.IdentifierURIs[0], firstOr(v.scopes, ".default"))+", not for Graph)")
	}
	if h.Alg != "RS256" {
		return nil, "", reject(ReasonAlgorithm, "only RS256-signed tokens are accepted")
	}
	if h.Crit != nil {
		return nil, "", reject(ReasonMalformed, "critical header parameters are not supported")
	}
	if h.Kid == "" {
		return nil, "", reject(ReasonMalformed, "the token header has no kid")
	}
	sig, err := base64.RawURLEncoding.DecodeString(s64)
	if err != nil {
		return nil, "", reject(ReasonMalformed, "the token signature is not valid base64url")
	}
	ks := v.keys.Load()
	if ks == nil {
		return nil, "", &VerifyError{Reason: ReasonUnavailable, Description: "the tenant's signing keys are not loaded yet; try again shortly"}
	}
	key, err := ks.Key(ctx, h.Kid)
	if errors.Is(err, ErrKeysUnavailable) {
		return nil, "", &VerifyError{Reason: ReasonUnavailable, Description: "the token's signing key is not known and Entra could not be reached to refresh the keys; try again shortly"}
	}
	if err != nil {
		return nil, "", reject(ReasonKeyNotFound, "the token's signing key (kid) is not published by the tenant")
	}
	digest := sha256.Sum256([]byte(raw[:len(h64)+1+len(p64)]))
	if rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig) != nil {
		return nil, "", reject(ReasonSignature, "the token signature is not valid")
	}
	id, verr := v.checkClaims(&c, now)
	if verr != nil {
		return nil, "", verr
	}
	id.token = raw
	return id, h.Kid, nil
}

func (v *Verifier) checkClaims(c *claims, now time.Time) (*Identity, *VerifyError) {
	tid := strings.ToLower(c.Tid)
	if !isGUID(tid) {
		return nil, reject(ReasonMissingClaims, "the token has no tenant id (tid)")
	}
	switch c.Ver {
	case "2.0":
		if c.Iss != "https://"+v.opts.AuthorityHost+"/"+c.Tid+"/v2.0" {
			return nil, reject(ReasonIssuer, "the token was not issued by "+v.Authority()+" (issuer mismatch)")
		}
	case "1.0":
		if !v.opts.AcceptV1 {
			return nil, reject(ReasonVersion, "this is a v1.0 access token; set the API app's manifest accessTokenAcceptedVersion (api.requestedAccessTokenVersion) to 2 so Entra issues v2.0 tokens, or opt in to v1 tokens")
		}
		if c.Iss != "https://"+v.cloud.V1IssuerHost+"/"+c.Tid+"/" {
			return nil, reject(ReasonIssuer, "the v1.0 token was not issued by https://"+v.cloud.V1IssuerHost+"/"+c.Tid+"/ (issuer mismatch)")
		}
	default:
		return nil, reject(ReasonVersion, "the token has no supported version (ver must be 2.0)")
	}
	v.discoveryMu.Lock()
	want := v.tenantID
	v.discoveryMu.Unlock()
	switch {
	case !v.multi && tid != want:
		return nil, reject(ReasonTenant, "the token is from another tenant")
	case v.multi && len(v.opts.AllowedTenants) > 0 && !slices.ContainsFunc(v.opts.AllowedTenants, func(t string) bool { return strings.EqualFold(t, tid) }):
		return nil, reject(ReasonTenant, "the token's tenant is not allowed to use this API")
	}
	if !slices.ContainsFunc(v.audiences, func(a string) bool { return strings.EqualFold(a, string(c.Aud)) }) {
		return nil, reject(ReasonAudience, "the token is for another audience; this API accepts tokens whose aud is "+v.opts.ClientID+" (request a token for "+FullScope(v.opts.IdentifierURIs[0], firstOr(v.scopes, ".default"))+")")
	}
	exp, err1 := numberTime(c.Exp)
	nbf, err2 := numberTime(c.Nbf)
	if err1 != nil || exp.IsZero() || err2 != nil {
		return nil, reject(ReasonMissingClaims, "the token has no valid exp or nbf")
	}
	if now.After(exp.Add(v.opts.Leeway)) {
		return nil, reject(ReasonExpired, "the token has expired")
	}
	if !nbf.IsZero() && now.Add(v.opts.Leeway).Before(nbf) {
		return nil, reject(ReasonNotYetValid, "the token is not valid yet (nbf is in the future)")
	}
	if !isGUID(c.Oid) {
		return nil, reject(ReasonMissingClaims, "the token has no object id (oid)")
	}
	id := &Identity{TenantID: tid, ObjectID: strings.ToLower(c.Oid), Subject: c.Sub, Name: c.Name, PreferredUsername: c.PreferredUsername,
		ClientAppID: c.Azp, Roles: c.Roles, Groups: c.Groups, Version: c.Ver, Expiry: exp}
	if id.ClientAppID == "" {
		id.ClientAppID = c.AppID
	}
	if id.PreferredUsername == "" {
		id.PreferredUsername = c.UPN
	}
	if _, ok := c.ClaimNames["groups"]; ok || c.HasGroups {
		id.GroupsOverage = true
	}
	if c.Scp == "" {
		// App-only: the token carries roles, not scopes.
		id.AppOnly = true
		if len(v.opts.AppRoles) == 0 {
			return nil, reject(ReasonAppOnly, "app-only tokens (client credentials) are not accepted by this API; no app roles are configured for them")
		}
		if !slices.ContainsFunc(c.Roles, func(r string) bool { return slices.Contains(v.opts.AppRoles, r) }) {
			e := reject(ReasonInsufficientScope, "the app-only token carries none of the app roles this API accepts ("+strings.Join(v.opts.AppRoles, ", ")+")")
			return nil, e
		}
		return id, nil
	}
	id.Scopes = strings.Fields(c.Scp)
	var missing []string
	for _, s := range v.scopes {
		if !slices.Contains(id.Scopes, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return nil, &VerifyError{Reason: ReasonInsufficientScope, Scopes: FullScopes(v.opts.IdentifierURIs[0], v.scopes),
			Description: "the token lacks the required scope " + strings.Join(FullScopes(v.opts.IdentifierURIs[0], missing), " ")}
	}
	return id, nil
}

func numberTime(n *json.Number) (time.Time, error) {
	if n == nil {
		return time.Time{}, nil
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, errors.New("bad time")
	}
	return time.Unix(int64(f), 0), nil
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

func isGUID(s string) bool { return ids.IsGUID(s) }
