package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/cli"
	"github.com/entramcp/entramcp/store"
)

const devSummary = `Runs everything on this machine with embedded defaults: the Entra ID + Microsoft Graph
emulator and, wired to it, the MCP server (verify mode; --mode proxy adds the OAuth proxy). State (CA, keys, secrets) lives in
--state-dir, so a restart keeps the CA and tokens valid. When ready it writes
STATE-DIR/dev.json (the same contract as 'entramcp emulator', plus mcp_url) and prints how to
connect a client. The audit log goes to STATE-DIR/audit.log.`

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("dev", "entramcp dev [--listen 127.0.0.1:PORT] [--state-dir DIR] [flags]", devSummary, stderr)
	var f emulatorFlags
	f.register(fs, "emulator-listen")
	listen := fs.String("listen", "127.0.0.1:8000", "address of the MCP server (port 0 picks a free port); loopback only")
	stateless := fs.Bool("stateless", false, "stateless MCP sessions")
	mode := fs.String("mode", "verify", "verify, or proxy: also the OAuth server (DCR, PKCE, consent) for any MCP client")
	if err := cli.Parse(fs, args, false); err != nil {
		return err
	}
	if err := requireLoopback("listen", *listen); err != nil {
		return err
	}
	em, err := f.start("emulator-listen", stderr)
	if err != nil {
		return err
	}
	defer em.Close()
	info := em.Info()
	stateDir := filepath.Dir(em.CAFile())
	auditFile, err := os.OpenFile(filepath.Join(stateDir, "audit.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer auditFile.Close()

	set := serverSettings(func(string) string { return "" }) // dev ignores the environment: embedded defaults only
	set.Resolve(nil)
	set.Set("ENTRAMCP_LISTEN", *listen)
	set.Set("ENTRA_TENANT_ID", info.TenantID)
	set.Set("ENTRA_CLIENT_ID", info.Apps.Server.ClientID)
	set.Set("ENTRA_CLIENT_SECRET", info.Apps.Server.ClientSecret)
	set.Set("ENTRA_AUTHORITY_HOST", strings.TrimPrefix(info.EmulatorURL, "https://"))
	set.Set("ENTRA_REQUIRED_SCOPES", firstScope(info))
	set.Set("ENTRAMCP_CA_FILE", info.CAFile)
	set.Set("GRAPH_BASE_URL", info.GraphURL)
	set.Set("ENTRAMCP_ADMIN_GROUP_ID", info.AdminGroupID)
	set.Set("ENTRAMCP_LOG_FORMAT", "text")
	set.Set("ENTRAMCP_STATELESS", fmt.Sprint(*stateless))
	set.Set("ENTRAMCP_MODE", *mode)
	// Proxy state (clients, consents, sessions, signing keys) survives a dev restart in the
	// state dir, sealed with a key kept next to it; client metadata documents may be served
	// from this machine.
	key, err := devStoreKey(stateDir)
	if err != nil {
		return err
	}
	set.Set("ENTRAMCP_DATA_DIR", stateDir)
	set.Set("ENTRAMCP_ENCRYPTION_KEY", key)
	set.Set("ENTRAMCP_CIMD_ALLOW_PRIVATE", "true")
	logs := io.Discard
	if f.verbose {
		logs = stderr
	}
	return serveWith(ctx, set, auditFile, logs, func(mcpURL string) {
		info.MCPURL = mcpURL
		path := filepath.Join(stateDir, "dev.json")
		// The banner goes out first: whoever waits for dev.json then finds it printed too.
		printDevBanner(stdout, info, path, *mode)
		if err := writeDevJSON(path, info); err != nil {
			fmt.Fprintln(stderr, "entramcp dev: writing dev.json:", err)
		}
	})
}

// devStoreKey is the dev store's encryption key, generated once into STATE-DIR/store.key (0600).
func devStoreKey(stateDir string) (string, error) {
	path := filepath.Join(stateDir, "store.key")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	_, spec := store.NewRandomKeyring()
	if err := os.WriteFile(path, []byte(spec+"\n"), 0o600); err != nil {
		return "", err
	}
	return spec, nil
}

func printDevBanner(w io.Writer, info emulator.Info, devJSON, mode string) {
	var b strings.Builder
	fmt.Fprintf(&b, "entramcp dev is ready\n\n")
	if info.MCPURL != "" {
		fmt.Fprintf(&b, "  MCP server       %s\n", info.MCPURL)
	}
	fmt.Fprintf(&b, "  Entra emulator   %s  (tenant %s)\n", info.EmulatorURL, info.TenantID)
	fmt.Fprintf(&b, "  Microsoft Graph  %s\n", info.GraphURL)
	fmt.Fprintf(&b, "  CA certificate   %s\n\n", info.CAFile)
	fmt.Fprintf(&b, "Test users (sign in by picking one on the emulator's page):\n")
	for _, u := range info.Users {
		fmt.Fprintf(&b, "  %-6s %-36s password %s\n", u.Name, u.UPN, u.Password)
	}
	fmt.Fprintf(&b, "\nApps: server (MCP API) %s, public client %s\n", info.Apps.Server.ClientID, info.Apps.Client.ClientID)
	scope := info.Apps.Server.IdentifierURI + "/" + firstScope(info)
	fmt.Fprintf(&b, "\nGet a user token from a script (password grant, test users only):\n")
	fmt.Fprintf(&b, "  TOKEN=$(curl -s --cacert %s -d client_id=%s -d grant_type=password \\\n    -d username=alice -d password=%s -d scope='%s openid profile' \\\n    %s/oauth2/v2.0/token | jq -r .access_token)\n",
		info.CAFile, info.Apps.Client.ClientID, firstPassword(info), scope, info.Authority)
	if info.MCPURL != "" {
		fmt.Fprintf(&b, "\nConnect an MCP client to %s with the header 'Authorization: Bearer $TOKEN', e.g.\n", info.MCPURL)
		fmt.Fprintf(&b, "  npx @modelcontextprotocol/inspector --cli %s --transport http \\\n    --header \"Authorization: Bearer $TOKEN\" --method tools/call --tool-name whoami\n", info.MCPURL)
		fmt.Fprintf(&b, "Clients that sign in themselves (VS Code, Azure CLI) use the tenant's authority %s/v2.0.\n", info.Authority)
		if mode == "proxy" {
			fmt.Fprintf(&b, "\nOAuth proxy: any MCP client can connect to %s with no token and no app registration;\n", info.MCPURL)
			fmt.Fprintf(&b, "it registers itself, your browser shows our consent page and then the emulator's sign-in. E.g.\n")
			fmt.Fprintf(&b, "  npx @modelcontextprotocol/inspector --cli %s --method tools/list\n", info.MCPURL)
			fmt.Fprintf(&b, "  entramcp token %s --ca-file %s   (then: entramcp call %s whoami)\n", info.MCPURL, info.CAFile, info.MCPURL)
		}
	}
	fmt.Fprintf(&b, "\nEverything above, for scripts: %s\nPress Ctrl+C to stop.\n", devJSON)
	fmt.Fprint(w, b.String())
}

func firstPassword(info emulator.Info) string {
	if len(info.Users) > 0 {
		return info.Users[0].Password
	}
	return ""
}

func firstScope(info emulator.Info) string {
	if len(info.Apps.Server.Scopes) > 0 {
		return info.Apps.Server.Scopes[0]
	}
	return ".default"
}
