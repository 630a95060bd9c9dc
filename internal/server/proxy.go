package server

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/entramcp/entramcp/internal/audit"
	"github.com/entramcp/entramcp/oauthproxy"
)

// setupProxy builds the OAuth proxy (ENTRAMCP_MODE=proxy): our authorization server in front of
// Entra, its signing keys and its sealed records in the store.
func (s *Server) setupProxy(cfg Config, base string, scopes []string, httpClient *http.Client) error {
	if s.cred == nil {
		return &ConfigError{"ENTRAMCP_MODE", "proxy mode signs users in with Entra as a confidential client: set ENTRA_CLIENT_CERTIFICATE, ENTRA_MANAGED_IDENTITY_CLIENT_ID or ENTRA_CLIENT_SECRET (or use ENTRAMCP_MODE=verify)"}
	}
	switch {
	case cfg.Store == "" && cfg.DataDir != "":
		// The embedded default: one process, state kept across restarts. It holds Entra
		// refresh tokens, so it is sealed like any other store (openStore wants the key).
		cfg.Store = "bolt://" + filepath.Join(cfg.DataDir, "entramcp.db")
		if cfg.EncryptionKey == "" {
			return &ConfigError{"ENTRAMCP_ENCRYPTION_KEY", fmt.Sprintf("is required: proxy mode keeps users' Entra refresh tokens in %s, sealed with this key (32 random bytes, base64: `openssl rand -base64 32`); or set ENTRAMCP_STORE", cfg.Store)}
		}
	case cfg.Store == "":
		// One replica only: sessions and signing keys end with the process.
		s.log.Warn("proxy mode without ENTRAMCP_STORE keeps clients, sessions and signing keys in memory; they are lost on restart and not shared by replicas")
		cfg.Store = "memory:"
	case cfg.Store == "memory:":
		s.log.Warn("ENTRAMCP_STORE=memory: clients, sessions and signing keys are lost on restart and not shared by replicas")
	}
	if cfg.DocumentsFromPrivateAddresses {
		s.log.Warn("client metadata documents may be fetched from loopback and private addresses (dev setting): the SSRF guard is off")
	}
	st, err := s.openStore(cfg)
	if err != nil {
		return err
	}
	policy := oauthproxy.RedirectPolicy{Hosts: slices.Clone(oauthproxy.DefaultRedirectHosts)}
	for _, a := range cfg.AllowedRedirects {
		switch {
		case strings.HasPrefix(a, "https://"):
			if err := (oauthproxy.RedirectPolicy{URLs: []string{a}}).Check(a); err != nil {
				return &ConfigError{"ENTRAMCP_ALLOWED_REDIRECTS", fmt.Sprintf("%q: %v", a, err)}
			}
			policy.URLs = append(policy.URLs, a)
		case a != "" && !strings.ContainsAny(a, "/:@ \\?#"):
			policy.Hosts = append(policy.Hosts, strings.ToLower(a))
		default:
			return &ConfigError{"ENTRAMCP_ALLOWED_REDIRECTS", fmt.Sprintf("%q: entries are https host names (claude.ai) or exact https URLs", a)}
		}
	}
	var trusted []netip.Prefix
	for _, t := range cfg.TrustedProxies {
		p, err := netip.ParsePrefix(t)
		if err != nil {
			a, aerr := netip.ParseAddr(t)
			if aerr != nil {
				return &ConfigError{"ENTRAMCP_TRUSTED_PROXIES", fmt.Sprintf("%q is neither an IP address nor a CIDR range (10.0.0.0/8)", t)}
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		trusted = append(trusted, p.Masked())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lifetime := cfg.AccessTokenLifetime
	if lifetime <= 0 {
		lifetime = time.Hour
	}
	// A retired key verifies for as long as the tokens it signed can live (plus clock skew).
	keys, err := oauthproxy.LoadKeys(ctx, st, cfg.SigningKey, lifetime+cfg.Leeway+5*time.Minute)
	if err != nil {
		return &ConfigError{"ENTRAMCP_SIGNING_KEY", err.Error()}
	}
	authority, _ := url.Parse(s.verifier.Authority())
	p := &oauthproxy.Proxy{
		Store: st,
		Registry: &oauthproxy.Registry{Store: st, Policy: policy, TrustedProxies: trusted, Documents: &oauthproxy.Documents{
			Store: st, Policy: policy, RootCAs: rootCAs(httpClient), AllowPrivateAddresses: cfg.DocumentsFromPrivateAddresses}},
		Verifier:       s.verifier,
		Issuer:         base,
		Resource:       s.mcpURL,
		AuthorityHost:  authority.Host,
		TenantID:       cfg.TenantID,
		ClientID:       cfg.ClientID,
		Credential:     s.cred,
		HTTPClient:     httpClient,
		UpstreamScopes: scopes,
		Logger:         s.log,
	}
	// One label, the event name (a fixed set): reasons can carry Entra's error codes, which a
	// caller can vary, and would make the series unbounded.
	events := s.reg.NewCounterVec("entramcp_proxy_events_total", "OAuth proxy events: sign-ins, consents denied, tokens issued, grants revoked.", "event")
	p.OnEvent = func(e oauthproxy.Event) {
		events.Inc(e.Name)
		outcome := "ok"
		switch e.Name {
		case "grant.revoked":
			outcome = "revoked"
		case "signin.failed", "consent.denied":
			outcome = "denied"
		}
		s.audit.Record(audit.Event{Event: "proxy." + e.Name, TenantID: e.TenantID, ObjectID: e.ObjectID, AppID: e.ClientID, Outcome: outcome, Reason: e.Reason})
	}
	p.Tokens = &oauthproxy.Tokens{Keys: keys, Issuer: base, Resource: s.mcpURL, Leeway: cfg.Leeway, Lifetime: lifetime, Upstream: p.UpstreamToken}
	s.proxy = p
	return nil
}

// rootCAs are the roots httpClient trusts (nil: the system's), so ENTRAMCP_CA_FILE also
// covers metadata documents.
func rootCAs(c *http.Client) *x509.CertPool {
	if t, ok := c.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
		return t.TLSClientConfig.RootCAs
	}
	return nil
}
