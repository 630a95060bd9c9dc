package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/graph"
	"github.com/entramcp/entramcp/internal/cli"
	"github.com/entramcp/entramcp/internal/oauthclient"
	"github.com/entramcp/entramcp/setup"
)

const setupSummary = `Creates or updates the MCP server's app registration over Microsoft Graph, idempotently: the API
app (identifier URI api://{appId}, a delegated scope, v2 tokens, the proxy callback when
--base-url is given, the Graph permissions the tools need), its service principal, admin consent
for those Graph permissions (merged into an existing grant), pre-authorized clients, an optional
public client app (--model two-app) and a credential. It prints the plan first; --dry-run stops
there. A second run changes nothing and says so. It writes the server's settings to --env-file
(mode 0600). 'entramcp setup redirects --client-id ID --base-url URL' only adds a callback.

The admin signs in with the device code flow (Azure CLI's client id), or gives --graph-token.`

type adminFlags struct {
	tenantID, authorityHost, graphURL, caFile, graphToken string
	deviceCode                                            bool
}

func (a *adminFlags) register(fs interface {
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&a.tenantID, "tenant-id", os.Getenv("ENTRA_TENANT_ID"), "tenant GUID (env ENTRA_TENANT_ID)")
	fs.StringVar(&a.authorityHost, "authority-host", envOr("ENTRA_AUTHORITY_HOST", entra.PublicCloud.AuthorityHost), "Entra host (env ENTRA_AUTHORITY_HOST)")
	fs.StringVar(&a.graphURL, "graph-base-url", os.Getenv("GRAPH_BASE_URL"), "Microsoft Graph root (default: the cloud's)")
	fs.StringVar(&a.caFile, "ca-file", os.Getenv("ENTRAMCP_CA_FILE"), "extra CA to trust (the emulator's)")
	fs.StringVar(&a.graphToken, "graph-token", "", "an admin's delegated Graph token (otherwise the device code flow)")
	fs.BoolVar(&a.deviceCode, "device-code", true, "sign the admin in with the device code flow when no --graph-token is given")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// graphSession signs the admin in and returns a Graph client and token.
func (a *adminFlags) graphSession(ctx context.Context, scopes []string, stderr io.Writer) (*graph.Client, string, error) {
	if a.tenantID == "" {
		return nil, "", cli.Usagef("--tenant-id (or ENTRA_TENANT_ID) is required")
	}
	httpClient, err := entra.NewHTTPClient(a.caFile)
	if err != nil {
		return nil, "", cli.Usagef("--ca-file: %v", err)
	}
	cloud := entra.CloudForHost(a.authorityHost)
	base := a.graphURL
	if base == "" {
		base = cloud.GraphURL
	}
	gc, err := graph.New(graph.Options{BaseURL: base, HTTPClient: httpClient, MaxRetries: 2})
	if err != nil {
		return nil, "", cli.Usagef("%v", err)
	}
	token := a.graphToken
	if token == "" {
		if !a.deviceCode {
			return nil, "", cli.Usagef("give --graph-token, or allow --device-code")
		}
		full := make([]string, 0, len(scopes))
		for _, s := range scopes {
			full = append(full, cloud.GraphURL+"/"+s)
		}
		oc := &oauthclient.Client{HTTP: httpClient}
		t, err := oc.DeviceCode(ctx, "https://"+a.authorityHost+"/"+a.tenantID, azureCLIClientID, full, func(m string) { fmt.Fprintln(stderr, m) })
		if err != nil {
			return nil, "", fmt.Errorf("admin sign-in: %w", err)
		}
		token = t.AccessToken
	}
	return gc, token, nil
}

func runSetup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "redirects" {
		return runSetupRedirects(ctx, args[1:], stdout, stderr)
	}
	fs := cli.NewFlagSet("setup", "entramcp setup [flags] | entramcp setup redirects --client-id ID --base-url URL", setupSummary, stderr)
	var a adminFlags
	a.register(fs)
	o := setup.Options{}
	fs.StringVar(&o.Name, "name", "entramcp MCP server", "display name of the app registration (how an existing one is found)")
	fs.StringVar(&o.ClientID, "client-id", "", "update this existing app instead of finding it by name")
	fs.StringVar(&o.Model, "model", "single", "single (one app is API and OBO client) or two-app (plus a public client app)")
	fs.StringVar(&o.Scope, "scope", "mcp-access", "name of the delegated scope")
	fs.BoolVar(&o.MultiTenant, "multi-tenant", false, "let other tenants' users in (AzureADMultipleOrgs)")
	fs.StringVar(&o.BaseURL, "base-url", os.Getenv("ENTRAMCP_BASE_URL"), "public URL of the server, to register {base}/auth/callback (OAuth proxy mode)")
	preauth := fs.String("preauthorize", "vscode,azure-cli", "clients to pre-authorize: vscode, azure-cli or app ids, comma-separated (empty for none)")
	fs.StringVar(&o.Credential, "credential", "", "secret, certificate or managed-identity")
	certFile := fs.String("certificate-file", "", "with --credential certificate: a PEM with certificate and key (default: generate one next to --env-file)")
	fs.StringVar(&o.ManagedIdentityPrincipalID, "mi-principal-id", "", "with --credential managed-identity: the identity's object (principal) id")
	miClientID := fs.String("mi-client-id", "", "with --credential managed-identity: the identity's client id, written to the .env")
	fs.BoolVar(&o.SkipConsent, "skip-consent", false, "do not grant admin consent (someone else will)")
	dryRun := fs.Bool("dry-run", false, "print the plan and change nothing")
	envFile := fs.String("env-file", ".env", "where to write the server's settings (mode 0600)")
	if err := cli.Parse(fs, args, false); err != nil {
		return err
	}
	o.Preauthorize = strings.FieldsFunc(*preauth, func(r rune) bool { return r == ',' || r == ' ' })
	var certPath string
	if o.Credential == "certificate" {
		certPath = *certFile
		if certPath == "" {
			certPath = filepath.Join(filepath.Dir(*envFile), "entramcp-cert.pem")
			if _, err := os.Stat(certPath); err != nil {
				both, _, err := setup.NewCertificate(o.Name)
				if err != nil {
					return err
				}
				if !*dryRun {
					if err := os.WriteFile(certPath, both, 0o600); err != nil {
						return err
					}
					fmt.Fprintf(stderr, "generated %s (certificate and private key, mode 0600)\n", certPath)
				}
				o.CertificatePEM = both
			}
		}
		if o.CertificatePEM == nil {
			data, err := os.ReadFile(certPath)
			if err != nil {
				return cli.Usagef("--certificate-file: %v", err)
			}
			o.CertificatePEM = data
		}
	}
	gc, token, err := a.graphSession(ctx, []string{"Application.ReadWrite.All", "DelegatedPermissionGrant.ReadWrite.All"}, stderr)
	if err != nil {
		return err
	}
	o.Graph, o.Token, o.TenantID, o.AuthorityHost = gc, token, a.tenantID, a.authorityHost
	plan, err := setup.NewPlan(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Plan:")
	plan.Summary(stdout)
	if *dryRun || len(plan.Steps) == 0 {
		if *dryRun {
			fmt.Fprintln(stdout, "Dry run: nothing was changed.")
		}
		return nil
	}
	res, err := plan.Apply(ctx, stdout)
	if err != nil {
		if setup.IsInsufficientPrivileges(err) {
			return fmt.Errorf("%w (the changes above the failed step were made; rerun as an administrator to finish)", err)
		}
		return err
	}
	env := map[string]string{"ENTRA_TENANT_ID": a.tenantID, "ENTRA_CLIENT_ID": res.ClientID, "ENTRA_IDENTIFIER_URI": res.IdentifierURI, "ENTRA_REQUIRED_SCOPES": o.Scope}
	if a.authorityHost != entra.PublicCloud.AuthorityHost {
		env["ENTRA_AUTHORITY_HOST"] = a.authorityHost
	}
	if o.BaseURL != "" {
		env["ENTRAMCP_BASE_URL"] = o.BaseURL
	}
	switch o.Credential {
	case "secret":
		if res.SecretText != "" {
			env["ENTRA_CLIENT_SECRET"] = res.SecretText
			fmt.Fprintf(stdout, "A new client secret was written to %s (it is shown nowhere else).\n", *envFile)
		}
	case "certificate":
		abs, _ := filepath.Abs(certPath)
		env["ENTRA_CLIENT_CERTIFICATE"] = abs
	case "managed-identity":
		env["ENTRA_MANAGED_IDENTITY_CLIENT_ID"] = *miClientID
	}
	if err := setup.WriteEnv(*envFile, env); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Done. App %s; settings in %s.\n", res.ClientID, *envFile)
	if res.PublicClientID != "" {
		fmt.Fprintf(stdout, "Public client app: %s\n", res.PublicClientID)
	}
	return nil
}

func runSetupRedirects(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("setup redirects", "entramcp setup redirects --client-id ID --base-url URL", "Adds {base URL}/auth/callback to the app's web redirect URIs (set union).", stderr)
	var a adminFlags
	a.register(fs)
	clientID := fs.String("client-id", os.Getenv("ENTRA_CLIENT_ID"), "the app's client id (env ENTRA_CLIENT_ID)")
	baseURL := fs.String("base-url", "", "the deployed server's public URL")
	if err := cli.Parse(fs, args, false); err != nil {
		return err
	}
	if *clientID == "" || !strings.HasPrefix(*baseURL, "https://") && !strings.HasPrefix(*baseURL, "http://127.0.0.1") && !strings.HasPrefix(*baseURL, "http://localhost") {
		return cli.Usagef("--client-id and an https --base-url are required")
	}
	gc, token, err := a.graphSession(ctx, []string{"Application.ReadWrite.All"}, stderr)
	if err != nil {
		return err
	}
	uri := strings.TrimSuffix(*baseURL, "/") + "/auth/callback"
	changed, err := setup.AddRedirect(ctx, gc, token, *clientID, uri)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(stdout, "Added %s.\n", uri)
	} else {
		fmt.Fprintf(stdout, "Nothing to change: %s is already registered.\n", uri)
	}
	return nil
}

// graphClientFor is a Graph client trusting caFile (tests and tools).
func graphClientFor(base, caFile string) (*graph.Client, error) {
	hc, err := entra.NewHTTPClient(caFile)
	if err != nil {
		return nil, err
	}
	return graph.New(graph.Options{BaseURL: base, HTTPClient: hc})
}
