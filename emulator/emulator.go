package emulator

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure an Emulator. The zero value runs the built-in tenant on free loopback ports
// with its keys in a temporary directory.
type Options struct {
	// Config is the tenant to serve; nil means DefaultConfig().
	Config *Config
	// StateDir keeps the CA, the token-signing key and generated secrets across restarts, and
	// receives ca.pem for clients. Empty means a temporary directory removed by Close.
	StateDir string
	// Listen is the identity endpoint's address (login.microsoftonline.com's stand-in);
	// default 127.0.0.1:0, a free port.
	Listen string
	// GraphListen is the Microsoft Graph stand-in's address; default 127.0.0.1:0.
	GraphListen string
	// Logger receives one line per request (method, path, status); nil discards. Token,
	// secret and code values are never logged.
	Logger *slog.Logger
}

// Emulator is a running Entra ID + Microsoft Graph emulator. Its methods are safe for concurrent
// use; the test-control methods (faults, clock, keys, consents) apply immediately.
type Emulator struct {
	log      *slog.Logger
	dir      *directory
	ca       *authority
	stateDir string
	tempDir  string
	caFile   string
	secrets  map[string]string // generated client secrets by appId (dev.json shows them)
	macKey   []byte            // HMAC key for the SSO cookie and the identity header, from the CA key

	keyMu     sync.RWMutex
	signing   *signingKey
	published []*signingKey

	login, graph *endpoint
	clockSkew    atomic.Int64

	grantsMu sync.Mutex
	codes    map[string]*authCode
	refresh  map[string]*refreshGrant
	devices  map[string]*deviceGrant
	// validFrom is each user's TokensValidFrom: refresh tokens issued earlier are revoked.
	validFrom map[string]time.Time

	stats stats
}

// Start creates the emulator and starts serving. Close stops it.
func Start(opts Options) (*Emulator, error) {
	cfg := opts.Config
	if cfg == nil {
		cfg = DefaultConfig()
	}
	dir, err := newDirectory(cfg)
	if err != nil {
		return nil, err
	}
	em := &Emulator{
		log: opts.Logger, dir: dir, stateDir: opts.StateDir,
		codes: map[string]*authCode{}, refresh: map[string]*refreshGrant{}, devices: map[string]*deviceGrant{}, validFrom: map[string]time.Time{},
	}
	if em.log == nil {
		em.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	em.stats.init()
	if em.stateDir == "" {
		if em.tempDir, err = os.MkdirTemp("", "entramcp-emulator-"); err != nil {
			return nil, err
		}
		em.stateDir = em.tempDir
	} else if err := os.MkdirAll(em.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("emulator state dir: %w", err)
	}
	if err := em.prepareKeys(); err != nil {
		em.cleanup()
		return nil, err
	}
	cert, err := em.ca.serverCertificate()
	if err != nil {
		em.cleanup()
		return nil, err
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	em.login = newEndpoint("login", em.loginHandler(), tlsConf, em)
	em.graph = newEndpoint("graph", em.graphHandler(), tlsConf, em)
	if err := em.login.listen(defaultAddr(opts.Listen)); err != nil {
		em.cleanup()
		return nil, fmt.Errorf("emulator listen %s: %w", opts.Listen, err)
	}
	if err := em.graph.listen(defaultAddr(opts.GraphListen)); err != nil {
		em.login.close()
		em.cleanup()
		return nil, fmt.Errorf("emulator graph listen %s: %w", opts.GraphListen, err)
	}
	return em, nil
}

func defaultAddr(a string) string {
	if a == "" {
		return "127.0.0.1:0"
	}
	return a
}

func (em *Emulator) prepareKeys() error {
	var err error
	if em.ca, err = loadOrCreateCA(em.stateDir); err != nil {
		return fmt.Errorf("emulator CA: %w", err)
	}
	raw, err := em.ca.key.Bytes()
	if err != nil {
		return err
	}
	if em.macKey, err = hkdf.Key(sha256.New, raw, nil, "entramcp emulator mac", 32); err != nil {
		return err
	}
	em.caFile = filepath.Join(em.stateDir, "ca.pem")
	if err := writeFileAtomic(em.caFile, em.ca.certPEM, 0o644); err != nil {
		return err
	}
	sk, err := loadOrCreateSigningKey(em.stateDir)
	if err != nil {
		return fmt.Errorf("emulator signing key: %w", err)
	}
	em.signing, em.published = sk, []*signingKey{sk}
	return em.prepareSecrets()
}

// prepareSecrets gives the dev server app a client secret when the configuration has none, and
// keeps it in the state dir so a restarted `entramcp dev` does not invalidate a .env file.
func (em *Emulator) prepareSecrets() error {
	path := filepath.Join(em.stateDir, "secrets.json")
	em.secrets = map[string]string{}
	if data, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(data, &em.secrets)
	}
	server := em.dir.devServerApp()
	if server == nil {
		return nil
	}
	for _, p := range server.PasswordCredentials {
		if p.SecretText != "" {
			em.secrets[server.AppID] = p.SecretText
			return nil
		}
	}
	secret, ok := em.secrets[server.AppID]
	if !ok {
		secret = "dev~" + randomToken(30)
		em.secrets[server.AppID] = secret
		data, _ := json.Marshal(em.secrets)
		if err := writeFileAtomic(path, data, 0o600); err != nil {
			return err
		}
	}
	server.PasswordCredentials = append(server.PasswordCredentials, PasswordCredential{
		KeyID: deriveGUID("secret", server.AppID), DisplayName: "entramcp dev", Hint: secret[:3], SecretText: secret,
	})
	return nil
}

// Close stops both listeners and removes the temporary state directory, if one was made.
func (em *Emulator) Close() error {
	err := errors.Join(em.login.close(), em.graph.close())
	em.cleanup()
	return err
}

func (em *Emulator) cleanup() {
	if em.tempDir != "" {
		os.RemoveAll(em.tempDir)
	}
}

// URL is the identity endpoint's base URL (the stand-in for https://login.microsoftonline.com).
func (em *Emulator) URL() string { return "https://" + em.login.addr }

// GraphURL is the Graph stand-in's base URL (for https://graph.microsoft.com); API paths start
// with /v1.0.
func (em *Emulator) GraphURL() string { return "https://" + em.graph.addr }

// TenantID is the tenant GUID.
func (em *Emulator) TenantID() string { return em.dir.tenant.ID }

// Authority is the tenant's authority URL: {URL}/{tenant id}.
func (em *Emulator) Authority() string { return em.URL() + "/" + em.dir.tenant.ID }

// Issuer is the v2 issuer of the tenant's tokens.
func (em *Emulator) Issuer() string { return em.Authority() + "/v2.0" }

// CAFile is the path of the PEM file clients must trust.
func (em *Emulator) CAFile() string { return em.caFile }

// CertPool is a pool holding the emulator's CA.
func (em *Emulator) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(em.ca.cert)
	return p
}

// HTTPClient returns a client that trusts the emulator's CA and nothing else.
func (em *Emulator) HTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: em.CertPool(), MinVersion: tls.VersionTLS12}
	t.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// now is the emulator's clock: real time plus the offset set by SetClockOffset.
func (em *Emulator) now() time.Time { return time.Now().Add(time.Duration(em.clockSkew.Load())) }

// SetClockOffset moves the emulator's clock (token iat/exp, expiry checks) by d.
func (em *Emulator) SetClockOffset(d time.Duration) { em.clockSkew.Store(int64(d)) }

// endpoint is one HTTPS listener with its own faults. An outage in "refuse" mode really closes
// the listening socket (clients see connection refused) and reopens it on the same port later.
type endpoint struct {
	name string
	em   *Emulator
	srv  *http.Server

	mu     sync.Mutex
	addr   string
	ln     net.Listener
	conns  map[net.Conn]struct{}
	faults faults
	timer  *time.Timer
	closed bool
}

func newEndpoint(name string, h http.Handler, tlsConf *tls.Config, em *Emulator) *endpoint {
	ep := &endpoint{name: name, em: em, conns: map[net.Conn]struct{}{}}
	ep.srv = &http.Server{
		Handler:           ep.middleware(h),
		TLSConfig:         tlsConf.Clone(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(em.log.Handler(), slog.LevelDebug),
		ConnState: func(c net.Conn, s http.ConnState) {
			ep.mu.Lock()
			defer ep.mu.Unlock()
			switch s {
			case http.StateNew:
				ep.conns[c] = struct{}{}
			case http.StateClosed, http.StateHijacked:
				delete(ep.conns, c)
			}
		},
	}
	return ep
}

func (ep *endpoint) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ep.mu.Lock()
	ep.ln, ep.addr = ln, ln.Addr().String()
	ep.mu.Unlock()
	go ep.serve(ln)
	return nil
}

func (ep *endpoint) serve(ln net.Listener) {
	if err := ep.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		ep.em.log.Error("emulator listener stopped", "endpoint", ep.name, "err", err)
	}
}

// refuse closes the listening socket and every open connection.
func (ep *endpoint) refuse() {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.ln != nil {
		ep.ln.Close()
		ep.ln = nil
	}
	for c := range ep.conns {
		c.Close()
	}
}

// reopen listens again on the same address after a refused outage.
func (ep *endpoint) reopen() error {
	ep.mu.Lock()
	if ep.ln != nil || ep.closed {
		ep.mu.Unlock()
		return nil
	}
	addr := ep.addr
	ep.mu.Unlock()
	var err error
	for i := 0; i < 50; i++ { // the old socket may linger for a moment
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			ep.mu.Lock()
			ep.ln = ln
			ep.mu.Unlock()
			go ep.serve(ln)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

func (ep *endpoint) close() error {
	ep.mu.Lock()
	ep.closed = true
	if ep.timer != nil {
		ep.timer.Stop()
	}
	ep.mu.Unlock()
	// In-flight requests get a moment to finish; idle HTTP/2 connections would otherwise hold
	// Shutdown for its full polling interval.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ep.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return ep.srv.Close()
}
