// Package testenv starts the pieces integration tests share: an emulator and an entramcp
// server wired to it, on loopback, torn down with the test.
package testenv

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/emutest"
	"github.com/entramcp/entramcp/internal/server"
)

// Env is a running emulator and server.
type Env struct {
	Emulator *emulator.Emulator
	Server   *server.Server
	MCPURL   string
	audit    *lockedBuilder
	cancel   context.CancelFunc
}

// AuditLog returns what the server's audit log has written so far.
func (e *Env) AuditLog() string {
	e.Server.FlushAudit()
	e.audit.mu.Lock()
	defer e.audit.mu.Unlock()
	return e.audit.String()
}

// Options tweak the environment.
type Options struct {
	// Config changes the emulator's tenant before it starts.
	Config func(*emulator.Config)
	// Server changes the server configuration before it is built.
	Server func(*server.Config)
	// Before runs after the server is built and before it serves (add tools, policies).
	Before func(*server.Server)
	// BeforeServer runs after the emulator started and before the server is built (faults).
	BeforeServer func(*emulator.Emulator)
}

// Start runs an emulator and a server for the test.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	em := emutest.Start(t, o.Config)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	info := em.Info()
	if o.BeforeServer != nil {
		o.BeforeServer(em)
	}
	sc := server.Config{
		Listen: ln.Addr().String(), BaseURL: "http://" + ln.Addr().String(), TenantID: info.TenantID, ClientID: info.Apps.Server.ClientID,
		RequiredScopes: info.Apps.Server.Scopes[:1], AuthorityHost: strings.TrimPrefix(info.EmulatorURL, "https://"), CAFile: info.CAFile,
		ResourceName: "entramcp test", ClientSecret: info.Apps.Server.ClientSecret, GraphBaseURL: info.GraphURL, AdminGroupID: info.AdminGroupID,
	}
	if o.Server != nil {
		o.Server(&sc)
	}
	audit := &lockedBuilder{}
	srv, err := server.New(sc, nil, audit)
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	if o.Before != nil {
		o.Before(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv.Start(ctx)
	done := make(chan struct{})
	go func() { srv.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &Env{Emulator: em, Server: srv, MCPURL: srv.MCPURL(), audit: audit, cancel: cancel}
}

// UserToken gets an access token for the server's API with the password grant.
func (e *Env) UserToken(t testing.TB, user string, extraScopes ...string) string {
	t.Helper()
	return emutest.UserToken(t, e.Emulator, user, extraScopes...)
}

// Claims decodes a JWT payload without verifying it.
func Claims(t testing.TB, jwt string) map[string]any { t.Helper(); return emutest.Claims(t, jwt) }

// PostMCP sends one JSON-RPC message to the MCP endpoint with the given headers.
func (e *Env) PostMCP(t testing.TB, body string, headers map[string]string) (*http.Response, string) {
	t.Helper()
	resp, b, err := e.PostMCPWith(http.DefaultClient, body, headers)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// PostMCPWith is PostMCP through client, returning the error instead of failing the test (for
// benchmark goroutines, which must not call FailNow).
func (e *Env) PostMCPWith(client *http.Client, body string, headers map[string]string) (*http.Response, string, error) {
	req, _ := http.NewRequest(http.MethodPost, e.MCPURL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

// Initialize is the JSON-RPC initialize request.
const Initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}`

// lockedBuilder guards a strings.Builder shared with the audit flusher.
type lockedBuilder struct {
	mu sync.Mutex
	strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.Builder.Write(p)
}
