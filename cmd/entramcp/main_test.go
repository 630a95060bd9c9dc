package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/proxytest"
)

var binary string

// TestMain builds the real binary once: the CLI contract (flags, dev.json, signals, exit codes)
// is what scripts rely on, so it is tested from the outside.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "entramcp-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "entramcp")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func TestExitCodesAndHelp(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"version"}, 0, "entramcp "},
		{[]string{"help"}, 0, "Commands:"},
		{[]string{}, 2, "Commands:"},
		{[]string{"bogus"}, 2, "unknown command"},
		{[]string{"emulator", "--help"}, 0, "dev.json"},
		{[]string{"dev", "--help"}, 0, "--state-dir"},
		{[]string{"emulator", "--no-such-flag"}, 2, "no-such-flag"},
		{[]string{"emulator", "--listen", "0.0.0.0:0"}, 2, "loopback only"},
		{[]string{"emulator", "--config", "/nonexistent.json"}, 2, "--config"},
		{[]string{"emulator", "extra-arg"}, 2, "unexpected argument"},
	}
	for _, c := range cases {
		out, errOut, code := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("entramcp %v: exit %d, output %q; want exit %d containing %q", c.args, code, out+errOut, c.code, c.want)
		}
	}
	out, _, code := runCLI(t, "emulator", "--print-config")
	var cfg emulator.Config
	if code != 0 || json.Unmarshal([]byte(out), &cfg) != nil || len(cfg.Users) != 2 {
		t.Errorf("--print-config: exit %d, %.200s", code, out)
	}
}

// startCLI runs a long-lived subcommand and waits for its dev.json.
func startCLI(t *testing.T, args ...string) (*exec.Cmd, emulator.Info, *syncBuffer) {
	t.Helper()
	return startCLIIn(t, t.TempDir(), args...)
}

// startCLIIn is startCLI with a given state dir (for restarts); a stale dev.json is removed.
func startCLIIn(t *testing.T, dir string, args ...string) (*exec.Cmd, emulator.Info, *syncBuffer) {
	t.Helper()
	os.Remove(filepath.Join(dir, "dev.json"))
	out := &syncBuffer{}
	cmd := exec.Command(binary, append(args, "--state-dir", dir)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	path := filepath.Join(dir, "dev.json")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var info emulator.Info
		if err := json.Unmarshal(data, &info); err != nil {
			t.Fatalf("dev.json is not valid JSON when it appears: %v", err)
		}
		st, _ := os.Stat(path)
		if st.Mode().Perm() != 0o600 {
			t.Errorf("dev.json mode %v, want 0600 (it holds dev secrets)", st.Mode().Perm())
		}
		return cmd, info, out
	}
	t.Fatalf("no dev.json after 30s; output:\n%s", out.String())
	return nil, emulator.Info{}, nil
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func caClient(t *testing.T, caFile string) *http.Client {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca_file holds no certificate")
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func stopCLI(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after SIGTERM: %v, want a clean exit 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit within 10s of SIGTERM")
	}
}

func TestEmulatorCommandContract(t *testing.T) {
	cmd, info, _ := startCLI(t, "emulator", "--listen", "127.0.0.1:0")
	if info.TenantID == "" || info.Authority == "" || info.GraphURL == "" || info.Apps.Server.ClientID == "" ||
		info.Apps.Server.ClientSecret == "" || info.Apps.Client.ClientID == "" || len(info.Users) != 2 || info.Users[0].Name != "alice" || info.Users[1].Name != "bob" {
		t.Fatalf("dev.json: %+v", info)
	}
	resp, err := caClient(t, info.CAFile).Get(info.Authority + "/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatalf("discovery with ca_file: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("discovery: %d", resp.StatusCode)
	}
	stopCLI(t, cmd)
}

func TestDevCommand(t *testing.T) {
	cmd, info, out := startCLI(t, "dev")
	text := out.String()
	for _, want := range []string{info.EmulatorURL, info.CAFile, "alice", "bob", "dev.json"} {
		if !strings.Contains(text, want) {
			t.Errorf("dev banner lacks %q:\n%s", want, text)
		}
	}
	stopCLI(t, cmd)
}

func TestServeConfigurationErrors(t *testing.T) {
	cases := []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--tenant-id", "6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34"}, "ENTRA_CLIENT_ID (--client-id)"},
		{[]string{"ENTRA_CLIENT_ID=3f1c9a52-7e04-4c1b-8a6d-5b2e9f0d4c71", "ENTRA_TENANT_ID=common"}, nil, "ENTRA_TENANT_ID=common is not supported"},
		{[]string{"AZURE_CLIENT_ID=not-a-guid", "AZURE_TENANT_ID=6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34"}, nil, "ENTRA_CLIENT_ID"},
		{[]string{"ENTRA_CLIENT_ID=3f1c9a52-7e04-4c1b-8a6d-5b2e9f0d4c71", "ENTRA_TENANT_ID=6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34", "ENTRAMCP_STATELESS=maybe"}, nil, "ENTRAMCP_STATELESS (--stateless)"},
		{[]string{"ENTRA_CLIENT_ID=3f1c9a52-7e04-4c1b-8a6d-5b2e9f0d4c71", "ENTRA_TENANT_ID=6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34"}, []string{"--listen", "0.0.0.0:0"}, "ENTRAMCP_BASE_URL (--base-url)"},
		{[]string{"ENTRA_CLIENT_ID=3f1c9a52-7e04-4c1b-8a6d-5b2e9f0d4c71", "ENTRA_TENANT_ID=6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34"}, []string{"--base-url", "http://mcp.contoso.com"}, "clear text"},
		{[]string{"ENTRA_CLIENT_ID=3f1c9a52-7e04-4c1b-8a6d-5b2e9f0d4c71", "ENTRA_TENANT_ID=6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34", "ENTRAMCP_MODE=proxy"}, nil, "ENTRAMCP_MODE"},
		{[]string{"ENTRA_CLIENT_ID=3f1c9a52-7e04-4c1b-8a6d-5b2e9f0d4c71", "ENTRA_TENANT_ID=6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34"}, nil, "ENTRAMCP_MODE=verify"}, // proxy is the default and needs a credential
		{[]string{"ENTRA_CLIENT_ID=3f1c9a52-7e04-4c1b-8a6d-5b2e9f0d4c71", "ENTRA_TENANT_ID=6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34", "ENTRAMCP_MODE=gateway"}, nil, "must be verify or proxy"},
		// Proxy mode's embedded store holds refresh tokens: no key, no start; a weak key neither.
		{[]string{"ENTRA_CLIENT_ID=3f1c9a52-7e04-4c1b-8a6d-5b2e9f0d4c71", "ENTRA_TENANT_ID=6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34", "ENTRA_CLIENT_SECRET=s3cr3t-value", "ENTRAMCP_DATA_DIR=" + t.TempDir()}, nil, "ENTRAMCP_ENCRYPTION_KEY: is required"},
		{[]string{"ENTRA_CLIENT_ID=3f1c9a52-7e04-4c1b-8a6d-5b2e9f0d4c71", "ENTRA_TENANT_ID=6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34", "ENTRA_CLIENT_SECRET=s3cr3t-value", "ENTRAMCP_DATA_DIR=" + t.TempDir(), "ENTRAMCP_ENCRYPTION_KEY=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}, nil, "does not look random"},
		{[]string{"ENTRA_CLIENT_ID=3f1c9a52-7e04-4c1b-8a6d-5b2e9f0d4c71", "ENTRA_TENANT_ID=6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34", "ENTRAMCP_CIMD_ALLOW_PRIVATE=sometimes"}, nil, "ENTRAMCP_CIMD_ALLOW_PRIVATE"},
		{[]string{"ENTRA_CLIENT_ID=3f1c9a52-7e04-4c1b-8a6d-5b2e9f0d4c71", "ENTRA_TENANT_ID=6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34", "ENTRAMCP_ACCESS_TOKEN_LIFETIME=1m"}, nil, "must be between 5m and 24h"},
		{[]string{"ENTRA_CLIENT_ID=3f1c9a52-7e04-4c1b-8a6d-5b2e9f0d4c71", "ENTRA_TENANT_ID=6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34", "ENTRAMCP_CA_FILE=/nonexistent.pem"}, nil, "ENTRAMCP_CA_FILE"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		cmd := exec.Command(binary, append([]string{"serve", "--listen", "127.0.0.1:0"}, c.args...)...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, c.env...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v %v: %v, want exit code 2\n%s", c.env, c.args, err, errb.String())
			continue
		}
		lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
		if last := lines[len(lines)-1]; !strings.Contains(last, c.want) {
			t.Errorf("%v %v: last line %q does not name %q", c.env, c.args, last, c.want)
		}
	}
}

func TestDevServesMCPAndRedactsSecrets(t *testing.T) {
	cmd, info, out := startCLI(t, "dev", "--listen", "127.0.0.1:0", "--verbose")
	if info.MCPURL == "" || !strings.HasSuffix(info.MCPURL, "/mcp") {
		t.Fatalf("dev.json lacks mcp_url: %+v", info)
	}
	resp, err := http.Post(info.MCPURL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata") {
		t.Fatalf("MCP endpoint without a token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	text := out.String()
	if !strings.Contains(text, "ENTRA_CLIENT_SECRET") || !strings.Contains(text, "<redacted>") || strings.Contains(text, info.Apps.Server.ClientSecret) {
		t.Fatalf("effective configuration must show ENTRA_CLIENT_SECRET redacted:\n%s", text)
	}
	stopCLI(t, cmd)
}

// The whole path through the real binary: `entramcp dev`, a user token from the emulator, and
// the go-sdk client. alice (admin group, Message Center reader) sees and calls the Message
// Center tools; bob does not see them.
func TestDevGraphToolsWithARealClient(t *testing.T) {
	cmd, info, _ := startCLI(t, "dev", "--listen", "127.0.0.1:0")
	defer stopCLI(t, cmd)
	ca := caClient(t, info.CAFile)
	token := func(user, pw string) string {
		resp, err := ca.PostForm(info.Authority+"/oauth2/v2.0/token", url.Values{"grant_type": {"password"}, "client_id": {info.Apps.Client.ClientID},
			"username": {user}, "password": {pw}, "scope": {info.Apps.Server.IdentifierURI + "/mcp-access openid profile"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b struct {
			AccessToken string `json:"access_token"`
		}
		json.NewDecoder(resp.Body).Decode(&b)
		return b.AccessToken
	}
	session := func(tok string) *mcp.ClientSession {
		c := mcp.NewClient(&mcp.Implementation{Name: "cli-test", Version: "1"}, nil)
		cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: info.MCPURL,
			HTTPClient: &http.Client{Transport: authHeader{"Bearer " + tok}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cs.Close() })
		return cs
	}
	alice := session(token("alice", info.Users[0].Password))
	res, err := alice.CallTool(context.Background(), &mcp.CallToolParams{Name: "get_service_messages", Arguments: map[string]any{"top": 3, "major_only": true}})
	if err != nil || res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "admin.microsoft.com") {
		t.Fatalf("alice get_service_messages: %v %+v", err, res)
	}
	bob := session(token("bob", info.Users[1].Password))
	tools, err := bob.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range tools.Tools {
		if tl.Name == "get_service_messages" || tl.Name == "get_message" {
			t.Fatalf("bob sees %s", tl.Name)
		}
	}
	res, err = bob.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami"})
	if err != nil || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "Bob Example") {
		t.Fatalf("bob whoami: %v %+v", err, res)
	}

	// Faults through the emulator's HTTP test controls, as a script would drive them.
	control := func(path, body string) {
		resp, err := ca.Post(info.EmulatorURL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	text := func(cs *mcp.ClientSession, tool string) string {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool})
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		return res.Content[0].(*mcp.TextContent).Text
	}
	// Consent missing: a fresh token (new assertion, so no cached exchange) meets the revoked grant.
	control("/_emulator/consents", `{"client":"`+info.Apps.Server.ClientID+`","resource":"00000003-0000-0000-c000-000000000000","revoke":true}`)
	if got := text(session(token("bob", info.Users[1].Password)), "list_my_groups"); !strings.Contains(got, "adminconsent") {
		t.Fatalf("consent missing: %s", got)
	}
	control("/_emulator/consents", `{"client":"`+info.Apps.Server.ClientID+`","resource":"00000003-0000-0000-c000-000000000000","scope":"User.Read GroupMember.Read.All ServiceMessage.Read.All"}`)
	// Graph throttling beyond the retry budget: a retryable error that says how long to wait.
	control("/_emulator/faults", `{"target":"graph","throttle_next":10,"retry_after":"30"}`)
	if got := text(bob, "list_my_groups"); !strings.Contains(got, "retryable") {
		t.Fatalf("throttled: %s", got)
	}
	resp, _ := ca.Do(mustRequest(t, http.MethodDelete, info.EmulatorURL+"/_emulator/faults"))
	resp.Body.Close()
	// MFA required by a policy: the client gets HTTP 401 (insufficient_claims).
	beforePolicy := session(token("alice", info.Users[0].Password))
	control("/_emulator/policies", `{"user":"alice","resource":"00000003-0000-0000-c000-000000000000"}`)
	if _, err := beforePolicy.CallTool(context.Background(), &mcp.CallToolParams{Name: "list_my_groups"}); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Fatalf("MFA required: %v, want an HTTP 401", err)
	}
	resp, _ = ca.Do(mustRequest(t, http.MethodDelete, info.EmulatorURL+"/_emulator/policies"))
	resp.Body.Close()
	// Entra down (503 for two seconds): a fresh token's exchange fails as retryable.
	fresh := session(token("bob", info.Users[1].Password))
	control("/_emulator/faults", `{"target":"login","outage":"503","duration":"2s"}`)
	if got := text(fresh, "list_my_groups"); !strings.Contains(got, "retryable") {
		t.Fatalf("Entra down: %s", got)
	}
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	r, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type authHeader struct{ v string }

func (a authHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", a.v)
	return http.DefaultTransport.RoundTrip(r)
}

// token and call, end to end: sign in through the printed URL (the emulator's auto-approve
// stands in for the person), the token cache, refresh, and tool calls.
// startSignIn starts the CLI with args and waits for the sign-in URL it prints (--no-browser).
func startSignIn(t *testing.T, args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var authURL string
	for deadline := time.Now().Add(20 * time.Second); authURL == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, rest, ok := strings.Cut(stderr.String(), "Sign in at:\n  "); ok && strings.Contains(rest, "\n") {
			authURL = rest[:strings.Index(rest, "\n")]
		}
	}
	if authURL == "" {
		cmd.Process.Kill()
		t.Fatalf("no sign-in URL printed:\n%s", stderr.String())
	}
	return cmd, stdout, stderr, authURL
}

func TestTokenAndCall(t *testing.T) {
	dev, info, _ := startCLI(t, "dev", "--listen", "127.0.0.1:0", "--auto-approve")
	defer stopCLI(t, dev)
	cache := t.TempDir()
	common := []string{"--ca-file", info.CAFile, "--cache-dir", cache, "--no-browser", "--login-hint", "alice"}
	browser := caClient(t, info.CAFile)

	// First run: the CLI prints the URL and waits; the "browser" follows it to the loopback.
	cmd, stdout, stderr, authURL := startSignIn(t, append([]string{"token", info.MCPURL, "--claims"}, common...)...)
	resp, err := browser.Get(authURL)
	if err != nil {
		t.Fatalf("following the sign-in URL: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "Signed in") {
		t.Fatalf("loopback page: %s", page)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("token: %v\n%s", err, stderr.String())
	}
	var claims map[string]any
	if err := json.Unmarshal([]byte(stdout.String()), &claims); err != nil || claims["oid"] != info.Users[0].OID || claims["azp"] != "04b07795-8ddb-461a-bbee-02f9e1bf7b46" {
		t.Fatalf("claims: %v %s", err, stdout.String())
	}
	files, _ := filepath.Glob(filepath.Join(cache, "*.json"))
	if len(files) != 1 {
		t.Fatalf("cache files: %v", files)
	}
	if st, _ := os.Stat(files[0]); st.Mode().Perm() != 0o600 {
		t.Fatalf("cache file mode %v", st.Mode().Perm())
	}

	// Second run: from the cache, no sign-in.
	out, errOut, code := runCLI(t, append([]string{"token", info.MCPURL}, common...)...)
	if code != 0 || !strings.Contains(errOut, "token from cache") || strings.Contains(errOut, "Sign in at") || strings.Count(out, ".") != 2 {
		t.Fatalf("cached token: exit %d\n%s", code, errOut)
	}
	// An expired cache entry is refreshed, not signed in again.
	data, _ := os.ReadFile(files[0])
	var entry map[string]any
	json.Unmarshal(data, &entry)
	entry["expires_at"] = time.Now().Add(-time.Minute).Format(time.RFC3339)
	data, _ = json.Marshal(entry)
	os.WriteFile(files[0], data, 0o600)
	if _, errOut, code = runCLI(t, append([]string{"token", info.MCPURL}, common...)...); code != 0 || !strings.Contains(errOut, "token from refresh") {
		t.Fatalf("refresh: exit %d\n%s", code, errOut)
	}

	// call: list tools, call one with arguments, and a tool error exits 1.
	out, errOut, code = runCLI(t, append([]string{"call", info.MCPURL}, common...)...)
	if code != 0 || !strings.Contains(out, "whoami") || !strings.Contains(out, "get_service_messages") {
		t.Fatalf("call (list): exit %d\n%s\n%s", code, out, errOut)
	}
	out, _, code = runCLI(t, append([]string{"call", info.MCPURL, "get_message", "--args", `{"id":"MC172851"}`}, common...)...)
	if code != 0 || !strings.Contains(out, "MC172851") {
		t.Fatalf("call get_message: exit %d\n%s", code, out)
	}
	if _, _, code = runCLI(t, append([]string{"call", info.MCPURL, "get_message", "--args", `{"id":"nope"}`}, common...)...); code != 1 {
		t.Fatalf("tool error: exit %d, want 1", code)
	}
	if _, errOut, code = runCLI(t, append([]string{"call", info.MCPURL, "whoami", "--args", `[1]`}, common...)...); code != 2 {
		t.Fatalf("bad --args: exit %d, want 2: %s", code, errOut)
	}
}

// `entramcp dev --mode proxy`: an MCP client with no Entra registration registers with the
// proxy, the user signs in through it, and the tool runs as that user (Graph via OBO).
func TestDevProxyMode(t *testing.T) {
	cmd, info, out := startCLI(t, "dev", "--mode", "proxy", "--listen", "127.0.0.1:0")
	defer stopCLI(t, cmd)
	if banner := out.String(); !strings.Contains(banner, "OAuth proxy: any MCP client can connect to "+info.MCPURL) {
		t.Errorf("the banner does not say how to use the proxy:\n%s", banner)
	}
	base := strings.TrimSuffix(info.MCPURL, "/mcp")
	token := proxytest.AccessToken(t, caClient(t, info.CAFile), base, "bob")
	c := mcp.NewClient(&mcp.Implementation{Name: "cli-test", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: info.MCPURL,
		HTTPClient: &http.Client{Transport: authHeader{"Bearer " + token}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami"})
	if err != nil || res.IsError {
		t.Fatalf("whoami: %v %+v", err, res)
	}
	b, _ := json.Marshal(res.StructuredContent)
	if !strings.Contains(string(b), info.Users[1].OID) || !strings.Contains(string(b), `"profile"`) {
		t.Fatalf("whoami through the proxy: %s", b)
	}
}

// The embedded default store (bbolt in the state dir, sealed): a dev restart keeps the client's
// registration, the user's grant and the signing key, so the old access token still works and
// the refresh token still refreshes; the database file holds neither token.
func TestDevProxyStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd, info, _ := startCLIIn(t, dir, "dev", "--mode", "proxy", "--listen", listen)
	base := strings.TrimSuffix(info.MCPURL, "/mcp")
	client := proxytest.Register(t, base, "Restart test")
	verifier := strings.Repeat("r", 50)
	q := proxytest.SignIn(t, caClient(t, info.CAFile), base, client, verifier, "alice")
	status, tok := proxytest.Token(t, base, client, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}})
	at, _ := tok["access_token"].(string)
	rt, _ := tok["refresh_token"].(string)
	if status != 200 || at == "" || rt == "" {
		t.Fatalf("code exchange: %d %v", status, tok)
	}
	stopCLI(t, cmd)

	db, err := os.ReadFile(filepath.Join(dir, "entramcp.db"))
	if err != nil {
		t.Fatalf("the embedded store: %v", err)
	}
	for name, secret := range map[string]string{"access token": at, "refresh token": rt, "its signature": at[strings.LastIndex(at, ".")+1:]} {
		if bytes.Contains(db, []byte(secret)) {
			t.Errorf("the store file holds the %s in clear", name)
		}
	}

	cmd, _, _ = startCLIIn(t, dir, "dev", "--mode", "proxy", "--listen", listen)
	defer stopCLI(t, cmd)
	if status := mcpInitialize(t, info.MCPURL, at); status != 200 {
		t.Errorf("the access token issued before the restart: %d", status)
	}
	status, tok = proxytest.Token(t, base, client, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	if status != 200 || tok["refresh_token"] == rt {
		t.Errorf("refresh after the restart: %d %v", status, tok)
	}
}

// token and call against `dev --mode proxy`: the CLI finds the proxy by discovery, registers by
// DCR (once; the registration is cached), passes our consent page, and gets the proxy's token;
// call then uses it from the cache.
func TestTokenAndCallThroughTheProxy(t *testing.T) {
	dev, info, _ := startCLI(t, "dev", "--mode", "proxy", "--listen", "127.0.0.1:0", "--auto-approve")
	defer stopCLI(t, dev)
	base := strings.TrimSuffix(info.MCPURL, "/mcp")
	cache := t.TempDir()
	common := []string{"--ca-file", info.CAFile, "--cache-dir", cache, "--no-browser", "--login-hint", "bob"}
	signIn := func(args ...string) string {
		cmd, stdout, stderr, authURL := startSignIn(t, append(args, common...)...)
		if !strings.HasPrefix(authURL, base+"/authorize?") || !strings.Contains(authURL, "resource=") {
			cmd.Process.Kill()
			t.Fatalf("sign-in URL must be the proxy's, with resource: %q\n%s", authURL, stderr.String())
		}
		jar, _ := cookiejar.New(nil)
		browser := caClient(t, info.CAFile)
		browser.Jar = jar
		resp, err := browser.Get(authURL)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if _, done := proxytest.Approve(t, browser, base, page); !strings.Contains(string(done), "Signed in") {
			t.Fatalf("after consent and Entra sign-in: %s", done)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr.String())
		}
		return stdout.String()
	}
	var claims map[string]any
	if out := signIn("token", info.MCPURL, "--claims"); json.Unmarshal([]byte(out), &claims) != nil || claims["iss"] != base || claims["oid"] != info.Users[1].OID {
		t.Fatalf("proxy token claims: %s", out)
	}
	regs, _ := filepath.Glob(filepath.Join(cache, "*.json"))
	if len(regs) != 2 { // the registration and the token set
		t.Fatalf("cache files: %v", regs)
	}
	out, errOut, code := runCLI(t, append([]string{"call", info.MCPURL, "whoami"}, common...)...)
	if code != 0 || !strings.Contains(out, "Bob") || strings.Contains(errOut, "Sign in at") {
		t.Fatalf("call whoami through the proxy: exit %d\n%s\n%s", code, out, errOut)
	}
	// --force signs in again with a fresh registration.
	signIn("token", info.MCPURL, "--force")
	if after, _ := filepath.Glob(filepath.Join(cache, "*.json")); len(after) != 3 {
		t.Fatalf("--force must register afresh (a new client id, so a new token entry): %v", after)
	}
}
