package entra

import (
	"context"
	"encoding/hex"
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
	"time"

	"golang.org/x/sync/singleflight"
)

// ErrEntraUnavailable means Entra (or the managed-identity endpoint) could not be reached or
// answered 5xx: the exchange may succeed later.
var ErrEntraUnavailable = errors.New("entra unavailable")

// OBOError is a failed On-Behalf-Of exchange, classified once here so every caller maps it the
// same way. Message is safe to show a user; it never contains a token.
type OBOError struct {
	Kind       OBOErrorKind
	Code       int    // AADSTS number, 0 when unknown
	OAuthError string // OAuth error code
	Message    string
	// Claims is the claims challenge to pass back to the client (InteractionRequired).
	Claims string
	// ConsentURL is where an admin grants the missing consent (ConsentRequired).
	ConsentURL string
}

// OBOErrorKind classifies OBO failures by what the caller should do.
type OBOErrorKind int

const (
	// OBOUnavailable: Entra unreachable or failing; retry later.
	OBOUnavailable OBOErrorKind = iota + 1
	// OBOConsentRequired: an admin must grant consent for the downstream scopes (AADSTS65001).
	OBOConsentRequired
	// OBOInteractionRequired: the user must sign in again satisfying Claims (MFA, 50076/50079).
	OBOInteractionRequired
	// OBOInvalidAssertion: the caller's token is expired or unusable (500133 and kin): 401.
	OBOInvalidAssertion
	// OBOConfiguration: the server's own credential or registration is wrong (7000215, 700016,
	// 7000222, 700027, 70021, 500131, 500011, ...): an operator problem.
	OBOConfiguration
	// OBOOther: anything else Entra refused.
	OBOOther
)

func (e *OBOError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("on-behalf-of exchange failed: %s (AADSTS%d): %s", e.OAuthError, e.Code, e.Message)
	}
	return "on-behalf-of exchange failed: " + e.Message
}

// Unwrap makes unavailability match ErrEntraUnavailable.
func (e *OBOError) Unwrap() error {
	if e.Kind == OBOUnavailable {
		return ErrEntraUnavailable
	}
	return nil
}

// DownstreamToken is a token for a downstream API.
type DownstreamToken struct {
	AccessToken string
	ExpiresOn   time.Time
	Scopes      []string
}

// SharedTokenCache is an optional second cache tier shared by replicas (a Store). Values are
// opaque and already encrypted by the caller's store; keys never contain a token.
type SharedTokenCache interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// OBOOptions configure an OBOClient.
type OBOOptions struct {
	// AuthorityHost and TenantID locate the token endpoint (https://{host}/{tenant}/oauth2/v2.0/token).
	AuthorityHost string
	TenantID      string
	// ClientID and Credential are the middle-tier app's.
	ClientID   string
	Credential Credential
	HTTPClient *http.Client
	// Margin is how long before either token's expiry a cached result stops being used
	// (default 5 minutes).
	Margin time.Duration
	// CacheSize bounds the in-memory cache (default 10,000 entries).
	CacheSize int
	// Shared is an optional cross-replica tier.
	Shared SharedTokenCache
	// OnResult is called once per Token call with "hit", "shared_hit", "miss" or an error label
	// such as "AADSTS65001" or "unavailable" (for metrics).
	OnResult func(result string)
	Logger   *slog.Logger
	Now      func() time.Time
}

// OBOClient exchanges a user's access token for tokens to downstream APIs (On-Behalf-Of), with
// a bounded cache, collapsed concurrent misses and typed errors.
type OBOClient struct {
	o        OBOOptions
	endpoint string
	cache    *oboCache
	flight   singleflight.Group
}

// NewOBOClient validates the options.
func NewOBOClient(o OBOOptions) (*OBOClient, error) {
	if o.AuthorityHost == "" {
		o.AuthorityHost = PublicCloud.AuthorityHost
	}
	if o.TenantID == "" || strings.EqualFold(o.TenantID, "common") || strings.EqualFold(o.TenantID, "consumers") {
		return nil, errors.New("ENTRA_TENANT_ID: On-Behalf-Of needs the tenant id (or organizations)")
	}
	if !isGUID(o.ClientID) {
		return nil, fmt.Errorf("ENTRA_CLIENT_ID %q must be a GUID", o.ClientID)
	}
	if o.Credential == nil {
		return nil, errors.New("On-Behalf-Of needs a credential: ENTRA_CLIENT_SECRET, ENTRA_CLIENT_CERTIFICATE or ENTRA_MANAGED_IDENTITY_CLIENT_ID")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if o.Margin == 0 {
		o.Margin = 5 * time.Minute
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 10_000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &OBOClient{o: o, endpoint: "https://" + o.AuthorityHost + "/" + url.PathEscape(o.TenantID) + "/oauth2/v2.0/token", cache: newOBOCache(o.CacheSize)}, nil
}

// CredentialKind names the credential in use.
func (c *OBOClient) CredentialKind() string { return c.o.Credential.Kind() }

// AdminConsentURL is the v2 admin-consent URL for the app and scopes.
func (c *OBOClient) AdminConsentURL(scopes []string) string {
	return "https://" + c.o.AuthorityHost + "/" + url.PathEscape(c.o.TenantID) + "/v2.0/adminconsent?" + url.Values{
		"client_id": {c.o.ClientID}, "scope": {strings.Join(scopes, " ")}}.Encode()
}

func (c *OBOClient) result(r string) {
	if c.o.OnResult != nil {
		c.o.OnResult(r)
	}
}

// Token returns a token for scopes (all of one resource, e.g. https://graph.microsoft.com/.default)
// on behalf of the user whose access token is assertion. assertionExpiry bounds the cache entry.
func (c *OBOClient) Token(ctx context.Context, assertion string, assertionExpiry time.Time, scopes []string) (*DownstreamToken, error) {
	if assertion == "" || len(scopes) == 0 {
		return nil, errors.New("on-behalf-of needs an assertion and at least one scope")
	}
	sorted := scopes
	if len(scopes) > 1 {
		sorted = slices.Clone(scopes)
		slices.Sort(sorted)
	}
	scopeKey := sorted[0]
	if len(sorted) > 1 {
		scopeKey = strings.Join(sorted, " ")
	}
	key := oboKey{assertion: cacheKey(assertion), scopes: scopeKey}
	now := c.o.Now()
	if t, ok := c.cache.get(key, now.Add(c.o.Margin)); ok {
		c.result("hit")
		return t, nil
	}
	v, err, _ := c.flight.Do(key.String(), func() (any, error) {
		if t, ok := c.cache.get(key, c.o.Now().Add(c.o.Margin)); ok { // filled while we waited
			return t, nil
		}
		if c.o.Shared != nil {
			if t := c.sharedGet(ctx, key); t != nil {
				c.cache.put(key, t, t.ExpiresOn)
				c.result("shared_hit")
				return t, nil
			}
		}
		t, err := c.exchange(ctx, assertion, sorted)
		if err != nil {
			return nil, err
		}
		until := t.ExpiresOn
		if !assertionExpiry.IsZero() && assertionExpiry.Before(until) {
			until = assertionExpiry
		}
		t.ExpiresOn = until // never serve past the earlier of both tokens
		c.cache.put(key, t, until)
		if c.o.Shared != nil {
			c.sharedSet(ctx, key, t, until.Sub(c.o.Now())-c.o.Margin)
		}
		c.result("miss")
		return t, nil
	})
	if err != nil {
		var oe *OBOError
		if errors.As(err, &oe) {
			if oe.Code != 0 {
				c.result(fmt.Sprintf("AADSTS%d", oe.Code))
			} else if oe.Kind == OBOUnavailable {
				c.result("unavailable")
			} else {
				c.result("error")
			}
		}
		return nil, err
	}
	return v.(*DownstreamToken), nil
}

// oboKey identifies a cached exchange: SHA-256 of the assertion and the sorted scopes.
type oboKey struct {
	assertion [32]byte
	scopes    string
}

// String is the key's form for singleflight and the shared tier: no token in it.
func (k oboKey) String() string { return hex.EncodeToString(k.assertion[:]) + "|" + k.scopes }

func (c *OBOClient) sharedGet(ctx context.Context, key oboKey) *DownstreamToken {
	b, ok, err := c.o.Shared.Get(ctx, "obo:"+key.String())
	if err != nil || !ok {
		return nil
	}
	var t DownstreamToken
	if json.Unmarshal(b, &t) != nil || !c.o.Now().Add(c.o.Margin).Before(t.ExpiresOn) {
		return nil
	}
	return &t
}

func (c *OBOClient) sharedSet(ctx context.Context, key oboKey, t *DownstreamToken, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	b, _ := json.Marshal(t)
	if err := c.o.Shared.Set(ctx, "obo:"+key.String(), b, ttl); err != nil {
		c.o.Logger.Warn("shared OBO cache write failed; continuing with the local cache", "err", err)
	}
}

// exchange performs the jwt-bearer request.
func (c *OBOClient) exchange(ctx context.Context, assertion string, scopes []string) (*DownstreamToken, error) {
	form := url.Values{
		"grant_type":          {"urn:ietf:params:oauth:grant-type:jwt-bearer"},
		"client_id":           {c.o.ClientID},
		"assertion":           {assertion},
		"scope":               {strings.Join(scopes, " ")},
		"requested_token_use": {"on_behalf_of"},
	}
	if err := c.o.Credential.Apply(ctx, form, c.endpoint); err != nil {
		if errors.Is(err, ErrEntraUnavailable) {
			return nil, &OBOError{Kind: OBOUnavailable, Message: "the managed identity endpoint could not be reached"}
		}
		return nil, &OBOError{Kind: OBOConfiguration, Message: "the server's credential could not be used: " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &OBOError{Kind: OBOUnavailable, Message: "Microsoft Entra could not be reached; try again shortly"}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, c.classify(resp.StatusCode, body, scopes)
	}
	var r struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		Scope       string `json:"scope"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.AccessToken == "" || r.ExpiresIn <= 0 {
		return nil, &OBOError{Kind: OBOOther, Message: "Entra's token response had no access token"}
	}
	return &DownstreamToken{AccessToken: r.AccessToken, ExpiresOn: c.o.Now().Add(time.Duration(r.ExpiresIn) * time.Second), Scopes: strings.Fields(r.Scope)}, nil
}

// classify maps Entra's error envelope to an OBOError: the one place OBO errors get meaning.
func (c *OBOClient) classify(status int, body []byte, scopes []string) *OBOError {
	var env struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Codes       []int  `json:"error_codes"`
		Claims      string `json:"claims"`
	}
	_ = json.Unmarshal(body, &env)
	e := &OBOError{OAuthError: env.Error, Claims: env.Claims}
	if len(env.Codes) > 0 {
		e.Code = env.Codes[0]
	}
	// Entra's descriptions quote ids, never tokens; keep only the first sentence for users.
	desc := env.Description
	if i := strings.Index(desc, " Trace ID:"); i > 0 {
		desc = desc[:i]
	}
	switch {
	case status >= 500 || status == http.StatusTooManyRequests:
		e.Kind, e.Message = OBOUnavailable, "Microsoft Entra is temporarily unavailable; try again shortly"
	case e.Code == 65001 || strings.Contains(desc, "AADSTS65001"):
		e.Kind = OBOConsentRequired
		e.ConsentURL = c.AdminConsentURL(scopes)
		e.Message = "the server app has not been granted consent for " + strings.Join(scopes, " ") + "; an administrator can grant it at " + e.ConsentURL
	case env.Error == "interaction_required" || e.Code == 50076 || e.Code == 50079:
		e.Kind, e.Message = OBOInteractionRequired, "additional sign-in is required (for example multi-factor authentication) before this tool can act for you"
	case e.Code == 500133 || e.Code == 50013 || e.Code == 50027 || e.Code == 240002 || e.Code == 7000114 || e.Code == 50173 || e.Code == 50034 || e.Code == 50057:
		e.Kind, e.Message = OBOInvalidAssertion, "your access token can no longer be used on your behalf; sign in again"
	case env.Error == "invalid_client" || env.Error == "unauthorized_client" || e.Code == 700016 || e.Code == 500131 || e.Code == 500011 || e.Code == 70011 || e.Code == 70021 || e.Code == 28000:
		e.Kind, e.Message = OBOConfiguration, "the server is misconfigured and cannot act on your behalf; its operator has been told"
	default:
		e.Kind, e.Message = OBOOther, "Microsoft Entra refused the request"
	}
	if e.Kind == OBOConfiguration {
		c.o.Logger.Error("On-Behalf-Of configuration error", "aadsts", e.Code, "error", env.Error, "description", desc, "credential", c.o.Credential.Kind())
	}
	return e
}

// oboCache is a bounded LRU of downstream tokens.
type oboCache struct {
	mu    sync.Mutex
	size  int
	items map[oboKey]*oboEntry
	head  *oboEntry // most recent
	tail  *oboEntry
}

type oboEntry struct {
	key        oboKey
	tok        *DownstreamToken
	until      time.Time
	prev, next *oboEntry
}

func newOBOCache(size int) *oboCache { return &oboCache{size: size, items: map[oboKey]*oboEntry{}} }

// get returns the token when it is valid beyond horizon (now + margin).
func (c *oboCache) get(key oboKey, horizon time.Time) (*DownstreamToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return nil, false
	}
	if !horizon.Before(e.until) {
		c.remove(e)
		return nil, false
	}
	c.moveFront(e)
	return e.tok, true
}

func (c *oboCache) put(key oboKey, t *DownstreamToken, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		e.tok, e.until = t, until
		c.moveFront(e)
		return
	}
	e := &oboEntry{key: key, tok: t, until: until}
	c.items[key] = e
	c.pushFront(e)
	for len(c.items) > c.size {
		c.remove(c.tail)
	}
}

func (c *oboCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

func (c *oboCache) pushFront(e *oboEntry) {
	e.prev, e.next = nil, c.head
	if c.head != nil {
		c.head.prev = e
	}
	c.head = e
	if c.tail == nil {
		c.tail = e
	}
}

func (c *oboCache) moveFront(e *oboEntry) {
	if c.head == e {
		return
	}
	c.unlink(e)
	c.pushFront(e)
}

func (c *oboCache) unlink(e *oboEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		c.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		c.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (c *oboCache) remove(e *oboEntry) {
	c.unlink(e)
	delete(c.items, e.key)
}

// AppToken gets an app-only token for scope (client credentials) with the client's credential:
// doctor uses it to prove the credential works. Errors are classified like OBO errors.
func (c *OBOClient) AppToken(ctx context.Context, scope string) (*DownstreamToken, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.o.ClientID}, "scope": {scope}}
	if err := c.o.Credential.Apply(ctx, form, c.endpoint); err != nil {
		if errors.Is(err, ErrEntraUnavailable) {
			return nil, &OBOError{Kind: OBOUnavailable, Message: "the managed identity endpoint could not be reached"}
		}
		return nil, &OBOError{Kind: OBOConfiguration, Message: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.o.HTTPClient.Do(req)
	if err != nil {
		return nil, &OBOError{Kind: OBOUnavailable, Message: "Microsoft Entra could not be reached"}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, c.classify(resp.StatusCode, body, []string{scope})
	}
	var r struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if json.Unmarshal(body, &r) != nil || r.AccessToken == "" {
		return nil, &OBOError{Kind: OBOOther, Message: "Entra's token response had no access token"}
	}
	return &DownstreamToken{AccessToken: r.AccessToken, ExpiresOn: c.o.Now().Add(time.Duration(r.ExpiresIn) * time.Second)}, nil
}

// Description is the AADSTS text of a classified error for operators (doctor); it may name
// app ids but never holds a token.
func (e *OBOError) Description() string {
	if e.Code != 0 {
		return fmt.Sprintf("AADSTS%d (%s)", e.Code, e.OAuthError)
	}
	return e.Message
}
