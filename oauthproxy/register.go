package oauthproxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/entramcp/entramcp/store"
)

// Client is a registered OAuth client (RFC 7591), public: no secret.
type Client struct {
	ClientID     string    `json:"client_id"`
	ClientName   string    `json:"client_name,omitempty"`
	RedirectURIs []string  `json:"redirect_uris"`
	IssuedAt     time.Time `json:"issued_at"`
	TouchedAt    time.Time `json:"touched_at,omitzero"` // last time Touch extended the registration
	// AuthMethod is how the client authenticates at /token: "" or none (public, PKCE only) or
	// private_key_jwt (document clients, with JWKS holding their public keys).
	AuthMethod string          `json:"token_endpoint_auth_method,omitempty"`
	JWKS       json.RawMessage `json:"jwks,omitempty"`
}

// Registry stores clients registered through Dynamic Client Registration.
type Registry struct {
	Store  store.Store
	Policy RedirectPolicy
	// TTL is how long an unused registration lives (default 30 days); clients then re-register
	// after an invalid_client answer.
	TTL time.Duration
	// PerMinute bounds registrations per remote address (default 10).
	PerMinute int
	// Documents, when set, accepts https client_ids (Client ID Metadata Documents).
	Documents *Documents
	// TrustedProxies are the ingresses and load balancers whose X-Forwarded-For names the
	// client for the per-address limits (ENTRAMCP_TRUSTED_PROXIES); see ClientAddress.
	TrustedProxies []netip.Prefix

	limits limiter
}

const clientKind = "client"

func (r *Registry) ttl() time.Duration {
	if r.TTL > 0 {
		return r.TTL
	}
	return 30 * 24 * time.Hour
}

// ErrUnknownClient means no registration exists (or it expired): answer 401 invalid_client so
// the client registers again.
var ErrUnknownClient = errors.New("unknown client")

// Lookup returns a registered client. Store outages are returned as they are, never as
// ErrUnknownClient.
func (r *Registry) Lookup(ctx context.Context, clientID string) (*Client, error) {
	if r.Documents != nil && strings.HasPrefix(clientID, "https://") {
		return r.Documents.Lookup(ctx, clientID)
	}
	if !strings.HasPrefix(clientID, "mcp_") || len(clientID) > 64 {
		return nil, ErrUnknownClient
	}
	data, err := r.Store.Get(ctx, clientKind, clientID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnknownClient
	}
	if err != nil {
		return nil, err
	}
	var c Client
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// Touch extends an in-use registration's life.
// It writes at most once a day per client: every token request calls it, and a store write on
// each refresh would buy nothing against a 30-day TTL.
func (r *Registry) Touch(ctx context.Context, c *Client) error {
	if strings.HasPrefix(c.ClientID, "https://") {
		return nil // a metadata document client lives at its URL, not here
	}
	now := time.Now().UTC()
	if now.Sub(c.TouchedAt) < 24*time.Hour {
		return nil
	}
	c.TouchedAt = now
	data, _ := json.Marshal(c)
	return r.Store.Put(ctx, clientKind, c.ClientID, data, r.ttl())
}

// ServeHTTP is the registration endpoint (POST /register).
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if req.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	if !r.limits.allow(ClientAddress(req, r.TrustedProxies), r.PerMinute, time.Now()) {
		w.Header().Set("Retry-After", "60")
		oauthError(w, http.StatusTooManyRequests, "slow_down", "too many registrations from this address; try again in a minute")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 16<<10))
	if err != nil {
		oauthError(w, http.StatusRequestEntityTooLarge, "invalid_client_metadata", "the registration request is larger than 16 KiB")
		return
	}
	var m struct {
		RedirectURIs            []string `json:"redirect_uris"`
		ClientName              string   `json:"client_name"`
		TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
		GrantTypes              []string `json:"grant_types"`
		ResponseTypes           []string `json:"response_types"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "the body is not a JSON client metadata document")
		return
	}
	switch {
	case len(m.RedirectURIs) == 0 || len(m.RedirectURIs) > 10:
		oauthError(w, http.StatusBadRequest, "invalid_redirect_uri", "register 1 to 10 redirect_uris")
		return
	case m.TokenEndpointAuthMethod != "" && m.TokenEndpointAuthMethod != "none":
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "only public clients are registered: token_endpoint_auth_method must be none")
		return
	case len(m.ClientName) > 100:
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "client_name is longer than 100 characters")
		return
	}
	for _, g := range m.GrantTypes {
		if g != "authorization_code" && g != "refresh_token" {
			oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "grant_types may hold only authorization_code and refresh_token")
			return
		}
	}
	for _, rt := range m.ResponseTypes {
		if rt != "code" {
			oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "response_types may hold only code")
			return
		}
	}
	for _, u := range m.RedirectURIs {
		if err := r.Policy.Check(u); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_redirect_uri", err.Error())
			return
		}
	}
	c := &Client{ClientID: "mcp_" + randomID(), ClientName: strings.TrimSpace(m.ClientName), RedirectURIs: slices.Compact(m.RedirectURIs), IssuedAt: time.Now().UTC()}
	data, _ := json.Marshal(c)
	if err := r.Store.Create(req.Context(), clientKind, c.ClientID, data, r.ttl()); err != nil {
		w.Header().Set("Retry-After", "5")
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the registration could not be stored; try again")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{
		"client_id": c.ClientID, "client_id_issued_at": c.IssuedAt.Unix(), "client_name": c.ClientName, "redirect_uris": c.RedirectURIs,
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
	})
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}
