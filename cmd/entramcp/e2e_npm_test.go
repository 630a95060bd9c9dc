package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entramcp/entramcp/emulator"
)

// requireOrSkip handles a missing outside program: in CI (ENTRAMCP_REQUIRE_ALL=1) a failure,
// elsewhere a skip that says how to install it.
func requireOrSkip(t *testing.T, err error, what, fix string) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("ENTRAMCP_REQUIRE_ALL") == "1" {
		t.Fatalf("%s missing (ENTRAMCP_REQUIRE_ALL=1): %v; %s", what, err, fix)
	}
	t.Skipf("%s missing (%v); %s", what, err, fix)
}

// nodeClient finds node and the e2e/ npm packages; in CI (ENTRAMCP_REQUIRE_ALL=1) their absence
// is a failure, elsewhere a skip that says how to install them.
func nodeClient(t *testing.T) (node, dir string) {
	t.Helper()
	dir, _ = filepath.Abs("../../e2e")
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk"))
	}
	requireOrSkip(t, err, "node or the e2e npm packages", "run (cd e2e && npm ci)")
	return node, dir
}

// runNodeClient runs an e2e/ script against mcpURL as user and decodes the JSON line it prints.
func runNodeClient(t *testing.T, script, mcpURL, caFile, user string, out any, extra ...string) {
	t.Helper()
	node, dir := nodeClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{script, mcpURL, user}, extra...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+caFile)
	stdout, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s: %v\n%s\n%s", script, err, stdout, stderr)
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("%s output: %v\n%s", script, err, stdout)
	}
}

// Chromium (Debian's, driven by playwright-core) as the user's browser for the TypeScript SDK
// client: the real consent page is clicked, the account picked, the code caught; and a page
// that frames the consent page gets nothing to click.
func TestChromiumSignsInThroughTheProxy(t *testing.T) {
	nodeClient(t)
	_, err := exec.LookPath("chromium")
	requireOrSkip(t, err, "chromium", "apt-get install chromium")
	dev, info, _ := startCLI(t, "dev", "--mode", "proxy", "--listen", "127.0.0.1:0")
	defer stopCLI(t, dev)
	var got struct {
		ConsentStatus      int    `json:"consent_status"`
		CSP                string `json:"csp"`
		ConsentNamesClient bool   `json:"consent_names_client"`
		Iss                string `json:"iss"`
		Framed             bool   `json:"framed"`
		OID                string `json:"oid"`
	}
	runNodeClient(t, "chromium.mjs", info.MCPURL, info.CAFile, "alice", &got)
	switch {
	case got.ConsentStatus != 200 || !got.ConsentNamesClient || !strings.Contains(got.CSP, "frame-ancestors 'none'"):
		t.Errorf("consent page in Chromium: %+v", got)
	case got.Framed:
		t.Error("the consent page rendered inside another site's frame (clickjacking)")
	case got.Iss != strings.TrimSuffix(info.MCPURL, "/mcp") || got.OID != info.Users[0].OID:
		t.Errorf("after the browser sign-in: iss %q, oid %q", got.Iss, got.OID)
	}
}

// The official TypeScript MCP SDK client from npm against `entramcp dev --mode proxy`:
// discovery, DCR, PKCE S256 with resource, consent, Entra sign-in, code exchange, tool call,
// and a refresh after its access token is spoiled.
func TestTypeScriptSDKClientThroughTheProxy(t *testing.T) {
	dev, info, _ := startCLI(t, "dev", "--mode", "proxy", "--listen", "127.0.0.1:0")
	defer stopCLI(t, dev)
	var got struct {
		ClientID        string   `json:"client_id"`
		PKCEMethod      string   `json:"pkce_method"`
		Resource        string   `json:"resource"`
		Tools           []string `json:"tools"`
		OID             string   `json:"oid"`
		Refreshed       bool     `json:"refreshed"`
		OIDAfterRefresh string   `json:"oid_after_refresh"`
	}
	runNodeClient(t, "ts-sdk.mjs", info.MCPURL, info.CAFile, "bob", &got)
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

// The TypeScript SDK client once more, identified by a Client ID Metadata Document instead of
// DCR: the proxy fetches the document (dev allows this machine's addresses and trusts the dev
// CA), checks it, and runs the same flow; the document is fetched once for the whole flow.
func TestTypeScriptSDKClientWithMetadataDocument(t *testing.T) {
	dir := t.TempDir()
	dev, info, _ := startCLIIn(t, dir, "dev", "--mode", "proxy", "--listen", "127.0.0.1:0")
	defer stopCLI(t, dev)
	cert, err := emulator.LoopbackCertificate(dir)
	if err != nil {
		t.Fatal(err)
	}
	var fetches atomic.Int32
	docs := httptest.NewUnstartedServer(nil)
	docs.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"client_id": "https://" + r.Host + r.URL.Path, "client_name": "CIMD e2e client",
			"redirect_uris": []string{"http://127.0.0.1:9/cb"}, "grant_types": []string{"authorization_code", "refresh_token"},
			"response_types": []string{"code"}, "token_endpoint_auth_method": "none"})
	})
	docs.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	docs.StartTLS()
	defer docs.Close()
	docURL := docs.URL + "/oauth/client-metadata.json"

	var got struct {
		ClientID        string   `json:"client_id"`
		Tools           []string `json:"tools"`
		OID             string   `json:"oid"`
		Refreshed       bool     `json:"refreshed"`
		OIDAfterRefresh string   `json:"oid_after_refresh"`
	}
	runNodeClient(t, "ts-sdk.mjs", info.MCPURL, info.CAFile, "alice", &got, docURL)
	switch {
	case got.ClientID != docURL:
		t.Errorf("the client_id was %q, want the document URL %q (no DCR)", got.ClientID, docURL)
	case got.OID != info.Users[0].OID || got.OIDAfterRefresh != info.Users[0].OID || !got.Refreshed:
		t.Errorf("whoami as alice: %q, after refresh %q (refreshed %v)", got.OID, got.OIDAfterRefresh, got.Refreshed)
	case fetches.Load() != 1:
		t.Errorf("the document was fetched %d times, want once (cached)", fetches.Load())
	}
}
