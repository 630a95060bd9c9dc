package entra_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/internal/emutest"
)

const graphDefault = "https://graph.microsoft.com/.default"

func oboClient(t testing.TB, em *emulator.Emulator, cred entra.Credential, edit func(*entra.OBOOptions)) *entra.OBOClient {
	t.Helper()
	o := entra.OBOOptions{AuthorityHost: strings.TrimPrefix(em.URL(), "https://"), TenantID: em.TenantID(), ClientID: emulator.DefaultServerAppID,
		Credential: cred, HTTPClient: em.HTTPClient()}
	if edit != nil {
		edit(&o)
	}
	c, err := entra.NewOBOClient(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func secret(em *emulator.Emulator) entra.Credential {
	return entra.SecretCredential(em.Info().Apps.Server.ClientSecret)
}

func graphMe(t *testing.T, em *emulator.Emulator, tok string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, em.GraphURL()+"/v1.0/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := em.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Status
}

func TestOBOWithEachCredential(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "obo"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	em := emutest.Start(t, func(c *emulator.Config) {
		c.Applications[0].KeyCredentials = []emulator.KeyCredential{{KeyID: "6c2e4a8b-1d3f-4b5a-9c7e-2f4a6b8c0d1e", Type: "AsymmetricX509Cert", Usage: "Verify", Key: base64.StdEncoding.EncodeToString(der)}}
	})
	pemPath := filepath.Join(t.TempDir(), "cert.pem")
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(pemPath, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...), 0o600)
	cert, err := entra.LoadCertificate(pemPath, "")
	if err != nil {
		t.Fatal(err)
	}
	parsed, _ := x509.ParseCertificate(der)
	pfx, err := pkcs12.Modern.Encode(key, parsed, nil, "pfx-password")
	if err != nil {
		t.Fatal(err)
	}
	pfxPath := filepath.Join(t.TempDir(), "cert.pfx")
	os.WriteFile(pfxPath, pfx, 0o600)
	pfxCred, err := entra.LoadCertificate(pfxPath, "pfx-password")
	if err != nil {
		t.Fatalf("PFX: %v", err)
	}
	if _, err := entra.LoadCertificate(pfxPath, "wrong"); err == nil {
		t.Fatal("PFX opened with the wrong password")
	}
	// The managed identity needs a federated credential on the server app.
	mi := em.Info().ManagedIdentity
	if err := addFIC(t, em, mi.PrincipalID); err != nil {
		t.Fatal(err)
	}
	miCred := entra.ManagedIdentityCredential(entra.ManagedIdentityOptions{ClientID: mi.ClientID, IdentityEndpoint: mi.IdentityEndpoint,
		IdentityHeader: mi.IdentityHeader, HTTPClient: em.HTTPClient()})
	imdsCred := entra.ManagedIdentityCredential(entra.ManagedIdentityOptions{ClientID: mi.ClientID, IMDSEndpoint: mi.IMDSEndpoint, HTTPClient: em.HTTPClient()})
	for name, cred := range map[string]entra.Credential{"secret": secret(em), "certificate": cert, "certificate (PFX)": pfxCred, "managed identity (App Service)": miCred, "managed identity (IMDS)": imdsCred} {
		c := oboClient(t, em, cred, nil)
		user := emutest.UserToken(t, em, "alice")
		tok, err := c.Token(context.Background(), user, time.Now().Add(time.Hour), []string{graphDefault})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if status := graphMe(t, em, tok.AccessToken); status != "200 OK" {
			t.Fatalf("%s: Graph /me with the OBO token: %s", name, status)
		}
		if want := map[string]string{"secret": "1"}[name]; want != "" && emutest.Claims(t, tok.AccessToken)["appidacr"] != want {
			t.Errorf("%s: appidacr %v", name, emutest.Claims(t, tok.AccessToken)["appidacr"])
		}
	}
}

func addFIC(t *testing.T, em *emulator.Emulator, principalID string) error {
	t.Helper()
	// The emulator's issuer is known only once it runs, so the credential is added through Graph,
	// as `entramcp setup` would.
	info := em.Info()
	tok := emutest.Token(t, em, map[string][]string{"grant_type": {"password"}, "client_id": {emulator.AzureCLIAppID}, "username": {"alice"},
		"password": {info.Users[0].Password}, "scope": {"https://graph.microsoft.com/Application.ReadWrite.All"}})["access_token"].(string)
	status, body := graphPost(t, em, tok, "/v1.0/applications/a1b2c3d4-1111-4aaa-8bbb-000000000001/federatedIdentityCredentials",
		`{"name":"mi","issuer":"`+em.Issuer()+`","subject":"`+principalID+`","audiences":["api://AzureADTokenExchange"]}`)
	if status != 201 {
		return errors.New("create FIC: " + body)
	}
	return nil
}

func TestOBOErrorsAreClassified(t *testing.T) {
	em := emutest.Start(t, nil)
	ctx := context.Background()
	user := emutest.UserToken(t, em, "alice")
	exp := time.Now().Add(time.Hour)
	kind := func(err error) entra.OBOErrorKind {
		var oe *entra.OBOError
		if !errors.As(err, &oe) {
			t.Fatalf("not an OBOError: %v", err)
		}
		return oe.Kind
	}

	_, err := oboClient(t, em, entra.SecretCredential("wrong"), nil).Token(ctx, user, exp, []string{graphDefault})
	if kind(err) != entra.OBOConfiguration || strings.Contains(err.Error(), "wrong") {
		t.Errorf("wrong secret: %v", err)
	}
	c := oboClient(t, em, secret(em), nil)
	_, err = c.Token(ctx, user, exp, []string{"https://graph.microsoft.com/Directory.Read.All"})
	var oe *entra.OBOError
	if kind(err) != entra.OBOConsentRequired || !errors.As(err, &oe) || !strings.Contains(oe.ConsentURL, "/v2.0/adminconsent?client_id="+emulator.DefaultServerAppID) {
		t.Errorf("consent missing: %v", err)
	}
	policy, _ := em.SetMFAPolicy("alice", emulator.GraphAppID, 0)
	_, err = c.Token(ctx, user, exp, []string{graphDefault})
	if kind(err) != entra.OBOInteractionRequired || !errors.As(err, &oe) || !strings.Contains(oe.Claims, policy) || oe.Code != 50079 {
		t.Errorf("MFA: %v", err)
	}
	em.ClearPolicies()
	em.SetClockOffset(3 * time.Hour)
	_, err = c.Token(ctx, user, exp, []string{graphDefault})
	em.SetClockOffset(0)
	if kind(err) != entra.OBOInvalidAssertion {
		t.Errorf("expired assertion: %v", err)
	}
	em.SetOutage(emulator.Login, emulator.OutageRefuse, 0)
	_, err = c.Token(ctx, user, exp, []string{graphDefault})
	em.ClearOutage(emulator.Login)
	if kind(err) != entra.OBOUnavailable || !errors.Is(err, entra.ErrEntraUnavailable) {
		t.Errorf("Entra down: %v", err)
	}
	if strings.Contains(err.Error(), user) {
		t.Error("an error message contains the user's token")
	}
}

// The cached token is never used past the earlier of the two tokens' expiry, less the margin.
func TestOBOCacheRespectsBothExpiries(t *testing.T) {
	em := emutest.Start(t, nil)
	now := time.Now()
	current := now
	clock := &current
	c := oboClient(t, em, secret(em), func(o *entra.OBOOptions) { o.Now = func() time.Time { return *clock } })
	user := emutest.UserToken(t, em, "alice")
	assertionExp := now.Add(20 * time.Minute) // earlier than the Graph token's
	if _, err := c.Token(context.Background(), user, assertionExp, []string{graphDefault}); err != nil {
		t.Fatal(err)
	}
	before := em.Stats().Token["on_behalf_of"]
	*clock = now.Add(14 * time.Minute) // 6 minutes left: still served from cache (margin 5m)
	c.Token(context.Background(), user, assertionExp, []string{graphDefault})
	if em.Stats().Token["on_behalf_of"] != before {
		t.Fatal("cache missed with 6 minutes left")
	}
	*clock = now.Add(16 * time.Minute) // 4 minutes left: inside the margin, exchange again
	c.Token(context.Background(), user, assertionExp, []string{graphDefault})
	if em.Stats().Token["on_behalf_of"] != before+1 {
		t.Fatal("cache served a token within the margin of the assertion's expiry")
	}
	// Scope order does not matter to the cache key.
	*clock = now
	a, err := c.Token(context.Background(), user, assertionExp, []string{"https://graph.microsoft.com/User.Read", "https://graph.microsoft.com/GroupMember.Read.All"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Token(context.Background(), user, assertionExp, []string{"https://graph.microsoft.com/GroupMember.Read.All", "https://graph.microsoft.com/User.Read"})
	if a == nil || a != b {
		t.Fatal("same scopes in another order missed the cache")
	}
}
