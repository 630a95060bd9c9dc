package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/proxytest"
	"github.com/entramcp/entramcp/internal/redistest"
	"github.com/entramcp/entramcp/internal/testenv"
	"github.com/entramcp/entramcp/store"
)

// balancer is a round-robin load balancer in front of replicas, like the ingress of a real
// deployment: it keeps the public Host, skips a replica that refuses connections, and lets
// the test act just before a request goes out.
type balancer struct {
	mu       sync.Mutex
	backends []string // host:port
	next     int
	before   func(path string)
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	before := b.before
	b.mu.Unlock()
	if before != nil {
		before(r.URL.Path)
	}
	b.mu.Lock()
	order := slices.Concat(b.backends[b.next:], b.backends[:b.next])
	b.next = (b.next + 1) % len(b.backends)
	b.mu.Unlock()
	body, _ := io.ReadAll(r.Body) // kept, to replay on the next replica
	for _, backend := range order {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+backend+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		req.Host = r.Host
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			continue // that replica is gone: the next one serves
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		return
	}
	http.Error(w, "no replica", http.StatusBadGateway)
}

// startReplica runs `entramcp serve` in proxy mode against the emulator, sharing Redis.
func startReplica(t *testing.T, info emulator.Info, public, listen, redisURL, key string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, "serve")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"ENTRAMCP_LISTEN=" + listen, "ENTRAMCP_BASE_URL=" + public, "ENTRAMCP_MODE=proxy",
		"ENTRA_TENANT_ID=" + info.TenantID, "ENTRA_CLIENT_ID=" + info.Apps.Server.ClientID, "ENTRA_CLIENT_SECRET=" + info.Apps.Server.ClientSecret,
		"ENTRA_AUTHORITY_HOST=" + strings.TrimPrefix(info.EmulatorURL, "https://"), "GRAPH_BASE_URL=" + info.GraphURL, "ENTRAMCP_CA_FILE=" + info.CAFile,
		"ENTRAMCP_STORE=" + redisURL, "ENTRAMCP_ENCRYPTION_KEY=" + key, "ENTRAMCP_STATELESS=true", "ENTRAMCP_LOG_FORMAT=text"}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + listen + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd
			}
		}
	}
	t.Fatalf("replica on %s not ready:\n%s", listen, out.String())
	return nil
}

// Two `entramcp serve` processes share Redis behind a load balancer. One is killed (SIGKILL)
// in the middle of a user's sign-in, just before Entra sends the browser back: the other
// finishes the flow from the shared state, serves the tool call and the refresh; the killed
// one, restarted, accepts the tokens the survivor issued.
func TestReplicaKilledMidSignIn(t *testing.T) {
	em, info, _ := startCLI(t, "emulator", "--listen", "127.0.0.1:0")
	defer stopCLI(t, em)
	redis := redistest.Start(t)
	_, key := store.NewRandomKeyring()
	lb := &balancer{}
	front := httptest.NewServer(lb)
	defer front.Close()
	addrA, addrB := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	a := startReplica(t, info, front.URL, addrA, redis.URL, key)
	startReplica(t, info, front.URL, addrB, redis.URL, key)
	var killed atomic.Bool
	lb.mu.Lock()
	lb.backends = []string{addrA, addrB}
	lb.before = func(path string) {
		if path == "/auth/callback" && killed.CompareAndSwap(false, true) {
			a.Process.Signal(syscall.SIGKILL)
			a.Wait()
		}
	}
	lb.mu.Unlock()
	client := proxytest.Register(t, front.URL, "Replica test")
	verifier := strings.Repeat("k", 60)
	q := proxytest.SignIn(t, caClient(t, info.CAFile), front.URL, client, verifier, "alice")
	if !killed.Load() {
		t.Fatal("the sign-in never reached the callback")
	}
	status, tok := proxytest.Token(t, front.URL, client, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}})
	if status != 200 {
		t.Fatalf("code exchange after a replica died: %d %v", status, tok)
	}
	if status := mcpInitialize(t, front.URL+"/mcp", tok["access_token"].(string)); status != 200 {
		t.Fatalf("MCP call on the survivor: %d", status)
	}
	status, next := proxytest.Token(t, front.URL, client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	if status != 200 {
		t.Fatalf("refresh on the survivor: %d %v", status, next)
	}
	startReplica(t, info, front.URL, addrA, redis.URL, key)
	if status := mcpInitialize(t, "http://"+addrA+"/mcp", next["access_token"].(string)); status != 200 {
		t.Fatalf("the restarted replica and the survivor's token: %d", status)
	}
}

// mcpInitialize posts an MCP initialize with token and returns the HTTP status.
func mcpInitialize(t *testing.T, mcpURL, token string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, mcpURL, strings.NewReader(testenv.Initialize))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
