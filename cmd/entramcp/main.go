// Command entramcp puts Microsoft Entra ID in front of MCP servers. Run `entramcp help` for the
// subcommands; `entramcp dev` runs everything locally against the built-in Entra emulator.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/entramcp/entramcp/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "devel"

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the MCP server (and, by default, its OAuth proxy in front of Entra)", runServe},
		{"dev", "run the Entra emulator and the MCP server wired together, for local development", runDev},
		{"emulator", "run only the local Entra ID + Microsoft Graph emulator", runEmulator},
		{"setup", "create or update the app registration, consent and credential (idempotent)", runSetup},
		{"doctor", "check a configuration against the tenant, with a fix for each problem", runDoctor},
		{"token", "get a user access token for an MCP server (authorization code + PKCE)", runToken},
		{"call", "list an MCP server's tools or call one, as the signed-in user", runCall},
		{"version", "print the version", runVersion},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		usage(stdout)
		if len(args) == 0 {
			return cli.ExitUsage
		}
		return cli.ExitOK
	}
	if args[0] == "--version" {
		args[0] = "version"
	}
	for _, c := range commands() {
		if c.name == args[0] {
			ctx, cancel := cli.SignalContext()
			defer cancel()
			err := c.run(ctx, args[1:], stdout, stderr)
			code := cli.ExitCode(err)
			if err != nil && code != cli.ExitOK {
				fmt.Fprintf(stderr, "entramcp %s: %v\n", c.name, err)
			}
			return code
		}
	}
	fmt.Fprintf(stderr, "entramcp: unknown command %q\n\n", args[0])
	usage(stderr)
	return cli.ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "entramcp puts Microsoft Entra ID in front of MCP servers.")
	fmt.Fprintln(w, "\nUsage: entramcp <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'entramcp <command> --help' for a command's flags.")
	fmt.Fprintln(w, "Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.")
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("version", "entramcp version", "Prints the entramcp version, the Go version and the module revision.", stderr)
	if err := cli.Parse(fs, args, false); err != nil {
		return err
	}
	rev := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = " " + s.Value
			}
		}
	}
	fmt.Fprintf(stdout, "entramcp %s%s (%s %s/%s)\n", version, rev, strings.TrimPrefix(runtime.Version(), ""), runtime.GOOS, runtime.GOARCH)
	return nil
}
