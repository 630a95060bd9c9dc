package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/internal/cli"
	"github.com/entramcp/entramcp/internal/oauthclient"
)

// azureCLIClientID is the public client `token` signs in with by default: pre-authorized on the
// API by `entramcp setup --preauthorize azure-cli`, and present in every tenant.
const azureCLIClientID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

// signInFlags are the flags token and call share.
type signInFlags struct {
	clientID, scope, authority, caFile, cacheDir, loginHint, redirectHost string
	noBrowser, force                                                      bool
}

func (f *signInFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.clientID, "client-id", "", "public client to sign in with (default: Azure CLI, pre-authorized by setup; with the OAuth proxy, a client registered by DCR)")
	fs.StringVar(&f.scope, "scope", "", "scopes to request (default: the server's advertised scopes, plus offline_access)")
	fs.StringVar(&f.authority, "authority", "", "authorization server issuer, to skip discovery (e.g. https://login.microsoftonline.com/TENANT/v2.0)")
	fs.StringVar(&f.caFile, "ca-file", "", "extra CA certificate to trust (the emulator's .entramcp/ca.pem)")
	fs.StringVar(&f.cacheDir, "cache-dir", "", "token cache directory (default: the user config dir, entramcp/tokens; files are 0600)")
	fs.StringVar(&f.loginHint, "login-hint", "", "user to suggest at sign-in")
	fs.StringVar(&f.redirectHost, "redirect-host", "localhost", "loopback redirect host: localhost (Azure CLI's registration) or 127.0.0.1")
	fs.BoolVar(&f.noBrowser, "no-browser", false, "print the sign-in URL instead of opening a browser")
	fs.BoolVar(&f.force, "force", false, "ignore cached tokens and sign in again")
}

// acquire returns a token for the MCP server at mcpURL (or for --authority and --scope).
func (f *signInFlags) acquire(ctx context.Context, mcpURL string, stderr io.Writer) (*oauthclient.Token, string, error) {
	if f.redirectHost != "127.0.0.1" && f.redirectHost != "localhost" {
		return nil, "", cli.Usagef("--redirect-host must be 127.0.0.1 or localhost")
	}
	httpClient, err := entra.NewHTTPClient(f.caFile)
	if err != nil {
		return nil, "", cli.Usagef("--ca-file: %v", err)
	}
	c := &oauthclient.Client{HTTP: httpClient, CacheDir: f.cacheDir}
	issuer, scopes, resource := f.authority, strings.Fields(f.scope), mcpURL
	if mcpURL != "" && (issuer == "" || len(scopes) == 0) {
		r, err := c.DiscoverResource(ctx, mcpURL)
		if err != nil {
			return nil, "", err
		}
		if issuer == "" {
			issuer = r.AuthorizationServers[0]
		}
		if len(scopes) == 0 {
			scopes = append(r.ScopesSupported, "offline_access")
		}
	}
	if issuer == "" || len(scopes) == 0 {
		return nil, "", cli.Usagef("give an MCP server URL, or --authority and --scope")
	}
	if resource == "" {
		resource = issuer
	}
	as, err := c.DiscoverServer(ctx, issuer)
	if err != nil {
		return nil, "", err
	}
	clientID, proxyResource := f.clientID, ""
	if clientID == "" {
		clientID = azureCLIClientID
		if as.RegistrationEndpoint != "" {
			// The entramcp OAuth proxy (or another MCP authorization server): register as
			// any MCP client would. --force registers afresh.
			if f.force {
				c.Forget(as, f.redirectHost)
			}
			if clientID, err = c.Register(ctx, as, "entramcp CLI", f.redirectHost); err != nil {
				return nil, "", err
			}
			proxyResource = mcpURL
		}
	}
	req := oauthclient.Request{ClientID: clientID, Resource: proxyResource, Scopes: scopes, RedirectHost: f.redirectHost, LoginHint: f.loginHint,
		Open: func(u string) error {
			fmt.Fprintf(stderr, "Sign in at:\n  %s\n", u)
			if !f.noBrowser {
				openBrowser(u)
			}
			return nil
		}}
	if f.force {
		t, err := c.Interactive(ctx, as, req)
		if err != nil {
			return nil, "", err
		}
		return t, "sign-in", c.Save(resource, scopes, t)
	}
	return c.Get(ctx, resource, as, req)
}

func openBrowser(u string) {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	if p, err := exec.LookPath(name); err == nil {
		_ = exec.Command(p, u).Start()
	}
}

const tokenSummary = `Gets a user access token for an MCP server by authorization code + PKCE on a loopback
redirect: it discovers the server's authorization server (directly Entra for verify mode), opens
the browser (or prints the URL), caches tokens per server with mode 0600 and refreshes them. It
prints the token, or its decoded claims with --claims.`

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("token", "entramcp token [MCP_URL] [flags]", tokenSummary, stderr)
	var f signInFlags
	f.register(fs)
	claims := fs.Bool("claims", false, "print the token's decoded claims instead of the token")
	asJSON := fs.Bool("json", false, "print the token, its expiry and where it came from as JSON")
	if err := cli.Parse(fs, reorder(args), true); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return cli.Usagef("token takes at most one MCP server URL")
	}
	t, source, err := f.acquire(ctx, fs.Arg(0), stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "token from %s, expires %s\n", source, t.ExpiresAt.Format(time.RFC3339))
	switch {
	case *claims:
		parts := strings.Split(t.AccessToken, ".")
		if len(parts) != 3 {
			return fmt.Errorf("the access token is not a JWT")
		}
		raw, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			return err
		}
		var out bytes.Buffer
		json.Indent(&out, raw, "", "  ")
		fmt.Fprintln(stdout, out.String())
	case *asJSON:
		json.NewEncoder(stdout).Encode(map[string]any{"access_token": t.AccessToken, "expires_at": t.ExpiresAt, "source": source})
	default:
		fmt.Fprintln(stdout, t.AccessToken)
	}
	return nil
}

// reorder lets flags follow positional arguments (entramcp call URL whoami --json).
func reorder(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") && a != "-" {
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) && !isBoolFlag(a) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	return append(flags, pos...)
}

func isBoolFlag(a string) bool {
	switch strings.TrimLeft(a, "-") {
	case "no-browser", "force", "claims", "json", "h", "help":
		return true
	}
	return false
}

const callSummary = `An MCP client for smoke tests: signs in as 'entramcp token' does, then lists the server's
tools, or calls one with --args (a JSON object), and prints the text result (or the whole
result as JSON with --json). A tool error exits with code 1.`

func runCall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("call", "entramcp call MCP_URL [TOOL] [--args JSON] [flags]", callSummary, stderr)
	var f signInFlags
	f.register(fs)
	argsJSON := fs.String("args", "{}", "tool arguments as a JSON object")
	asJSON := fs.Bool("json", false, "print results as JSON")
	if err := cli.Parse(fs, reorder(args), true); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return cli.Usagef("usage: entramcp call MCP_URL [TOOL] [--args JSON]")
	}
	var toolArgs map[string]any
	if err := json.Unmarshal([]byte(*argsJSON), &toolArgs); err != nil {
		return cli.Usagef("--args must be a JSON object: %v", err)
	}
	t, _, err := f.acquire(ctx, fs.Arg(0), stderr)
	if err != nil {
		return err
	}
	httpClient, _ := entra.NewHTTPClient(f.caFile)
	httpClient.Transport = bearerTransport{token: t.AccessToken, base: httpClient.Transport}
	client := mcp.NewClient(&mcp.Implementation{Name: "entramcp-call", Version: version}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: fs.Arg(0), HTTPClient: httpClient}, nil)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", fs.Arg(0), err)
	}
	defer cs.Close()
	if fs.NArg() == 1 {
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(res.Tools)
		}
		for _, tl := range res.Tools {
			fmt.Fprintf(stdout, "%-24s %s\n", tl.Name, firstLine(tl.Description))
		}
		return nil
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: fs.Arg(1), Arguments: toolArgs})
	if err != nil {
		return err
	}
	if *asJSON {
		json.NewEncoder(stdout).Encode(res)
	} else {
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				fmt.Fprintln(stdout, strings.TrimRight(tc.Text, "\n"))
			}
		}
	}
	if res.IsError {
		return fmt.Errorf("the tool reported an error")
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}

type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}
