// Package oauthclient is the OAuth 2.1 client behind `entramcp token` and `entramcp call`: it
// discovers an MCP server's authorization server (RFC 9728 then RFC 8414 or OpenID discovery),
// signs the user in with authorization code + PKCE on a loopback redirect, caches tokens per
// server in the user's config directory (mode 0600) and refreshes them.
package oauthclient

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Resource is an MCP server's protected resource metadata.
type Resource struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
	ScopesSupported      []string `json:"scopes_supported"`
}

// Server is an authorization server's metadata (the fields used here).
type Server struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	// RegistrationEndpoint is set by servers that offer Dynamic Client Registration (the
	// entramcp OAuth proxy); Entra has none.
	RegistrationEndpoint string `json:"registration_endpoint"`
}

// Client holds the HTTP client and where tokens are cached.
type Client struct {
	HTTP     *http.Client
	CacheDir string // default: os.UserConfigDir()/entramcp/tokens
}

func (c *Client) getJSON(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}

// DiscoverResource reads the protected resource metadata of an MCP URL: at the path-specific
// well-known URL, then at the root one.
func (c *Client) DiscoverResource(ctx context.Context, mcpURL string) (*Resource, error) {
	u, err := url.Parse(mcpURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%q is not an MCP server URL", mcpURL)
	}
	base := u.Scheme + "://" + u.Host + "/.well-known/oauth-protected-resource"
	var r Resource
	for _, cand := range []string{base + strings.TrimSuffix(u.EscapedPath(), "/"), base} {
		if err = c.getJSON(ctx, cand, &r); err == nil && len(r.AuthorizationServers) > 0 {
			return &r, nil
		}
	}
	return nil, fmt.Errorf("no protected resource metadata for %s: %v", mcpURL, err)
}

// DiscoverServer reads an authorization server's metadata: RFC 8414 (path-aware) first, then
// OpenID discovery appended to the issuer (Entra's form).
func (c *Client) DiscoverServer(ctx context.Context, issuer string) (*Server, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("authorization server %q is not a URL", issuer)
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	origin := u.Scheme + "://" + u.Host
	var s Server
	for _, cand := range []string{
		origin + "/.well-known/oauth-authorization-server" + path,
		origin + "/.well-known/openid-configuration" + path,
		strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration",
	} {
		if err = c.getJSON(ctx, cand, &s); err == nil && s.AuthorizationEndpoint != "" && s.TokenEndpoint != "" {
			return &s, nil
		}
	}
	return nil, fmt.Errorf("no authorization server metadata for %s: %v", issuer, err)
}

// Token is a cached token set.
type Token struct {
	AccessToken   string    `json:"access_token"`
	RefreshToken  string    `json:"refresh_token,omitempty"`
	ExpiresAt     time.Time `json:"expires_at"`
	TokenEndpoint string    `json:"token_endpoint"`
	ClientID      string    `json:"client_id"`
	Scope         string    `json:"scope"`
}

// Request describes what to sign in for.
type Request struct {
	ClientID     string
	Scopes       []string
	RedirectHost string // 127.0.0.1 (default) or localhost
	LoginHint    string
	// Resource is sent as RFC 8707 resource (to the proxy; Entra refuses it).
	Resource string
	// Open is called with the authorization URL (open a browser, or print it).
	Open func(authURL string) error
	// Timeout bounds the wait for the browser to come back (default 5 minutes).
	Timeout time.Duration
}

// Interactive signs the user in with authorization code + PKCE (S256) on a loopback redirect.
func (c *Client) Interactive(ctx context.Context, as *Server, r Request) (*Token, error) {
	if r.RedirectHost == "" {
		r.RedirectHost = "127.0.0.1"
	}
	if r.Timeout == 0 {
		r.Timeout = 5 * time.Minute
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	listeners := []net.Listener{ln}
	if r.RedirectHost == "localhost" {
		// Browsers may resolve localhost to ::1 first; listen there too when we can.
		if ln6, err := net.Listen("tcp6", fmt.Sprintf("[::1]:%d", port)); err == nil {
			defer ln6.Close()
			listeners = append(listeners, ln6)
		}
	}
	redirect := fmt.Sprintf("http://%s:%d/", r.RedirectHost, port)
	verifier, state := randomString(48), randomString(24)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {r.ClientID}, "response_type": {"code"}, "redirect_uri": {redirect}, "scope": {strings.Join(r.Scopes, " ")},
		"state": {state}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	if r.LoginHint != "" {
		q.Set("login_hint", r.LoginHint)
	}
	if r.Resource != "" {
		q.Set("resource", r.Resource)
	}
	authURL := as.AuthorizationEndpoint + "?" + q.Encode()
	type result struct {
		code string
		err  error
	}
	done := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p := req.URL.Query()
		var res result
		switch {
		case p.Get("state") != state:
			res.err = errors.New("the authorization response has the wrong state (possible CSRF); sign in again")
		case p.Get("error") != "":
			res.err = fmt.Errorf("sign-in failed: %s: %s", p.Get("error"), p.Get("error_description"))
		case p.Get("code") == "":
			res.err = errors.New("the authorization response has no code")
		default:
			res.code = p.Get("code")
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if res.err != nil {
			fmt.Fprintf(w, "<h1>Sign-in failed</h1><p>%s</p>", html.EscapeString(res.err.Error()))
		} else {
			fmt.Fprint(w, "<h1>Signed in</h1><p>You can close this window and return to the terminal.</p>")
		}
		select {
		case done <- res:
		default:
		}
	})}
	for _, l := range listeners {
		go srv.Serve(l)
	}
	defer srv.Close()
	if err := r.Open(authURL); err != nil {
		return nil, err
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(r.Timeout):
		return nil, errors.New("timed out waiting for the browser to complete sign-in")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if res.err != nil {
		return nil, res.err
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {res.code},
		"redirect_uri": {redirect}, "code_verifier": {verifier}, "scope": {strings.Join(r.Scopes, " ")}}
	if r.Resource != "" {
		form.Set("resource", r.Resource)
	}
	return c.exchange(ctx, as.TokenEndpoint, r.ClientID, form)
}

// Register returns this CLI's client id at a server with Dynamic Client Registration (RFC
// 7591): the one registered before (kept in the cache directory) or a new registration of a
// public client with a loopback redirect on any port (RFC 8252).
func (c *Client) Register(ctx context.Context, as *Server, name, redirectHost string) (string, error) {
	if as.RegistrationEndpoint == "" {
		return "", errors.New("the authorization server does not offer client registration; give --client-id")
	}
	if redirectHost == "" {
		redirectHost = "127.0.0.1"
	}
	p, err := c.cacheFile("registration", as.Issuer, []string{redirectHost})
	if err != nil {
		return "", err
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if data, err := os.ReadFile(p); err == nil && json.Unmarshal(data, &reg) == nil && reg.ClientID != "" {
		return reg.ClientID, nil
	}
	body, _ := json.Marshal(map[string]any{"client_name": name, "redirect_uris": []string{"http://" + redirectHost + "/"},
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"}, "token_endpoint_auth_method": "none"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, as.RegistrationEndpoint, strings.NewReader(string(body)))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		ClientID    string `json:"client_id"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated || out.ClientID == "" {
		return "", fmt.Errorf("client registration: HTTP %d %s: %s", resp.StatusCode, out.Error, out.Description)
	}
	data, _ := json.Marshal(map[string]string{"client_id": out.ClientID, "issuer": as.Issuer})
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return "", err
	}
	return out.ClientID, nil
}

// Forget drops a cached registration (the server no longer knows the client).
func (c *Client) Forget(as *Server, redirectHost string) {
	if redirectHost == "" {
		redirectHost = "127.0.0.1"
	}
	if p, err := c.cacheFile("registration", as.Issuer, []string{redirectHost}); err == nil {
		os.Remove(p)
	}
}

// Refresh uses a refresh token; the new token set replaces the old.
func (c *Client) Refresh(ctx context.Context, t *Token) (*Token, error) {
	if t.RefreshToken == "" {
		return nil, errors.New("no refresh token")
	}
	return c.exchange(ctx, t.TokenEndpoint, t.ClientID, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {t.RefreshToken}, "scope": {t.Scope}})
}

func (c *Client) exchange(ctx context.Context, endpoint, clientID string, form url.Values) (*Token, error) {
	form.Set("client_id", clientID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int    `json:"expires_in"`
		Error        string `json:"error"`
		Description  string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("token endpoint: HTTP %d, unreadable answer", resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return nil, fmt.Errorf("token endpoint: %s: %s", body.Error, body.Description)
	}
	return &Token{AccessToken: body.AccessToken, RefreshToken: body.RefreshToken, ExpiresAt: time.Now().Add(time.Duration(body.ExpiresIn) * time.Second),
		TokenEndpoint: endpoint, ClientID: clientID, Scope: form.Get("scope")}, nil
}

// cacheFile names the cache entry of (server, client, scopes) without putting any of them in a
// path verbatim.
func (c *Client) cacheFile(resource, clientID string, scopes []string) (string, error) {
	dir := c.CacheDir
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(base, "entramcp", "tokens")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(resource + "\x00" + clientID + "\x00" + strings.Join(scopes, " ")))
	return filepath.Join(dir, hex.EncodeToString(sum[:16])+".json"), nil
}

// Load returns the cached token set, or nil.
func (c *Client) Load(resource, clientID string, scopes []string) *Token {
	p, err := c.cacheFile(resource, clientID, scopes)
	if err != nil {
		return nil
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	var t Token
	if json.Unmarshal(data, &t) != nil {
		return nil
	}
	return &t
}

// Save writes the token set with mode 0600.
func (c *Client) Save(resource string, scopes []string, t *Token) error {
	p, err := c.cacheFile(resource, t.ClientID, scopes)
	if err != nil {
		return err
	}
	data, _ := json.Marshal(t)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// Get returns a usable token: the cached one while it has 5 minutes left, a refreshed one, or a
// new sign-in.
func (c *Client) Get(ctx context.Context, resource string, as *Server, r Request) (*Token, string, error) {
	if t := c.Load(resource, r.ClientID, r.Scopes); t != nil {
		if time.Until(t.ExpiresAt) > 5*time.Minute {
			return t, "cache", nil
		}
		if nt, err := c.Refresh(ctx, t); err == nil {
			return nt, "refresh", c.Save(resource, r.Scopes, nt)
		}
	}
	t, err := c.Interactive(ctx, as, r)
	if err != nil {
		return nil, "", err
	}
	return t, "sign-in", c.Save(resource, r.Scopes, t)
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// DeviceCode signs a user in with the device code flow (RFC 8628): it prints Entra's message
// ("To sign in, use a web browser to open ... and enter the code ...") and polls until the user
// has signed in, the code expires or ctx ends. Entra's v2 authority is
// https://{host}/{tenant}; its device endpoint is {authority}/oauth2/v2.0/devicecode.
func (c *Client) DeviceCode(ctx context.Context, authority, clientID string, scopes []string, show func(message string)) (*Token, error) {
	form := url.Values{"client_id": {clientID}, "scope": {strings.Join(scopes, " ")}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, authority+"/oauth2/v2.0/devicecode", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	var dc struct {
		DeviceCode string `json:"device_code"`
		Message    string `json:"message"`
		Interval   int    `json:"interval"`
		ExpiresIn  int    `json:"expires_in"`
		Error      string `json:"error"`
		Desc       string `json:"error_description"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&dc)
	resp.Body.Close()
	if err != nil || dc.DeviceCode == "" {
		return nil, fmt.Errorf("device code request failed: %s %s", dc.Error, dc.Desc)
	}
	show(dc.Message)
	interval := time.Duration(max(dc.Interval, 1)) * time.Second
	deadline := time.Now().Add(time.Duration(max(dc.ExpiresIn, 60)) * time.Second)
	tokenURL := authority + "/oauth2/v2.0/token"
	for time.Now().Before(deadline) {
		t, err := c.exchange(ctx, tokenURL, clientID, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {dc.DeviceCode}})
		if err == nil {
			return t, nil
		}
		if !strings.Contains(err.Error(), "authorization_pending") && !strings.Contains(err.Error(), "slow_down") {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(interval):
		}
	}
	return nil, errors.New("the device code expired before sign-in completed")
}
