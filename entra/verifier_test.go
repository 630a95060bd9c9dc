package entra_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/internal/emutest"
)

func startEmulator(t testing.TB, mutate func(*emulator.Config)) *emulator.Emulator {
	return emutest.Start(t, mutate)
}

func newVerifier(t testing.TB, em *emulator.Emulator, edit func(*entra.VerifierOptions)) *entra.Verifier {
	t.Helper()
	o := entra.VerifierOptions{
		AuthorityHost: strings.TrimPrefix(em.URL(), "https://"), TenantID: em.TenantID(), ClientID: emulator.DefaultServerAppID,
		RequiredScopes: []string{"mcp-access"}, HTTPClient: em.HTTPClient(),
	}
	if edit != nil {
		edit(&o)
	}
	v, err := entra.NewVerifier(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return v
}

func token(t testing.TB, em *emulator.Emulator, user, scope string) string {
	t.Helper()
	return emutest.Password(t, em, user, scope)["access_token"].(string)
}

const api = "api://" + emulator.DefaultServerAppID + "/mcp-access"

func reason(err error) string {
	var ve *entra.VerifyError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return ""
}

func TestNewVerifierRefusesBadSettings(t *testing.T) {
	good := entra.VerifierOptions{TenantID: emulator.DefaultTenantID, ClientID: emulator.DefaultServerAppID}
	cases := map[string]func(*entra.VerifierOptions){
		"common tenant":            func(o *entra.VerifierOptions) { o.TenantID = "common" },
		"consumers tenant":         func(o *entra.VerifierOptions) { o.TenantID = "consumers" },
		"no tenant":                func(o *entra.VerifierOptions) { o.TenantID = "" },
		"client id not a GUID":     func(o *entra.VerifierOptions) { o.ClientID = "my-app" },
		"scope of another API":     func(o *entra.VerifierOptions) { o.RequiredScopes = []string{"api://other/x"} },
		"scope .default":           func(o *entra.VerifierOptions) { o.RequiredScopes = []string{".default"} },
		"authority host with path": func(o *entra.VerifierOptions) { o.AuthorityHost = "https://login.microsoftonline.com/" },
		"allowed tenant not GUID":  func(o *entra.VerifierOptions) { o.TenantID, o.AllowedTenants = "organizations", []string{"contoso"} },
		"leeway too large":         func(o *entra.VerifierOptions) { o.Leeway = time.Hour },
	}
	for name, edit := range cases {
		o := good
		edit(&o)
		_, err := entra.NewVerifier(o)
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if name == "common tenant" && !strings.Contains(err.Error(), "ENTRA_TENANT_ID") {
			t.Errorf("%s: error %q does not name the setting", name, err)
		}
	}
	o := good
	o.RequiredScopes = []string{"api://" + emulator.DefaultServerAppID + "/mcp-access"}
	v, err := entra.NewVerifier(o)
	if err != nil || v.RequiredScopes()[0] != "mcp-access" {
		t.Fatalf("full scope name not normalised: %v %v", err, v.RequiredScopes())
	}
}

func TestVerifyAndCache(t *testing.T) {
	em := startEmulator(t, nil)
	v := newVerifier(t, em, func(o *entra.VerifierOptions) { o.KeySet.MinRefetch = time.Millisecond })
	tok := token(t, em, "alice", api+" profile")
	id, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.ObjectID != "b7e1c9a4-5d2f-4e8b-9a3c-6f1d8e2b4a71" || id.TenantID != emulator.DefaultTenantID || id.Name != "Alice Example" ||
		!id.HasScope("mcp-access") || !id.HasRole("MCP.Admin") || !id.InGroup(emulator.DefaultAdminGroupID) || id.Token() != tok ||
		id.ClientAppID != emulator.DefaultClientAppID || id.UserKey() != emulator.DefaultTenantID+":"+id.ObjectID {
		t.Fatalf("identity: %+v", id)
	}
	if s := id.String(); strings.Contains(s, tok) {
		t.Fatal("Identity.String leaks the token")
	}
	again, err := v.Verify(context.Background(), tok)
	if err != nil || again != id {
		t.Fatalf("second verification did not come from the cache: %v", err)
	}
	// An emergency key rollover removes the key: once the verifier refetches the keys (here
	// because a token with the new kid arrives), the cached token stops working.
	em.RotateKeys(false)
	time.Sleep(2 * time.Millisecond) // past the refetch bound
	if _, err := v.Verify(context.Background(), token(t, em, "bob", api)); err != nil {
		t.Fatalf("token signed by the new key: %v", err)
	}
	if _, err := v.Verify(context.Background(), tok); reason(err) != entra.ReasonKeyNotFound {
		t.Fatalf("cached token after its key was withdrawn: %v, want key_not_found", err)
	}
}

func TestVerifierClockAndVersionRules(t *testing.T) {
	em := startEmulator(t, func(c *emulator.Config) {
		c.Applications[0].API.RequestedAccessTokenVersion = nil // v1 tokens for the API
		c.RoleAssignments = append(c.RoleAssignments, emulator.RoleAssignmentConfig{Resource: emulator.DefaultServerAppID, App: emulator.DefaultServerAppID, Roles: []string{"MCP.Admin"}})
	})
	tok := token(t, em, "alice", api)
	strict := newVerifier(t, em, nil)
	if _, err := strict.Verify(context.Background(), tok); reason(err) != entra.ReasonVersion || !strings.Contains(err.Error(), "requestedAccessTokenVersion") {
		t.Fatalf("v1 token by default: %v", err)
	}
	lenient := newVerifier(t, em, func(o *entra.VerifierOptions) { o.AcceptV1 = true })
	if id, err := lenient.Verify(context.Background(), tok); err != nil || id.Version != "1.0" || id.PreferredUsername != "alice@contoso.onmicrosoft.com" {
		t.Fatalf("v1 token with AcceptV1: %v %+v", err, id)
	}
	// App-only tokens: refused without configured roles, accepted with a matching role.
	info := em.Info()
	appOnly := emutest.Token(t, em, url.Values{"grant_type": {"client_credentials"}, "client_id": {info.Apps.Server.ClientID},
		"client_secret": {info.Apps.Server.ClientSecret}, "scope": {info.Apps.Server.ClientID + "/.default"}})["access_token"].(string)
	if _, err := lenient.Verify(context.Background(), appOnly); reason(err) != entra.ReasonAppOnly {
		t.Fatalf("app-only without roles configured: %v", err)
	}
	withRoles := newVerifier(t, em, func(o *entra.VerifierOptions) { o.AcceptV1, o.AppRoles = true, []string{"MCP.Admin"} })
	if id, err := withRoles.Verify(context.Background(), appOnly); err != nil || !id.AppOnly {
		t.Fatalf("app-only with the role: %v", err)
	}
	otherRole := newVerifier(t, em, func(o *entra.VerifierOptions) { o.AcceptV1, o.AppRoles = true, []string{"Tasks.Write"} })
	if _, err := otherRole.Verify(context.Background(), appOnly); reason(err) != entra.ReasonInsufficientScope {
		t.Fatalf("app-only with another role: %v", err)
	}
}

func TestVerifierLeewayNeverExtendsCachedTokens(t *testing.T) {
	em := startEmulator(t, nil)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	v := newVerifier(t, em, func(o *entra.VerifierOptions) { o.Now, o.Leeway = clock, 30*time.Second })
	tok := token(t, em, "bob", api)
	id, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = id.Expiry.Add(20 * time.Second) // inside the leeway
	mu.Unlock()
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	mu.Lock()
	now = id.Expiry.Add(31 * time.Second)
	mu.Unlock()
	if _, err := v.Verify(context.Background(), tok); reason(err) != entra.ReasonExpired {
		t.Fatalf("past expiry and leeway, a cached token must fail: %v", err)
	}
}

func TestMultiTenant(t *testing.T) {
	em := startEmulator(t, nil)
	tok := token(t, em, "alice", api)
	anyTenant := newVerifier(t, em, func(o *entra.VerifierOptions) { o.TenantID = "organizations" })
	if _, err := anyTenant.Verify(context.Background(), tok); err != nil {
		t.Fatalf("organizations: %v", err)
	}
	allowed := newVerifier(t, em, func(o *entra.VerifierOptions) {
		o.TenantID, o.AllowedTenants = "organizations", []string{"11111111-2222-4333-8444-555555555555"}
	})
	if _, err := allowed.Verify(context.Background(), tok); reason(err) != entra.ReasonTenant {
		t.Fatalf("tenant not in the allow-list: %v", err)
	}
	byDomain := newVerifier(t, em, func(o *entra.VerifierOptions) { o.TenantID = emulator.DefaultTenantDomain })
	if _, err := byDomain.Verify(context.Background(), tok); err != nil {
		t.Fatalf("tenant by domain: %v", err)
	}
}

// Forged tokens with random kids must not turn into a flood of JWKS requests, and concurrent
// misses share one fetch.
func TestKeySetRefetchIsBoundedAndCollapsed(t *testing.T) {
	em := startEmulator(t, nil)
	v := newVerifier(t, em, nil) // MinRefetch is the default minute
	tok := token(t, em, "alice", api)
	_, rest, _ := strings.Cut(tok, ".")
	before := em.Stats().JWKS
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			forged := b64json(map[string]any{"alg": "RS256", "kid": "forged-" + string(rune('a'+i%26)) + time.Now().String()}) + "." + rest
			if _, err := v.Verify(context.Background(), forged); reason(err) != entra.ReasonKeyNotFound {
				t.Errorf("forged kid: %v", err)
			}
		}(i)
	}
	wg.Wait()
	if n := em.Stats().JWKS - before; n > 1 {
		t.Fatalf("%d JWKS fetches for 200 unknown kids; want at most 1 per minute", n)
	}

	ks := entra.NewKeySet(em.Authority()+"/discovery/v2.0/keys", entra.KeySetOptions{HTTPClient: em.HTTPClient()})
	em.SetLatency(emulator.Login, 100*time.Millisecond)
	before = em.Stats().JWKS
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); ks.Fetch(context.Background()) }()
	}
	wg.Wait()
	em.SetLatency(emulator.Login, 0)
	if n := em.Stats().JWKS - before; n < 1 || n > 2 {
		t.Fatalf("50 concurrent fetches made %d requests; want them collapsed", n)
	}
	if !ks.Ready() {
		t.Fatal("key set not ready after fetching")
	}
}

func TestKeySetKeepsLastGoodKeys(t *testing.T) {
	em := startEmulator(t, nil)
	ks := entra.NewKeySet(em.Authority()+"/discovery/v2.0/keys", entra.KeySetOptions{HTTPClient: em.HTTPClient(), MinRefetch: time.Millisecond})
	if err := ks.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	kid := em.SigningKeyIDs()[0]
	em.SetOutage(emulator.Login, emulator.Outage503, 0)
	if err := ks.Fetch(context.Background()); err == nil {
		t.Fatal("fetch during an outage succeeded")
	}
	if _, err := ks.Key(context.Background(), kid); err != nil {
		t.Fatalf("last good key lost during the outage: %v", err)
	}
	time.Sleep(2 * time.Millisecond) // let the refetch bound pass
	if _, err := ks.Key(context.Background(), "new-kid"); !errors.Is(err, entra.ErrKeysUnavailable) {
		t.Fatalf("unknown kid during an outage: %v, want ErrKeysUnavailable", err)
	}
}

func TestScopeNames(t *testing.T) {
	uris := []string{"api://" + emulator.DefaultServerAppID}
	for in, want := range map[string]string{"mcp-access": "mcp-access", uris[0] + "/mcp-access": "mcp-access", " Files.Read ": "Files.Read"} {
		if got, err := entra.ShortScope(in, uris); err != nil || got != want {
			t.Errorf("ShortScope(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "api://other/x", ".default", "a b", "with\"quote"} {
		if _, err := entra.ShortScope(bad, uris); err == nil {
			t.Errorf("ShortScope(%q) accepted", bad)
		}
	}
	if got := entra.FullScope(uris[0]+"/", "x"); got != uris[0]+"/x" {
		t.Errorf("FullScope: %q", got)
	}
}

func TestCloudForHost(t *testing.T) {
	if c := entra.CloudForHost("login.microsoftonline.us"); c.GraphURL != "https://graph.microsoft.us" || c.TokenExchangeAudience != "api://AzureADTokenExchangeUSGov" {
		t.Errorf("US Government: %+v", c)
	}
	if c := entra.CloudForHost("login.partner.microsoftonline.cn"); c.V1IssuerHost != "sts.chinacloudapi.cn" {
		t.Errorf("China: %+v", c)
	}
	if c := entra.CloudForHost("127.0.0.1:8443"); c.AuthorityHost != "127.0.0.1:8443" || c.Name != "Custom" {
		t.Errorf("custom: %+v", c)
	}
}
