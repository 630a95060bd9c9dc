package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/cli"
)

const devSummary = `Runs everything on this machine with embedded defaults: the Entra ID + Microsoft Graph
emulator and, wired to it, the MCP server. State (CA, keys, secrets) lives in --state-dir, so a
restart keeps the CA and tokens valid. When ready it writes STATE-DIR/dev.json (the same contract
as 'entramcp emulator', plus mcp_url) and prints how to connect a client.`

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("dev", "entramcp dev [--listen 127.0.0.1:PORT] [--state-dir DIR] [flags]", devSummary, stderr)
	var f emulatorFlags
	f.register(fs, "emulator-listen")
	if err := cli.Parse(fs, args, false); err != nil {
		return err
	}
	em, err := f.start("emulator-listen", stderr)
	if err != nil {
		return err
	}
	defer em.Close()
	info := em.Info()
	// The banner goes out first: whoever waits for dev.json then finds it printed too.
	path := filepath.Join(filepath.Dir(em.CAFile()), "dev.json")
	printDevBanner(stdout, info, path)
	if err := writeDevJSON(path, info); err != nil {
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "entramcp dev stopping")
	return nil
}

func printDevBanner(w io.Writer, info emulator.Info, devJSON string) {
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
	fmt.Fprintf(&b, "\nGet a user token from a script (password grant, test users only):\n")
	fmt.Fprintf(&b, "  curl --cacert %s -d client_id=%s -d grant_type=password \\\n    -d username=alice -d password=%s \\\n    -d scope='%s/%s' %s/oauth2/v2.0/token\n",
		info.CAFile, info.Apps.Client.ClientID, firstPassword(info), info.Apps.Server.IdentifierURI, firstScope(info), info.Authority)
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
