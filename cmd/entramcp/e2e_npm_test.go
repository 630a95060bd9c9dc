package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// nodeClient finds node and the e2e/ npm packages; in CI (ENTRAMCP_REQUIRE_ALL=1) their absence
// is a failure, elsewhere a skip that says how to install them.
func nodeClient(t *testing.T) (node, dir string) {
	t.Helper()
	dir, _ = filepath.Abs("../../e2e")
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk"))
	}
	if err != nil {
		if os.Getenv("ENTRAMCP_REQUIRE_ALL") == "1" {
			t.Fatalf("node or the e2e npm packages are missing (ENTRAMCP_REQUIRE_ALL=1): %v; run (cd e2e && npm ci)", err)
		}
		t.Skipf("node or the e2e npm packages are missing (%v); run (cd e2e && npm ci)", err)
	}
	return node, dir
}

// The official TypeScript MCP SDK client from npm against `entramcp dev --mode proxy`:
// discovery, DCR, PKCE S256 with resource, consent, Entra sign-in, code exchange, tool call,
// and a refresh after its access token is spoiled.
func TestTypeScriptSDKClientThroughTheProxy(t *testing.T) {
	node, dir := nodeClient(t)
	dev, info, _ := startCLI(t, "dev", "--mode", "proxy", "--listen", "127.0.0.1:0")
	defer stopCLI(t, dev)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "ts-sdk.mjs", info.MCPURL, "bob")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+info.CAFile)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("TypeScript SDK client: %v\n%s\n%s", err, out, stderr)
	}
	var got struct {
		ClientID        string   `json:"client_id"`
		PKCEMethod      string   `json:"pkce_method"`
		Resource        string   `json:"resource"`
		Tools           []string `json:"tools"`
		OID             string   `json:"oid"`
		Refreshed       bool     `json:"refreshed"`
		OIDAfterRefresh string   `json:"oid_after_refresh"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client output: %v\n%s", err, out)
	}
	switch {
	case !strings.HasPrefix(got.ClientID, "mcp_"):
		t.Errorf("the client did not register by DCR: %q", got.ClientID)
	case got.PKCEMethod != "S256" || got.Resource != info.MCPURL:
		t.Errorf("authorization request: PKCE %q, resource %q", got.PKCEMethod, got.Resource)
	case !slices.Contains(got.Tools, "whoami") || slices.Contains(got.Tools, "get_service_messages"):
		t.Errorf("bob's tools: %v (no Message Center for non-admins)", got.Tools)
	case got.OID != info.Users[1].OID || got.OIDAfterRefresh != info.Users[1].OID:
		t.Errorf("whoami as bob: %q, after refresh %q", got.OID, got.OIDAfterRefresh)
	case !got.Refreshed:
		t.Error("the SDK did not refresh after a 401")
	}
}
