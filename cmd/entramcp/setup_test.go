package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/emutest"
	"github.com/entramcp/entramcp/setup"
)

func adminToken(t *testing.T, em *emulator.Emulator, user string) string {
	return emutest.Token(t, em, url.Values{"grant_type": {"password"}, "client_id": {emulator.AzureCLIAppID}, "username": {user},
		"password": {emutest.PasswordOf(em, user)}, "scope": {"https://graph.microsoft.com/Application.ReadWrite.All https://graph.microsoft.com/DelegatedPermissionGrant.ReadWrite.All"}})["access_token"].(string)
}

func setupRun(t *testing.T, em *emulator.Emulator, token string, extra ...string) (string, int) {
	t.Helper()
	info := em.Info()
	args := append([]string{"setup", "--tenant-id", info.TenantID, "--authority-host", strings.TrimPrefix(info.EmulatorURL, "https://"),
		"--graph-base-url", info.GraphURL, "--ca-file", info.CAFile, "--graph-token", token}, extra...)
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String() + errb.String(), code
}

func readEnv(t *testing.T, path string) map[string]string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("%s mode %v, want 0600", path, st.Mode().Perm())
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

func TestSetupFreshSecondRunAndUpdate(t *testing.T) {
	em := emutest.Start(t, nil)
	admin := adminToken(t, em, "alice")
	dir := t.TempDir()
	envFile := filepath.Join(dir, ".env")
	common := []string{"--name", "Contoso MCP", "--credential", "secret", "--env-file", envFile}

	// A dry run plans and changes nothing.
	out, code := setupRun(t, em, admin, append(common, "--dry-run")...)
	if code != 0 || !strings.Contains(out, "create the app registration Contoso MCP") || !strings.Contains(out, "Dry run") {
		t.Fatalf("dry run: %d\n%s", code, out)
	}
	if _, err := os.Stat(envFile); err == nil {
		t.Fatal("a dry run wrote the .env")
	}
	out, code = setupRun(t, em, admin, common...)
	if code != 0 || !strings.Contains(out, "Done.") {
		t.Fatalf("setup: %d\n%s", code, out)
	}
	env := readEnv(t, envFile)
	if env["ENTRA_CLIENT_ID"] == "" || env["ENTRA_CLIENT_SECRET"] == "" || env["ENTRA_IDENTIFIER_URI"] != "api://"+env["ENTRA_CLIENT_ID"] {
		t.Fatalf(".env: %v", env)
	}
	// The new registration passes doctor: app, scope, v2, SP, pre-authorized, credential, consent.
	var dout, derr bytes.Buffer
	info := em.Info()
	code = run([]string{"doctor", "--tenant-id", info.TenantID, "--client-id", env["ENTRA_CLIENT_ID"], "--client-secret", env["ENTRA_CLIENT_SECRET"],
		"--authority-host", strings.TrimPrefix(info.EmulatorURL, "https://"), "--graph-base-url", info.GraphURL, "--ca-file", info.CAFile, "--graph-token", admin}, &dout, &derr)
	if code != 0 {
		t.Fatalf("doctor after setup: %d\n%s%s", code, dout.String(), derr.String())
	}

	// A second run changes nothing and says so (the secret is kept).
	out, code = setupRun(t, em, admin, common...)
	if code != 0 || !strings.Contains(out, "Nothing to change") {
		t.Fatalf("second run: %d\n%s", code, out)
	}
	// An update: a callback for a deployment.
	out, code = setupRun(t, em, admin, append(common, "--base-url", "https://mcp.contoso.example")...)
	if code != 0 || !strings.Contains(out, "+ web redirect https://mcp.contoso.example/auth/callback") {
		t.Fatalf("update: %d\n%s", code, out)
	}
	if env2 := readEnv(t, envFile); env2["ENTRA_CLIENT_SECRET"] != env["ENTRA_CLIENT_SECRET"] || env2["ENTRAMCP_BASE_URL"] != "https://mcp.contoso.example" {
		t.Fatalf(".env after update: %v", env2)
	}
	// setup redirects adds another callback, once.
	var rout, rerr bytes.Buffer
	args := []string{"setup", "redirects", "--tenant-id", info.TenantID, "--authority-host", strings.TrimPrefix(info.EmulatorURL, "https://"),
		"--graph-base-url", info.GraphURL, "--ca-file", info.CAFile, "--graph-token", admin, "--client-id", env["ENTRA_CLIENT_ID"], "--base-url", "https://staging.contoso.example"}
	if code := run(args, &rout, &rerr); code != 0 || !strings.Contains(rout.String(), "Added") {
		t.Fatalf("redirects: %d %s%s", code, rout.String(), rerr.String())
	}
	rout.Reset()
	if code := run(args, &rout, &rerr); code != 0 || !strings.Contains(rout.String(), "Nothing to change") {
		t.Fatalf("redirects again: %d %s", code, rout.String())
	}
}

func TestSetupCredentialsModelsAndConsent(t *testing.T) {
	em := emutest.Start(t, nil)
	admin := adminToken(t, em, "alice")
	dir := t.TempDir()

	// Certificate: generated next to the .env, uploaded, and usable for OBO's client credentials.
	out, code := setupRun(t, em, admin, "--name", "Cert MCP", "--credential", "certificate", "--env-file", filepath.Join(dir, "cert.env"))
	if code != 0 {
		t.Fatalf("certificate: %d\n%s", code, out)
	}
	env := readEnv(t, filepath.Join(dir, "cert.env"))
	if out, code := setupRun(t, em, admin, "--name", "Cert MCP", "--credential", "certificate", "--env-file", filepath.Join(dir, "cert.env")); code != 0 || !strings.Contains(out, "Nothing to change") {
		t.Fatalf("certificate second run: %d\n%s", code, out)
	}
	var dout bytes.Buffer
	info := em.Info()
	if code := run([]string{"doctor", "--tenant-id", info.TenantID, "--client-id", env["ENTRA_CLIENT_ID"], "--client-certificate", env["ENTRA_CLIENT_CERTIFICATE"],
		"--authority-host", strings.TrimPrefix(info.EmulatorURL, "https://"), "--graph-base-url", info.GraphURL, "--ca-file", info.CAFile, "--graph-token", admin}, &dout, &dout); code != 0 || !strings.Contains(dout.String(), "PASS credential ") {
		t.Fatalf("doctor with the generated certificate: %d\n%s", code, dout.String())
	}

	// Managed identity: a federated credential with the cloud's audience.
	mi := info.ManagedIdentity
	out, code = setupRun(t, em, admin, "--name", "MI MCP", "--credential", "managed-identity", "--mi-principal-id", mi.PrincipalID, "--mi-client-id", mi.ClientID, "--env-file", filepath.Join(dir, "mi.env"))
	if code != 0 || !strings.Contains(out, "audience api://AzureADTokenExchange") {
		t.Fatalf("managed identity: %d\n%s", code, out)
	}
	if out, code = setupRun(t, em, admin, "--name", "MI MCP", "--credential", "managed-identity", "--mi-principal-id", mi.PrincipalID, "--env-file", filepath.Join(dir, "mi.env")); code != 0 || !strings.Contains(out, "Nothing to change") {
		t.Fatalf("managed identity second run: %d\n%s", code, out)
	}

	// Two-app model: a public client app with consent to the API's scope.
	out, code = setupRun(t, em, admin, "--name", "Two MCP", "--model", "two-app", "--env-file", filepath.Join(dir, "two.env"))
	if code != 0 || !strings.Contains(out, "Public client app:") || !strings.Contains(out, "grant the client app mcp-access") {
		t.Fatalf("two-app: %d\n%s", code, out)
	}

	// Consent merge: an existing grant with one scope is extended, not duplicated.
	em.RevokeConsent(emulator.DefaultServerAppID, emulator.GraphAppID, "GroupMember.Read.All ServiceMessage.Read.All")
	out, code = setupRun(t, em, admin, "--client-id", emulator.DefaultServerAppID, "--name", "entramcp server", "--env-file", filepath.Join(dir, "merge.env"))
	if code != 0 || !strings.Contains(out, "+ consent GroupMember.Read.All") {
		t.Fatalf("consent merge: %d\n%s", code, out)
	}
	plan, err := setup.NewPlan(context.Background(), setupOptions(t, em, admin, emulator.DefaultServerAppID))
	if err != nil || len(plan.Steps) != 0 {
		var b bytes.Buffer
		plan.Summary(&b)
		t.Fatalf("after merging, the plan should be empty: %v\n%s", err, b.String())
	}
}

func TestSetupInsufficientPrivileges(t *testing.T) {
	em := emutest.Start(t, nil)
	out, code := setupRun(t, em, adminToken(t, em, "bob"), "--name", "Bob's MCP", "--env-file", filepath.Join(t.TempDir(), ".env"))
	if code != 1 || !strings.Contains(out, "lacks the right") {
		t.Fatalf("bob: %d\n%s", code, out)
	}
}

func setupOptions(t *testing.T, em *emulator.Emulator, token, clientID string) setup.Options {
	t.Helper()
	info := em.Info()
	gc, err := graphClientFor(info.GraphURL, info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	return setup.Options{Graph: gc, Token: token, TenantID: info.TenantID, AuthorityHost: strings.TrimPrefix(info.EmulatorURL, "https://"),
		ClientID: clientID, Name: "entramcp server", Preauthorize: []string{"vscode", "azure-cli"}}
}

// An Application Administrator can register the app but not grant tenant-wide consent for
// Graph: setup says so and gives the admin-consent URL.
func TestSetupConsentNeedsAGlobalAdmin(t *testing.T) {
	em := emutest.Start(t, func(c *emulator.Config) {
		c.Users = append(c.Users, &emulator.User{ID: "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b", Name: "carol", DisplayName: "Carol Example",
			UserPrincipalName: "carol@" + emulator.DefaultTenantDomain, Password: "carol-dev-password", DirectoryRoles: []string{"Application Administrator"}})
	})
	out, code := setupRun(t, em, adminToken(t, em, "carol"), "--name", "Carol MCP", "--env-file", filepath.Join(t.TempDir(), ".env"))
	if code != 1 || !strings.Contains(out, "only a Global Administrator or Privileged Role Administrator") || !strings.Contains(out, "/adminconsent?client_id=") {
		t.Fatalf("carol: %d\n%s", code, out)
	}
}
