package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/entramcp/entramcp/internal/cli"
	"github.com/entramcp/entramcp/internal/config"
	"github.com/entramcp/entramcp/internal/server"
)

// serverSettings are the configuration names of DESIGN.md, each also a flag.
func serverSettings(getenv func(string) string) *config.Set {
	return config.New(getenv,
		&config.Setting{Env: "ENTRAMCP_LISTEN", Flag: "listen", Default: "127.0.0.1:8000", Help: "address to listen on (port 0 picks a free port)"},
		&config.Setting{Env: "ENTRAMCP_BASE_URL", Flag: "base-url", Help: "public URL of this server, e.g. https://mcp.contoso.com (default http://LISTEN on loopback)"},
		&config.Setting{Env: "ENTRAMCP_MODE", Flag: "mode", Default: "proxy", Help: "proxy: be the OAuth server (DCR, CIMD, PKCE, consent) for any MCP client, signing users in with Entra, and accept Entra tokens too; verify: accept only Entra tokens from pre-authorized clients (needs no credential)"},
		&config.Setting{Env: "ENTRAMCP_ALLOWED_REDIRECTS", Flag: "allowed-redirects", Help: "proxy mode: https hosts (claude.ai) or exact https URLs clients may register as redirect URIs, comma-separated, besides the built-in hosted clients; loopback and app schemes are always allowed"},
		&config.Setting{Env: "ENTRAMCP_SIGNING_KEY", Flag: "signing-key", Secret: true, Help: "proxy mode: PEM EC P-256 key for the proxy's tokens (default: generated and kept in ENTRAMCP_STORE)"},
		&config.Setting{Env: "ENTRA_TENANT_ID", Aliases: []string{"AZURE_TENANT_ID"}, Flag: "tenant-id", Help: "tenant GUID or domain, or organizations for a multi-tenant API"},
		&config.Setting{Env: "ENTRA_CLIENT_ID", Aliases: []string{"AZURE_CLIENT_ID"}, Flag: "client-id", Help: "the API app's application (client) id"},
		&config.Setting{Env: "ENTRA_CLIENT_SECRET", Aliases: []string{"AZURE_CLIENT_SECRET"}, Flag: "client-secret", Secret: true, Help: "client secret for On-Behalf-Of (prefer a certificate or managed identity)"},
		&config.Setting{Env: "ENTRA_CLIENT_CERTIFICATE", Flag: "client-certificate", Help: "certificate for On-Behalf-Of: PEM (certificate and RSA key) or PFX file"},
		&config.Setting{Env: "ENTRA_CLIENT_CERTIFICATE_PASSWORD", Flag: "client-certificate-password", Secret: true, Help: "password of a PFX certificate"},
		&config.Setting{Env: "ENTRA_MANAGED_IDENTITY_CLIENT_ID", Flag: "managed-identity-client-id", Help: "use this user-assigned managed identity as the app's federated credential (\"system\" for the system-assigned one)"},
		&config.Setting{Env: "GRAPH_BASE_URL", Flag: "graph-base-url", Help: "Microsoft Graph root (default: the cloud's, e.g. https://graph.microsoft.com)"},
		&config.Setting{Env: "ENTRAMCP_ADMIN_GROUP_ID", Flag: "admin-group-id", Help: "object id of the Entra group whose members may use the admin-only tools"},
		&config.Setting{Env: "ENTRAMCP_MESSAGE_CENTER", Flag: "message-center", Default: "admins", Help: "who is offered the Message Center tools: admins (ENTRAMCP_ADMIN_GROUP_ID), all, or off"},
		&config.Setting{Env: "ENTRAMCP_STORE", Flag: "store", Help: "shared state: bolt:///path/entramcp.db (one process), redis://host:6379/0 (replicas) or memory:; empty: proxy mode uses DATA_DIR/entramcp.db, verify mode keeps On-Behalf-Of results in memory"},
		&config.Setting{Env: "ENTRAMCP_ACCESS_TOKEN_LIFETIME", Flag: "access-token-lifetime", Default: "1h", Help: "proxy mode: how long the proxy's access tokens live (5m to 24h); clients refresh after it"},
		&config.Setting{Env: "ENTRAMCP_TRUSTED_PROXIES", Flag: "trusted-proxies", Help: "proxy mode: IPs or CIDR ranges of the ingress/load balancer in front, comma-separated; their X-Forwarded-For names the client for per-address limits (default: trust no header)"},
		&config.Setting{Env: "ENTRAMCP_DATA_DIR", Flag: "data-dir", Help: "proxy mode without ENTRAMCP_STORE keeps its state in DATA_DIR/entramcp.db (bbolt, one process; needs ENTRAMCP_ENCRYPTION_KEY); default $XDG_STATE_HOME/entramcp or ~/.local/state/entramcp"},
		&config.Setting{Env: "ENTRAMCP_CIMD_ALLOW_PRIVATE", Flag: "cimd-allow-private", Default: "false", Help: "dev and tests only: fetch client metadata documents from loopback and private addresses (turns the SSRF guard off)"},
		&config.Setting{Env: "ENTRAMCP_ENCRYPTION_KEY", Flag: "encryption-key", Secret: true, Help: "key(s) sealing the store at rest: [kid:]base64 of 32 random bytes, comma-separated, newest first"},
		&config.Setting{Env: "ENTRAMCP_GROUP_CACHE_TTL", Flag: "group-cache-ttl", Default: "5m", Help: "how long a Graph group-membership answer is reused per user"},
		&config.Setting{Env: "ENTRA_IDENTIFIER_URI", Flag: "identifier-uri", Help: "the API's application id URI (default api://CLIENT_ID)"},
		&config.Setting{Env: "ENTRA_REQUIRED_SCOPES", Flag: "required-scopes", Default: "mcp-access", Help: "delegated scopes every user token must carry, short names, comma-separated"},
		&config.Setting{Env: "ENTRA_AUTHORITY_HOST", Flag: "authority-host", Default: "login.microsoftonline.com", Help: "Entra host: login.microsoftonline.com, login.microsoftonline.us, login.partner.microsoftonline.cn"},
		&config.Setting{Env: "ENTRA_ALLOWED_TENANTS", Flag: "allowed-tenants", Help: "with ENTRA_TENANT_ID=organizations: the tenant GUIDs allowed in (default any)"},
		&config.Setting{Env: "ENTRA_APP_ROLES", Flag: "app-roles", Help: "app roles that let app-only (client credentials) tokens in; empty refuses them"},
		&config.Setting{Env: "ENTRA_ACCEPT_V1_TOKENS", Flag: "accept-v1-tokens", Default: "false", Help: "also accept v1.0 tokens (prefer requestedAccessTokenVersion=2)"},
		&config.Setting{Env: "ENTRAMCP_TOKEN_LEEWAY", Flag: "token-leeway", Default: "1m", Help: "clock skew allowed on token exp and nbf (at most 5m)"},
		&config.Setting{Env: "ENTRAMCP_STATELESS", Flag: "stateless", Default: "false", Help: "stateless MCP sessions, for several replicas behind a load balancer"},
		&config.Setting{Env: "ENTRAMCP_CA_FILE", Flag: "ca-file", Help: "extra CA certificate (PEM) to trust for Entra and Graph, e.g. the emulator's"},
		&config.Setting{Env: "ENTRAMCP_ALLOWED_ORIGINS", Flag: "allowed-origins", Help: "browser origins allowed besides the base URL's, comma-separated"},
		&config.Setting{Env: "ENTRAMCP_MAX_BODY_BYTES", Flag: "max-body-bytes", Default: "1048576", Help: "largest accepted request body"},
		&config.Setting{Env: "ENTRAMCP_LOG_FORMAT", Flag: "log-format", Default: "json", Help: "json or text"},
	)
}

// buildServerConfig turns settings into a server.Config, validating what the server does not.
func buildServerConfig(set *config.Set) (server.Config, error) {
	c := server.Config{
		Listen: set.String("ENTRAMCP_LISTEN"), BaseURL: set.String("ENTRAMCP_BASE_URL"), Mode: set.String("ENTRAMCP_MODE"),
		TenantID: set.String("ENTRA_TENANT_ID"), ClientID: set.String("ENTRA_CLIENT_ID"), IdentifierURI: set.String("ENTRA_IDENTIFIER_URI"),
		RequiredScopes: set.List("ENTRA_REQUIRED_SCOPES"), AuthorityHost: set.String("ENTRA_AUTHORITY_HOST"),
		AllowedTenants: set.List("ENTRA_ALLOWED_TENANTS"), AppRoles: set.List("ENTRA_APP_ROLES"), CAFile: set.String("ENTRAMCP_CA_FILE"),
		AllowedOrigins: set.List("ENTRAMCP_ALLOWED_ORIGINS"), ResourceName: "entramcp",
		ClientSecret: set.String("ENTRA_CLIENT_SECRET"), ClientCertificate: set.String("ENTRA_CLIENT_CERTIFICATE"),
		ClientCertificatePassword: set.String("ENTRA_CLIENT_CERTIFICATE_PASSWORD"), ManagedIdentityClientID: set.String("ENTRA_MANAGED_IDENTITY_CLIENT_ID"),
		GraphBaseURL: set.String("GRAPH_BASE_URL"), Store: set.String("ENTRAMCP_STORE"), EncryptionKey: set.String("ENTRAMCP_ENCRYPTION_KEY"), AdminGroupID: set.String("ENTRAMCP_ADMIN_GROUP_ID"), MessageCenter: set.String("ENTRAMCP_MESSAGE_CENTER"),
		AllowedRedirects: set.List("ENTRAMCP_ALLOWED_REDIRECTS"), SigningKey: set.String("ENTRAMCP_SIGNING_KEY"),
		DataDir: set.String("ENTRAMCP_DATA_DIR"), TrustedProxies: set.List("ENTRAMCP_TRUSTED_PROXIES"),
	}
	if c.DataDir == "" {
		c.DataDir = defaultDataDir()
	}
	if c.ManagedIdentityClientID == "system" {
		c.ManagedIdentityClientID = ""
		c.UseSystemManagedIdentity = true
	}
	var err error
	if c.AcceptV1, err = set.Bool("ENTRA_ACCEPT_V1_TOKENS"); err != nil {
		return c, err
	}
	if c.DocumentsFromPrivateAddresses, err = set.Bool("ENTRAMCP_CIMD_ALLOW_PRIVATE"); err != nil {
		return c, err
	}
	if c.Stateless, err = set.Bool("ENTRAMCP_STATELESS"); err != nil {
		return c, err
	}
	if c.Leeway, err = set.Duration("ENTRAMCP_TOKEN_LEEWAY"); err != nil {
		return c, err
	}
	if c.AccessTokenLifetime, err = set.Duration("ENTRAMCP_ACCESS_TOKEN_LIFETIME"); err != nil {
		return c, err
	}
	if c.AccessTokenLifetime < 5*time.Minute || c.AccessTokenLifetime > 24*time.Hour {
		return c, set.Errorf("ENTRAMCP_ACCESS_TOKEN_LIFETIME", "%s must be between 5m and 24h", c.AccessTokenLifetime)
	}
	if c.GroupCacheTTL, err = set.Duration("ENTRAMCP_GROUP_CACHE_TTL"); err != nil {
		return c, err
	}
	if c.MaxBodyBytes, err = set.Int64("ENTRAMCP_MAX_BODY_BYTES"); err != nil {
		return c, err
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 64<<20 {
		return c, set.Errorf("ENTRAMCP_MAX_BODY_BYTES", "must be between 1024 and 67108864")
	}
	if f := set.String("ENTRAMCP_LOG_FORMAT"); f != "json" && f != "text" {
		return c, set.Errorf("ENTRAMCP_LOG_FORMAT", "%q must be json or text", f)
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return c, set.Errorf("ENTRAMCP_LISTEN", "%q is not host:port", c.Listen)
	}
	if c.BaseURL == "" {
		if host == "" || host == "0.0.0.0" || host == "::" {
			return c, set.Errorf("ENTRAMCP_BASE_URL", "is required when listening on all interfaces: set the https URL clients use")
		}
		if port != "0" {
			c.BaseURL = "http://" + c.Listen
		}
	}
	if c.ClientID == "" {
		return c, set.Errorf("ENTRA_CLIENT_ID", "is required: the application (client) id of the API's app registration")
	}
	return c, nil
}

// defaultDataDir follows the XDG base directories: $XDG_STATE_HOME/entramcp, else
// ~/.local/state/entramcp; empty when there is no home (proxy state then stays in memory).
func defaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "entramcp")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" && home != "/" {
		return filepath.Join(home, ".local", "state", "entramcp")
	}
	return ""
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}

const serveSummary = `Runs the MCP server (Streamable HTTP at /mcp) that accepts only valid Entra access tokens for
its own API, and by default (--mode proxy) also the OAuth server that signs any MCP client's users
in with Entra (docs/proxy.md); --mode verify accepts pre-authorized clients' Entra tokens only.
Settings come from flags or the environment (flags win); AZURE_TENANT_ID, AZURE_CLIENT_ID and
AZURE_CLIENT_SECRET are accepted as fallbacks. It prints its effective
configuration (secrets redacted) to stderr, logs as JSON to stderr and writes the audit log
(one JSON line per authenticated call, never a token) to stdout.

Endpoints: /mcp, /.well-known/oauth-protected-resource/mcp (and at the root), /healthz,
/readyz (ready once Entra's signing keys are loaded), /metrics (Prometheus text); in proxy mode
also /.well-known/oauth-authorization-server, /jwks, /register, /authorize, /consent,
/auth/callback, /token and /revoke.`

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("serve", "entramcp serve [flags]", serveSummary, stderr)
	set := serverSettings(nil)
	set.Register(fs)
	if err := cli.Parse(fs, args, false); err != nil {
		return err
	}
	set.Resolve(fs)
	return serveWith(ctx, set, stdout, stderr, nil)
}

// serveWith builds and runs a server; ready (when not nil) is called with the MCP URL once the
// server is listening.
func serveWith(ctx context.Context, set *config.Set, stdout, stderr io.Writer, ready func(mcpURL string)) error {
	cfg, err := buildServerConfig(set)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	log := newLogger(set.String("ENTRAMCP_LOG_FORMAT"), stderr)
	fmt.Fprintln(stderr, "entramcp serve: effective configuration")
	set.Describe(stderr)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (choose another address with --listen)", cfg.Listen, err)
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "http://" + ln.Addr().String()
	}
	srv, err := server.New(cfg, log, stdout)
	if err != nil {
		ln.Close()
		var ce *server.ConfigError
		if errors.As(err, &ce) {
			return cli.Usagef("%v", err)
		}
		return err
	}
	srv.Start(ctx)
	log.Info("entramcp serving", "mcp_url", srv.MCPURL(), "listen", ln.Addr().String(), "mode", cfg.Mode, "authority", srv.Verifier().Authority())
	if ready != nil {
		ready(srv.MCPURL())
	}
	return srv.Serve(ctx, ln)
}
