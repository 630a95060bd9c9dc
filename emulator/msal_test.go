package emulator_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/managedidentity"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/emutest"
)

// These tests prove the emulator against MSAL Go, a client nobody here wrote: if MSAL accepts
// the emulator's discovery, tokens and errors, code written against it works with Entra.

const graphDefault = "https://graph.microsoft.com/.default"

func msalClient(t *testing.T, em *emulator.Emulator, clientID string, cred confidential.Credential, instanceDiscovery bool) confidential.Client {
	t.Helper()
	c, err := confidential.New(em.Authority(), clientID, cred,
		confidential.WithHTTPClient(em.HTTPClient()), confidential.WithInstanceDiscovery(instanceDiscovery))
	if err != nil {
		t.Fatalf("confidential.New: %v", err)
	}
	return c
}

// checkGraphToken proves a Graph token works for /me and belongs to want.
func checkGraphToken(t *testing.T, em *emulator.Emulator, tok, want string) {
	t.Helper()
	status, me := graphGet(t, em, tok, "/v1.0/me")
	if status != 200 || me["userPrincipalName"] != want {
		t.Fatalf("GET /me with the OBO token: %d %v", status, me)
	}
}

func TestMSALOnBehalfOfWithSecret(t *testing.T) {
	// Instance discovery stays off: MSAL would ask login.microsoftonline.com, a public address.
	// The emulator's instance discovery endpoint is tested directly in discovery_test.go.
	{
		em := startEmulator(t, nil)
		s := em.Info().Apps.Server
		cred, err := confidential.NewCredFromSecret(s.ClientSecret)
		if err != nil {
			t.Fatal(err)
		}
		client := msalClient(t, em, s.ClientID, cred, false)
		assertion := userToken(t, em, "alice")
		ctx := context.Background()
		res, err := client.AcquireTokenOnBehalfOf(ctx, assertion, []string{graphDefault})
		if err != nil {
			t.Fatalf("OBO: %v", err)
		}
		checkGraphToken(t, em, res.AccessToken, "alice@"+emulator.DefaultTenantDomain)
		if res.Account.HomeAccountID == "" {
			t.Errorf("MSAL found no account in the OBO response (client_info missing?)")
		}
		// MSAL's own cache answers the second call: the emulator sees one OBO request.
		if _, err := client.AcquireTokenOnBehalfOf(ctx, assertion, []string{graphDefault}); err != nil {
			t.Fatal(err)
		}
		if n := em.Stats().Token["on_behalf_of"]; n != 1 {
			t.Errorf("on_behalf_of requests = %d, want 1", n)
		}
	}
}

// selfSignedCert makes a certificate credential like `az ad app credential reset --create-cert`.
func selfSignedCert(t *testing.T) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "entramcp-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func TestMSALOnBehalfOfWithCertificate(t *testing.T) {
	cert, key := selfSignedCert(t)
	em := startEmulator(t, func(c *emulator.Config) {
		c.Applications[0].KeyCredentials = []emulator.KeyCredential{{KeyID: "5b1d3a7c-0e2f-4a6b-8c9d-1e3f5a7b9c0d", Type: "AsymmetricX509Cert", Usage: "Verify", Key: base64.StdEncoding.EncodeToString(cert.Raw)}}
	})
	s := em.Info().Apps.Server
	cred, err := confidential.NewCredFromCert([]*x509.Certificate{cert}, key)
	if err != nil {
		t.Fatal(err)
	}
	res, err := msalClient(t, em, s.ClientID, cred, false).AcquireTokenOnBehalfOf(context.Background(), userToken(t, em, "bob"), []string{"https://graph.microsoft.com/User.Read"})
	if err != nil {
		t.Fatalf("OBO with certificate: %v", err)
	}
	checkGraphToken(t, em, res.AccessToken, "bob@"+emulator.DefaultTenantDomain)
	if got := claims(t, res.AccessToken)["appidacr"]; got != "2" {
		t.Errorf("appidacr = %v, want 2 for a certificate credential", got)
	}

	// Another certificate, not registered for the app, is refused.
	other, otherKey := selfSignedCert(t)
	cred2, _ := confidential.NewCredFromCert([]*x509.Certificate{other}, otherKey)
	_, err = msalClient(t, em, s.ClientID, cred2, false).AcquireTokenOnBehalfOf(context.Background(), userToken(t, em, "bob"), []string{graphDefault})
	if err == nil || !strings.Contains(err.Error(), "AADSTS700027") {
		t.Fatalf("unregistered certificate: err = %v, want AADSTS700027", err)
	}
}

// adminGraphToken is a delegated Graph token for alice (Global Administrator) through the Azure
// CLI client, as `entramcp setup` gets one.
func adminGraphToken(t *testing.T, em *emulator.Emulator, user string) string {
	t.Helper()
	status, body := post(t, em, map[string][]string{"grant_type": {"password"}, "client_id": {emulator.AzureCLIAppID},
		"username": {user}, "password": {emutest.PasswordOf(em, user)}, "scope": {"https://graph.microsoft.com/Application.ReadWrite.All https://graph.microsoft.com/DelegatedPermissionGrant.ReadWrite.All"}})
	if status != 200 {
		t.Fatalf("admin token: %d %v", status, body)
	}
	return body["access_token"].(string)
}

// addFederatedCredential trusts the emulator's managed identity as the server app's credential.
func addFederatedCredential(t *testing.T, em *emulator.Emulator) {
	t.Helper()
	tok := adminGraphToken(t, em, "alice")
	mi := em.Info().ManagedIdentity
	status, app := graphGet(t, em, tok, "/v1.0/applications(appId='"+em.Info().Apps.Server.ClientID+"')")
	if status != 200 {
		t.Fatalf("get server app: %d %v", status, app)
	}
	status, body := graphDo(t, em, http.MethodPost, tok, "/v1.0/applications/"+app["id"].(string)+"/federatedIdentityCredentials", map[string]any{
		"name": "entramcp-mi", "issuer": em.Issuer(), "subject": mi.PrincipalID, "audiences": []string{"api://AzureADTokenExchange"},
	})
	if status != 201 {
		t.Fatalf("create federated credential: %d %v", status, body)
	}
}

// rewriteIMDS sends MSAL's fixed IMDS address to the emulator.
type rewriteIMDS struct {
	base http.RoundTripper
	host string
}

func (r rewriteIMDS) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == "169.254.169.254" {
		req = req.Clone(req.Context())
		req.URL.Scheme, req.URL.Host = "https", r.host
	}
	return r.base.RoundTrip(req)
}

func TestMSALOnBehalfOfWithManagedIdentityAssertion(t *testing.T) {
	for _, source := range []string{"app-service", "imds"} {
		t.Run(source, func(t *testing.T) {
			em := startEmulator(t, nil)
			addFederatedCredential(t, em)
			mi := em.Info().ManagedIdentity
			httpClient := em.HTTPClient()
			if source == "app-service" {
				t.Setenv("IDENTITY_ENDPOINT", mi.IdentityEndpoint)
				t.Setenv("IDENTITY_HEADER", mi.IdentityHeader)
			} else {
				t.Setenv("IDENTITY_ENDPOINT", "")
				t.Setenv("IDENTITY_HEADER", "")
				httpClient.Transport = rewriteIMDS{base: httpClient.Transport, host: strings.TrimPrefix(em.URL(), "https://")}
			}
			miClient, err := managedidentity.New(managedidentity.UserAssignedClientID(mi.ClientID), managedidentity.WithHTTPClient(httpClient))
			if err != nil {
				t.Fatal(err)
			}
			cred := confidential.NewCredFromAssertionCallback(func(ctx context.Context, _ confidential.AssertionRequestOptions) (string, error) {
				res, err := miClient.AcquireToken(ctx, "api://AzureADTokenExchange", managedidentity.WithClaims(source))
				return res.AccessToken, err
			})
			s := em.Info().Apps.Server
			res, err := msalClient(t, em, s.ClientID, cred, false).AcquireTokenOnBehalfOf(context.Background(), userToken(t, em, "alice"), []string{graphDefault})
			if err != nil {
				t.Fatalf("OBO with a managed identity assertion: %v", err)
			}
			checkGraphToken(t, em, res.AccessToken, "alice@"+emulator.DefaultTenantDomain)
			if n := em.Stats().Token["managed_identity"]; n < 1 {
				t.Errorf("managed identity endpoint was not used (count %d)", n)
			}
		})
	}
}

func TestMSALClientCredentials(t *testing.T) {
	em := startEmulator(t, func(c *emulator.Config) {
		c.RoleAssignments = append(c.RoleAssignments, emulator.RoleAssignmentConfig{Resource: emulator.GraphAppID, App: emulator.DefaultServerAppID, Roles: []string{"User.Read.All"}})
	})
	s := em.Info().Apps.Server
	cred, _ := confidential.NewCredFromSecret(s.ClientSecret)
	res, err := msalClient(t, em, s.ClientID, cred, false).AcquireTokenByCredential(context.Background(), []string{graphDefault})
	if err != nil {
		t.Fatalf("client credentials: %v", err)
	}
	c := claims(t, res.AccessToken)
	if c["idtyp"] != "app" || c["scp"] != nil {
		t.Errorf("app-only token claims: idtyp=%v scp=%v", c["idtyp"], c["scp"])
	}
	if roles, _ := c["roles"].([]any); len(roles) != 1 || roles[0] != "User.Read.All" {
		t.Errorf("roles = %v, want [User.Read.All]", c["roles"])
	}
	status, body := graphGet(t, em, res.AccessToken, "/v1.0/users/alice@"+emulator.DefaultTenantDomain)
	if status != 200 || body["displayName"] != "Alice Example" {
		t.Errorf("app-only GET /users/{upn}: %d %v", status, body)
	}
	status, body = graphGet(t, em, res.AccessToken, "/v1.0/me")
	if status != 400 {
		t.Errorf("app-only GET /me: %d %v, want 400", status, body)
	}
}
