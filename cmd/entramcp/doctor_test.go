package main

import (
	"bytes"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/emutest"
)

// doctorRun runs doctor in-process against an emulator and returns its output and exit code.
func doctorRun(t *testing.T, em *emulator.Emulator, extra ...string) (string, int) {
	t.Helper()
	info := em.Info()
	admin := emutest.Token(t, em, url.Values{"grant_type": {"password"}, "client_id": {emulator.AzureCLIAppID}, "username": {"alice"},
		"password": {emutest.PasswordOf(em, "alice")}, "scope": {"https://graph.microsoft.com/Application.Read.All https://graph.microsoft.com/DelegatedPermissionGrant.ReadWrite.All"}})["access_token"].(string)
	args := []string{"doctor", "--tenant-id", info.TenantID, "--client-id", info.Apps.Server.ClientID, "--client-secret", info.Apps.Server.ClientSecret,
		"--authority-host", strings.TrimPrefix(info.EmulatorURL, "https://"), "--graph-base-url", info.GraphURL, "--ca-file", info.CAFile,
		"--graph-token", admin}
	// A user token when the (possibly broken) registration still issues one.
	status, body := emutest.Post(t, em, url.Values{"grant_type": {"password"}, "client_id": {info.Apps.Client.ClientID}, "username": {"alice"},
		"password": {emutest.PasswordOf(em, "alice")}, "scope": {"api://" + emulator.DefaultServerAppID + "/mcp-access"}})
	if status == 200 {
		args = append(args, "--user-token", body["access_token"].(string))
	}
	var out, errb bytes.Buffer
	code := run(append(args, extra...), &out, &errb)
	return out.String() + errb.String(), code
}

func TestDoctorHealthyTenant(t *testing.T) {
	em := emutest.Start(t, nil)
	out, code := doctorRun(t, em)
	if code != 0 || strings.Contains(out, "FAIL") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{"PASS discovery", "PASS app registration", "PASS identifier URI", "PASS scope", "PASS token version",
		"PASS service principal", "PASS pre-authorized", "PASS credential ", "PASS admin consent", "PASS on-behalf-of"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q:\n%s", want, out)
		}
	}
}

// One test per check: break one setting, and doctor names it with a fix and exits 1.
func TestDoctorFindsEachProblem(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*emulator.Config)
		before func(*emulator.Emulator)
		extra  []string
		want   string
	}{
		{name: "discovery", extra: []string{"--tenant-id", "11111111-2222-4333-8444-555555555555"}, want: "FAIL discovery"},
		{name: "app missing", extra: []string{"--client-id", "22222222-3333-4444-8555-666666666666"}, want: "FAIL app registration"},
		{name: "identifier URI", mutate: func(c *emulator.Config) { c.Applications[0].IdentifierURIs = []string{} }, want: "FAIL identifier URI"},
		{name: "scope disabled", mutate: func(c *emulator.Config) { c.Applications[0].API.OAuth2PermissionScopes[0].IsEnabled = false }, want: "FAIL scope"},
		{name: "v1 tokens", mutate: func(c *emulator.Config) { c.Applications[0].API.RequestedAccessTokenVersion = nil }, want: "FAIL token version"},
		{name: "no service principal", mutate: func(c *emulator.Config) {
			c.Applications[0].NoServicePrincipal = true
			c.Consents = c.Consents[2:] // the server app's consents need its service principal
		}, want: "FAIL service principal"},
		{name: "callback redirect", extra: []string{"--base-url", "https://mcp.contoso.example"}, want: "FAIL redirect URI"},
		{name: "pre-authorization", mutate: func(c *emulator.Config) { c.Applications[0].API.PreAuthorizedApplications = nil }, want: "FAIL pre-authorized"},
		{name: "wrong secret", extra: []string{"--client-secret", "not-the-secret"}, want: "FAIL credential"},
		{name: "consent missing", before: func(em *emulator.Emulator) {
			em.RevokeConsent(emulator.DefaultServerAppID, emulator.GraphAppID, "ServiceMessage.Read.All")
		}, want: "FAIL admin consent"},
		{name: "obo fails", before: func(em *emulator.Emulator) { em.RevokeConsent(emulator.DefaultServerAppID, emulator.GraphAppID, "") }, want: "FAIL on-behalf-of"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			em := emutest.Start(t, c.mutate)
			if c.before != nil {
				c.before(em)
			}
			out, code := doctorRun(t, em, c.extra...)
			if code != 1 || !strings.Contains(out, c.want) || !strings.Contains(out, "fix:") {
				t.Fatalf("exit %d, want 1 and %q with a fix:\n%s", code, c.want, out)
			}
		})
	}
	// A multi-tenant audience is a warning, not a failure.
	em := emutest.Start(t, func(c *emulator.Config) { c.Applications[0].SignInAudience = "AzureADMultipleOrgs" })
	if out, code := doctorRun(t, em); code != 0 || !strings.Contains(out, "WARN audience") {
		t.Fatalf("multi-tenant audience: exit %d\n%s", code, out)
	}
}

// The admin signs in with the device code flow.
func TestDoctorDeviceCodeSignIn(t *testing.T) {
	em := emutest.Start(t, nil)
	info := em.Info()
	codeRe := regexp.MustCompile(`enter the code ([A-Z0-9]+)`)
	approver := &approvingWriter{fn: func(s string) {
		if m := codeRe.FindStringSubmatch(s); m != nil {
			if err := em.ApproveDevice(m[1], "alice"); err != nil {
				t.Error(err)
			}
		}
	}}
	var out bytes.Buffer
	code := run([]string{"doctor", "--tenant-id", info.TenantID, "--client-id", info.Apps.Server.ClientID, "--client-secret", info.Apps.Server.ClientSecret,
		"--authority-host", strings.TrimPrefix(info.EmulatorURL, "https://"), "--graph-base-url", info.GraphURL, "--ca-file", info.CAFile, "--device-code"}, &out, approver)
	if code != 0 || !strings.Contains(out.String(), "PASS app registration") {
		t.Fatalf("exit %d:\n%s\n%s", code, out.String(), approver.String())
	}
}

type approvingWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	fn  func(string)
}

func (a *approvingWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	a.buf.Write(p)
	s := a.buf.String()
	a.mu.Unlock()
	a.fn(s)
	return len(p), nil
}

func (a *approvingWriter) String() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.String()
}
