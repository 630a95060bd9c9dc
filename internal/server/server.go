// Package server assembles the entramcp MCP server: token verification (entra), the MCP auth
// layer (mcpauth), the go-sdk Streamable HTTP handler with the shipped tools, DNS-rebinding and
// origin checks, health, readiness, metrics and the audit log. cmd/entramcp's serve and dev
// commands build one from configuration.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/graph"
	"github.com/entramcp/entramcp/internal/audit"
	"github.com/entramcp/entramcp/internal/httpx"
	"github.com/entramcp/entramcp/internal/ids"
	"github.com/entramcp/entramcp/internal/metrics"
	"github.com/entramcp/entramcp/mcpauth"
	"github.com/entramcp/entramcp/oauthproxy"
	"github.com/entramcp/entramcp/store"
	"github.com/entramcp/entramcp/tools"
)

// Config is the server's typed configuration (see cmd/entramcp serve for the names).
type Config struct {
	Listen         string
	BaseURL        string // public base URL; the MCP endpoint is BaseURL + "/mcp"
	Mode           string // "verify" (Entra tokens from pre-authorized clients) or "proxy" (our OAuth proxy)
	TenantID       string
	ClientID       string
	IdentifierURI  string
	RequiredScopes []string
	AuthorityHost  string
	AllowedTenants []string
	AppRoles       []string
	AcceptV1       bool
	Leeway         time.Duration
	Stateless      bool
	CAFile         string
	AllowedOrigins []string
	MaxBodyBytes   int64
	ResourceName   string
	// Credentials for On-Behalf-Of (one of them): a client secret, a certificate file (PEM or
	// PFX with password), or a managed identity used as a federated credential.
	ClientSecret              string
	ClientCertificate         string
	ClientCertificatePassword string
	ManagedIdentityClientID   string
	UseSystemManagedIdentity  bool
	// GraphBaseURL is Microsoft Graph's root (default: the cloud's).
	GraphBaseURL string
	// AdminGroupID gates the admin-only tools (the Message Center tools by default).
	AdminGroupID string
	// MessageCenter is admins (default), all or off.
	MessageCenter string
	// GroupCacheTTL is how long Graph group answers are reused per user.
	GroupCacheTTL time.Duration
	// Store is the shared state (ENTRAMCP_STORE): with it, On-Behalf-Of results are shared by
	// replicas (sealed with EncryptionKey). Empty: process memory only.
	Store         string
	EncryptionKey string
	// MinKeyRefetch bounds refetches of the JWKS for unknown kids (default 1 minute).
	MinKeyRefetch time.Duration
	// AllowedRedirects are https hosts or exact https URLs proxy-mode clients may register as
	// redirect URIs, besides oauthproxy.DefaultRedirectHosts (loopback and private-use schemes
	// are always allowed).
	AllowedRedirects []string
	// SigningKey is a PEM EC P-256 key for the proxy's tokens; empty: generated and kept in
	// the store (rotatable).
	SigningKey string
	// AccessTokenLifetime is how long the proxy's access tokens live (default 1 hour).
	AccessTokenLifetime time.Duration
	// SigningKeyMaxAge is when the proxy's generated signing key is replaced (default 30
	// days); the previous key keeps verifying until its tokens have expired.
	SigningKeyMaxAge time.Duration
	// TrustedProxies are addresses or CIDR ranges of the ingress in front of the server, whose
	// X-Forwarded-For names the client for the proxy's per-address limits.
	TrustedProxies []string
	// DataDir holds the embedded bbolt store (DataDir/entramcp.db) that proxy mode uses when
	// Store is empty. Both empty: proxy state lives in memory (one process, lost on restart).
	DataDir string
	// DocumentsFromPrivateAddresses lets client metadata documents (CIMD) be fetched from
	// loopback and private addresses. Only for dev and tests: it opens the SSRF guard.
	DocumentsFromPrivateAddresses bool
	// AuthDisabled serves the tools without authentication. Only for benchmarks that measure
	// what authentication costs; the command line has no way to set it.
	AuthDisabled bool
}

// Server is a configured MCP server.
type Server struct {
	cfg      Config
	log      *slog.Logger
	verifier *entra.Verifier
	auth     *mcpauth.Auth
	policy   *mcpauth.Policy
	mcp      *mcp.Server
	audit    *audit.Log
	reg      *metrics.Registry
	handler  http.Handler
	mcpURL   string

	obo          *entra.OBOClient
	cred         entra.Credential
	proxy        *oauthproxy.Proxy
	store        store.Store
	graphTools   *tools.Graph
	requests     *metrics.CounterVec
	oboResults   *metrics.CounterVec
	graphCalls   *metrics.CounterVec
	authFailures *metrics.CounterVec
	jwks         *metrics.CounterVec
	latency      *metrics.Histogram
}

// Version is reported to MCP clients.
var Version = "devel"

// New validates cfg and builds the server. auditOut receives the audit log (os.Stdout when nil).
func New(cfg Config, log *slog.Logger, auditOut io.Writer) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if auditOut == nil {
		auditOut = os.Stdout
	}
	if cfg.Mode == "" {
		cfg.Mode = "verify"
	}
	if cfg.Mode != "verify" && cfg.Mode != "proxy" {
		return nil, &ConfigError{"ENTRAMCP_MODE", fmt.Sprintf("%q must be verify or proxy", cfg.Mode)}
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	base, err := url.Parse(strings.TrimSuffix(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return nil, &ConfigError{"ENTRAMCP_BASE_URL", fmt.Sprintf("%q must be an absolute http(s) URL such as https://mcp.contoso.com", cfg.BaseURL)}
	}
	s := &Server{cfg: cfg, log: log, reg: metrics.NewRegistry()}
	s.mcpURL = base.String() + "/mcp"
	if _, err := mcpauth.CheckResourceURL(s.mcpURL); err != nil {
		return nil, &ConfigError{"ENTRAMCP_BASE_URL", strings.TrimPrefix(err.Error(), "ENTRAMCP_BASE_URL: ")}
	}
	s.requests = s.reg.NewCounterVec("entramcp_http_requests_total", "MCP endpoint requests by HTTP status.", "code")
	s.authFailures = s.reg.NewCounterVec("entramcp_auth_failures_total", "Refused MCP requests by reason.", "reason")
	s.jwks = s.reg.NewCounterVec("entramcp_jwks_refreshes_total", "Signing-key fetches by result.", "result")
	s.latency = s.reg.NewHistogram("entramcp_request_duration_seconds", "MCP endpoint latency.", metrics.DefaultLatencyBuckets)
	s.oboResults = s.reg.NewCounterVec("entramcp_obo_total", "On-Behalf-Of token lookups by result (hit, shared_hit, miss, AADSTS code, unavailable).", "result")
	s.graphCalls = s.reg.NewCounterVec("entramcp_graph_responses_total", "Microsoft Graph responses by HTTP status.", "code")

	httpClient, err := entra.NewHTTPClient(cfg.CAFile)
	if err != nil {
		return nil, &ConfigError{"ENTRAMCP_CA_FILE", err.Error()}
	}
	var idURIs []string
	if cfg.IdentifierURI != "" {
		idURIs = []string{cfg.IdentifierURI}
	}
	s.verifier, err = entra.NewVerifier(entra.VerifierOptions{
		AuthorityHost: cfg.AuthorityHost, TenantID: cfg.TenantID, AllowedTenants: cfg.AllowedTenants, ClientID: cfg.ClientID,
		IdentifierURIs: idURIs, RequiredScopes: cfg.RequiredScopes, AppRoles: cfg.AppRoles, AcceptV1: cfg.AcceptV1,
		Leeway: cfg.Leeway, HTTPClient: httpClient, Logger: log,
		KeySet: entra.KeySetOptions{MinRefetch: cfg.MinKeyRefetch, OnFetch: func(ok bool) {
			if ok {
				s.jwks.Inc("ok")
			} else {
				s.jwks.Inc("error")
			}
		}},
	})
	if err != nil {
		return nil, &ConfigError{"", err.Error()}
	}
	s.audit = audit.New(auditOut)
	scopes := entra.FullScopes(s.verifier.IdentifierURIs()[0], s.verifier.RequiredScopes())
	if err := s.setupGraph(cfg, httpClient); err != nil {
		return nil, err
	}
	var tokenVerifier mcpauth.TokenVerifier = s.verifier
	authServer := s.verifier.Authority()
	if cfg.Mode == "proxy" {
		if err := s.setupProxy(cfg, base.String(), scopes, httpClient); err != nil {
			return nil, err
		}
		// Our ES256 tokens and, for pre-authorized clients, Entra's RS256 tokens side by side.
		tokenVerifier = mcpauth.ByAlgorithm{"ES256": s.proxy.Tokens, "RS256": s.verifier}
		authServer = base.String()
	}
	s.auth, err = mcpauth.New(mcpauth.Options{
		Verifier: tokenVerifier, ResourceURL: s.mcpURL, AuthorizationServers: []string{authServer},
		Scopes: scopes, ResourceName: cfg.ResourceName, Leeway: cfg.Leeway, OnDenied: s.onDenied,
	})
	if err != nil {
		return nil, &ConfigError{"ENTRAMCP_BASE_URL", err.Error()}
	}
	var groups mcpauth.GroupChecker
	if s.graphTools != nil {
		groups = s.graphTools
	}
	s.policy = mcpauth.NewPolicy(groups, s.onAudit)
	if s.proxy != nil {
		s.proxy.ExtraScopes = s.policy.StepUpScopes // so step-up after insufficient_scope can work
	}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: "entramcp", Title: "entramcp", Version: Version}, &mcp.ServerOptions{
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}},
		Instructions: "Tools run as the signed-in Microsoft Entra user.",
	})
	if s.graphTools != nil {
		s.graphTools.Register(s.mcp, s.policy)
	} else {
		tools.AddWhoAmI(s.mcp)
	}
	s.mcp.AddReceivingMiddleware(s.policy.Middleware())
	s.handler = s.routes()
	return s, nil
}

// setupGraph builds the On-Behalf-Of client and the Graph tools when a credential is configured.
// Without one the server still verifies tokens and offers whoami from the claims.
func (s *Server) setupGraph(cfg Config, httpClient *http.Client) error {
	var cred entra.Credential
	n := 0
	if cfg.ClientSecret != "" {
		cred, n = entra.SecretCredential(cfg.ClientSecret), n+1
	}
	if cfg.ClientCertificate != "" {
		c, err := entra.LoadCertificate(cfg.ClientCertificate, cfg.ClientCertificatePassword)
		if err != nil {
			return &ConfigError{"ENTRA_CLIENT_CERTIFICATE", err.Error()}
		}
		cred, n = c, n+1
	}
	if cfg.ManagedIdentityClientID != "" || cfg.UseSystemManagedIdentity {
		cred, n = entra.ManagedIdentityCredential(entra.ManagedIdentityOptions{ClientID: cfg.ManagedIdentityClientID,
			Audience: s.verifier.Cloud().TokenExchangeAudience, HTTPClient: httpClient}), n+1
	}
	if n > 1 {
		return &ConfigError{"ENTRA_CLIENT_SECRET", "set only one of ENTRA_CLIENT_SECRET, ENTRA_CLIENT_CERTIFICATE and ENTRA_MANAGED_IDENTITY_CLIENT_ID"}
	}
	s.cred = cred
	if cred == nil {
		s.log.Warn("no client credential configured: Microsoft Graph tools are off (set ENTRA_CLIENT_CERTIFICATE, ENTRA_MANAGED_IDENTITY_CLIENT_ID or ENTRA_CLIENT_SECRET)")
		return nil
	}
	switch cfg.MessageCenter {
	case "", "admins", "all", "off":
	default:
		return &ConfigError{"ENTRAMCP_MESSAGE_CENTER", fmt.Sprintf("%q must be admins, all or off", cfg.MessageCenter)}
	}
	if cfg.AdminGroupID != "" && !ids.IsGUID(cfg.AdminGroupID) {
		return &ConfigError{"ENTRAMCP_ADMIN_GROUP_ID", fmt.Sprintf("%q must be the group's object id (a GUID)", cfg.AdminGroupID)}
	}
	graphURL := cfg.GraphBaseURL
	if graphURL == "" {
		graphURL = s.verifier.Cloud().GraphURL
	}
	gc, err := graph.New(graph.Options{BaseURL: graphURL, HTTPClient: httpClient, OnResponse: func(_ string, status int) { s.graphCalls.Inc(statusCode(status)) }})
	if err != nil {
		return &ConfigError{"GRAPH_BASE_URL", err.Error()}
	}
	var shared entra.SharedTokenCache
	if cfg.Store != "" {
		st, err := s.openStore(cfg)
		if err != nil {
			return err
		}
		shared = store.TokenCache{S: st}
	}
	s.obo, err = entra.NewOBOClient(entra.OBOOptions{AuthorityHost: cfg.AuthorityHost, TenantID: cfg.TenantID, ClientID: cfg.ClientID, Credential: cred,
		HTTPClient: httpClient, Logger: s.log, OnResult: s.oboResults.Inc, Shared: shared})
	if err != nil {
		return &ConfigError{"", err.Error()}
	}
	// The OBO scope names Graph as a resource (the cloud's identifier), whatever GRAPH_BASE_URL
	// points the HTTP calls at.
	scope := s.verifier.Cloud().GraphURL + "/.default"
	s.graphTools = &tools.Graph{OBO: s.obo, Client: gc, Scopes: []string{scope}, AdminGroupID: cfg.AdminGroupID, MessageCenter: cfg.MessageCenter, GroupCacheTTL: cfg.GroupCacheTTL, Logger: s.log}
	return nil
}

// openStore opens ENTRAMCP_STORE sealed with ENTRAMCP_ENCRYPTION_KEY; a store outside process
// memory without a strong key is refused.
func (s *Server) openStore(cfg Config) (store.Store, error) {
	if s.store != nil {
		return s.store, nil
	}
	var kr *store.Keyring
	if cfg.EncryptionKey == "" && cfg.Store == "memory:" {
		kr, _ = store.NewRandomKeyring()
	} else {
		var err error
		if kr, err = store.ParseKeyring(cfg.EncryptionKey); err != nil {
			return nil, &ConfigError{"ENTRAMCP_ENCRYPTION_KEY", err.Error()}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	raw, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, &ConfigError{"ENTRAMCP_STORE", err.Error()}
	}
	s.store = store.Encrypted(raw, kr)
	return s.store, nil
}

// OBO is the On-Behalf-Of client, or nil when no credential is configured.
func (s *Server) OBO() *entra.OBOClient { return s.obo }

// ConfigError names the setting that is wrong.
type ConfigError struct{ Setting, Msg string }

func (e *ConfigError) Error() string {
	if e.Setting == "" {
		return "configuration: " + e.Msg
	}
	return "configuration: " + e.Setting + ": " + e.Msg
}

// MCPURL is the public URL of the MCP endpoint.
func (s *Server) MCPURL() string { return s.mcpURL }

// Handler is the whole HTTP surface.
func (s *Server) Handler() http.Handler { return s.handler }

// MCPServer is the go-sdk server, for adding tools.
func (s *Server) MCPServer() *mcp.Server { return s.mcp }

// Policy holds the tool requirements.
func (s *Server) Policy() *mcpauth.Policy { return s.policy }

// Verifier is the token verifier.
func (s *Server) Verifier() *entra.Verifier { return s.verifier }

// Metrics is the registry served at /metrics.
func (s *Server) Metrics() *metrics.Registry { return s.reg }

// Start loads Entra's signing keys. When Entra is unreachable the server still starts, answers
// 503 on /readyz and on the MCP endpoint, and keeps trying in the background.
func (s *Server) Start(ctx context.Context) {
	if s.cfg.AuthDisabled {
		return
	}
	if err := s.verifier.Start(ctx); err != nil {
		s.log.Warn("Entra is not reachable yet; retrying in the background", "authority", s.verifier.Authority(), "err", err)
	}
	if s.proxy != nil && s.cfg.SigningKey == "" {
		maxAge := s.cfg.SigningKeyMaxAge
		if maxAge <= 0 {
			maxAge = 30 * 24 * time.Hour
		}
		go s.proxy.Tokens.Keys.KeepFresh(ctx, maxAge, func(err error) {
			if err != nil {
				s.log.Warn("rotating the proxy's signing key failed; retrying within the hour", "err", err)
				return
			}
			s.log.Info("rotated the proxy's signing key; the previous one verifies until its tokens expire")
		})
	}
}

// Serve runs the HTTP server on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		s.audit.Close()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	s.audit.Close()
	if s.store != nil {
		s.store.Close()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return srv.Close()
	}
	return err
}

// FlushAudit writes buffered audit lines now.
func (s *Server) FlushAudit() { s.audit.Flush() }

// Close flushes the audit log (for servers driven through Handler in tests).
func (s *Server) Close() { s.audit.Close() }

func (s *Server) onDenied(r *http.Request, reason string, status int) {
	s.authFailures.Inc(reason)
	s.audit.Record(audit.Event{Event: "auth.denied", Outcome: "denied", Reason: reason, Status: status, Remote: remoteIP(r)})
}

func (s *Server) onAudit(_ context.Context, e mcpauth.AuditEvent) {
	s.audit.Record(audit.Event{Event: "mcp.request", TenantID: e.Identity.TenantID, ObjectID: e.Identity.ObjectID, AppID: e.Identity.ClientAppID,
		AppOnly: e.Identity.AppOnly, Method: e.Method, Tool: e.Tool, Outcome: e.Outcome, Millis: float64(e.Duration.Microseconds()) / 1000})
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.cfg.AuthDisabled || s.verifier.Ready() {
			io.WriteString(w, "ready\n")
			return
		}
		http.Error(w, "not ready: Entra signing keys are not loaded yet", http.StatusServiceUnavailable)
	})
	mux.Handle("GET /metrics", s.reg.Handler())
	s.auth.Mount(mux)
	if s.proxy != nil {
		s.proxy.Mount(mux)
	}
	streamable := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp }, &mcp.StreamableHTTPOptions{
		Stateless: s.cfg.Stateless, MaxRequestBodyBytes: s.cfg.MaxBodyBytes, SessionTimeout: 30 * time.Minute,
	})
	var h http.Handler = streamable
	if !s.cfg.AuthDisabled {
		h = s.auth.Require(s.policy.StepUp(s.auth, s.cfg.MaxBodyBytes)(streamable))
	}
	mux.Handle("/mcp", s.guardHTTP(h))
	return mux
}

// guardHTTP applies DNS-rebinding (Host) and Origin checks and body limits to the MCP endpoint,
// and records status and latency.
func (s *Server) guardHTTP(next http.Handler) http.Handler {
	base, _ := url.Parse(s.mcpURL)
	hosts := []string{strings.ToLower(base.Host)}
	if base.Port() == "" {
		hosts = append(hosts, strings.ToLower(base.Hostname())+":"+map[string]string{"https": "443", "http": "80"}[base.Scheme])
	}
	if h, p, err := net.SplitHostPort(s.cfg.Listen); err == nil && isLoopback(h) && p != "0" {
		hosts = append(hosts, "127.0.0.1:"+p, "localhost:"+p, "[::1]:"+p)
	}
	origins := append([]string{base.Scheme + "://" + base.Host}, s.cfg.AllowedOrigins...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := httpx.NewStatusWriter(w)
		defer func() {
			s.requests.Inc(statusCode(sw.Status))
			s.latency.Observe(time.Since(start).Seconds())
		}()
		if !slices.Contains(hosts, strings.ToLower(r.Host)) && !s.hostIsListener(r.Host) {
			writeJSONError(sw, http.StatusForbidden, "invalid_host", "the Host header does not name this server (DNS rebinding protection); set ENTRAMCP_BASE_URL to the URL clients use")
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !slices.Contains(origins, strings.TrimSuffix(o, "/")) {
			writeJSONError(sw, http.StatusForbidden, "invalid_origin", "requests from this Origin are not allowed; add it to ENTRAMCP_ALLOWED_ORIGINS")
			return
		}
		if r.ContentLength > s.cfg.MaxBodyBytes {
			writeJSONError(sw, http.StatusRequestEntityTooLarge, "request_too_large", "the request body is larger than ENTRAMCP_MAX_BODY_BYTES")
			return
		}
		next.ServeHTTP(sw, r) // the go-sdk enforces MaxRequestBodyBytes while reading

	})
}

// hostIsListener accepts the actual loopback address when the server was started on port 0.
func (s *Server) hostIsListener(host string) bool {
	h, p, err := net.SplitHostPort(s.cfg.Listen)
	if err != nil || p != "0" || !isLoopback(h) {
		return false
	}
	hh, _, err := net.SplitHostPort(host)
	return err == nil && isLoopback(strings.Trim(hh, "[]"))
}

func isLoopback(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func statusCode(code int) string {
	switch code {
	case 200, 202, 204, 400, 401, 403, 404, 405, 406, 413, 415, 500, 503:
		return strconv.Itoa(code)
	}
	return strconv.Itoa(code/100) + "xx"
}

func writeJSONError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"error\":%q,\"error_description\":%q}\n", code, desc)
}
