package oauthproxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/store"
)

const (
	tid = "6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34"
	oid = "b7e1c9a4-5d2f-4e8b-9a3c-6f1d8e2b4a71"
)

func sealed(t *testing.T, s store.Store) store.Store {
	kr, _ := store.NewRandomKeyring()
	return store.Encrypted(s, kr)
}

func newTokens(t *testing.T, st store.Store, now *time.Time) *Tokens {
	t.Helper()
	ks, err := LoadKeys(context.Background(), st, "", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ks.now = func() time.Time { return *now }
	return &Tokens{Keys: ks, Issuer: "https://mcp.contoso.example", Resource: "https://mcp.contoso.example/mcp", Now: func() time.Time { return *now }}
}

func reasonOf(err error) string {
	var ve *entra.VerifyError
	if errors.As(err, &ve) {
		return ve.Reason
	}
	return ""
}

func TestIssueAndVerify(t *testing.T) {
	now := time.Now()
	tk := newTokens(t, sealed(t, store.NewMemory()), &now)
	tk.Upstream = func(_ context.Context, jti string) (string, error) { return "entra-token-for-" + jti, nil }
	tok, jti, _, err := tk.Issue(Grant{TenantID: tid, ObjectID: oid, ClientID: "client-1", Scopes: []string{"mcp-access"}, Name: "Alice", Roles: []string{"MCP.Admin"}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := tk.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.UserKey() != tid+":"+oid || !id.HasScope("mcp-access") || !id.HasRole("MCP.Admin") || id.Token() != "entra-token-for-"+jti || id.ClientAppID != "client-1" {
		t.Fatalf("identity: %+v", id)
	}
	// A standard library verifies it with the published JWKS (ES256, kid).
	jwks := tk.Keys.JWKS()["keys"].([]map[string]string)[0]
	x, _ := base64.RawURLEncoding.DecodeString(jwks["x"])
	y, _ := base64.RawURLEncoding.DecodeString(jwks["y"])
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return pub, nil }, jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(tk.Resource), jwt.WithIssuer(tk.Issuer)); err != nil {
		t.Fatalf("golang-jwt rejects our token: %v", err)
	}

	parts := strings.Split(tok, ".")
	var c map[string]any
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	json.Unmarshal(b, &c)
	forge := func(edit map[string]any) string {
		m := map[string]any{}
		for k, v := range c {
			m[k] = v
		}
		for k, v := range edit {
			m[k] = v
		}
		nb, _ := json.Marshal(m)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(nb) + "." + parts[2]
	}
	other := newTokens(t, store.NewMemory(), &now) // another server's keys
	otherTok, _, _, _ := other.Issue(Grant{TenantID: tid, ObjectID: oid})
	for name, bad := range map[string]string{
		"tampered oid":    forge(map[string]any{"oid": "c4a2d8f1-6e3b-4f9c-8b2d-7a4e1c9f5b62"}),
		"garbage":         "a.b.c",
		"alg none":        base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".",
		"another server":  otherTok,
		"two segments":    parts[0] + "." + parts[1],
		"signature bytes": parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString([]byte("short")),
	} {
		if _, err := tk.Verify(context.Background(), bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	tk2 := &Tokens{Keys: tk.Keys, Issuer: tk.Issuer, Resource: "https://elsewhere.example/mcp", Now: tk.Now}
	if _, err := tk2.Verify(context.Background(), tok); reasonOf(err) != entra.ReasonAudience {
		t.Errorf("audience: %v", err)
	}
	later := now.Add(2 * time.Hour)
	tk3 := &Tokens{Keys: tk.Keys, Issuer: tk.Issuer, Resource: tk.Resource, Now: func() time.Time { return later }}
	if _, err := tk3.Verify(context.Background(), tok); reasonOf(err) != entra.ReasonExpired {
		t.Errorf("expired: %v", err)
	}
	// A store failure while resolving the upstream token is a 503, never a token without one.
	tk.Upstream = func(context.Context, string) (string, error) { return "", store.ErrUnavailable }
	if _, err := tk.Verify(context.Background(), tok); reasonOf(err) != entra.ReasonUnavailable {
		t.Errorf("upstream store down: %v", err)
	}
}

func TestRotationOverlapReplicasAndRestart(t *testing.T) {
	now := time.Now()
	path := filepath.Join(t.TempDir(), "entramcp.db")
	bolt, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := store.NewRandomKeyring()
	st := store.Encrypted(bolt, kr)
	a := newTokens(t, st, &now)
	b := newTokens(t, st, &now) // a second replica on the same store
	if a.Keys.current().Kid != b.Keys.current().Kid {
		t.Fatal("two replicas created different first keys")
	}
	old, _, _, _ := a.Issue(Grant{TenantID: tid, ObjectID: oid})
	if err := a.Keys.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	fresh, _, _, _ := a.Issue(Grant{TenantID: tid, ObjectID: oid})
	// b learns the new key when it first sees a token signed with it.
	if _, err := b.Verify(context.Background(), fresh); err != nil {
		t.Fatalf("replica b with a token from the rotated key: %v", err)
	}
	if _, err := a.Verify(context.Background(), old); err != nil {
		t.Fatalf("a token signed by the previous key during the overlap: %v", err)
	}
	if n := len(a.Keys.JWKS()["keys"].([]map[string]string)); n != 2 {
		t.Fatalf("JWKS during the overlap has %d keys, want 2", n)
	}
	// Past the overlap, the next rotation drops the key retired longest ago.
	now = now.Add(3 * time.Hour)
	if err := a.Keys.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(a.Keys.JWKS()["keys"].([]map[string]string)); n != 2 {
		t.Fatalf("after the overlap: %d keys, want 2 (current and previous)", n)
	}
	if _, err := a.Verify(context.Background(), old); reasonOf(err) != entra.ReasonKeyNotFound {
		t.Fatalf("a token from a dropped key: %v", err)
	}
	// Restart: the keys persist (sealed) in the bbolt file.
	kid := a.Keys.current().Kid
	bolt.Close()
	bolt2, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer bolt2.Close()
	again, err := LoadKeys(context.Background(), store.Encrypted(bolt2, kr), "", time.Hour)
	if err != nil || again.current().Kid != kid {
		t.Fatalf("after restart: %v", err)
	}
}

func TestSigningKeyFromSetting(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(priv)
	ks, err := LoadKeys(context.Background(), nil, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})), time.Hour)
	if err != nil || ks.current().Kid != thumbprint(&priv.PublicKey) {
		t.Fatalf("PEM key: %v", err)
	}
	if _, err := LoadKeys(context.Background(), nil, "not a key", time.Hour); err == nil || !strings.Contains(err.Error(), "ENTRAMCP_SIGNING_KEY") {
		t.Fatalf("bad PEM: %v", err)
	}
	if err := ks.Rotate(context.Background()); err == nil {
		t.Fatal("rotating a configured key should be refused")
	}
}

// The verified-token cache never outlives the key: once a key is dropped, a token it signed is
// refused even though it was verified (and cached) before and has not expired.
func TestCachedTokenRefusedWhenItsKeyIsDropped(t *testing.T) {
	now := time.Now()
	tk := newTokens(t, sealed(t, store.NewMemory()), &now)
	tk.Lifetime = 24 * time.Hour
	tok, _, _, err := tk.Issue(Grant{TenantID: tid, ObjectID: oid})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second rotation past the overlap drops the token's key
		now = now.Add(3 * time.Hour)
		if err := tk.Keys.Rotate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tk.Verify(context.Background(), tok); reasonOf(err) != entra.ReasonKeyNotFound {
		t.Fatalf("a cached token from a dropped key: %v", err)
	}
}

// Scheduled rotation: a key younger than the maximum age stays; once older, replicas asking at
// the same moment rotate once between them, and both sign with the new key afterwards.
func TestSigningKeysRotateOnceWhenOld(t *testing.T) {
	now := time.Now()
	kr, _ := store.NewRandomKeyring()
	st := store.Encrypted(store.NewMemory(), kr)
	a, b := newTokens(t, st, &now), newTokens(t, st, &now)
	first := a.Keys.current().Kid
	for _, ks := range []*KeySet{a.Keys, b.Keys} {
		if rotated, err := ks.RotateIfOlder(context.Background(), 30*24*time.Hour); err != nil || rotated {
			t.Fatalf("a fresh key was rotated: %v %v", rotated, err)
		}
	}
	now = now.Add(31 * 24 * time.Hour)
	var wg sync.WaitGroup
	var rotations atomic.Int32
	for _, ks := range []*KeySet{a.Keys, b.Keys, a.Keys, b.Keys} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rotated, err := ks.RotateIfOlder(context.Background(), 30*24*time.Hour)
			if err != nil {
				t.Error(err)
			}
			if rotated {
				rotations.Add(1)
			}
		}()
	}
	wg.Wait()
	if rotations.Load() != 1 {
		t.Fatalf("%d rotations from four simultaneous checks, want 1", rotations.Load())
	}
	a.Keys.Reload(context.Background())
	b.Keys.Reload(context.Background())
	if a.Keys.current().Kid == first || a.Keys.current().Kid != b.Keys.current().Kid {
		t.Fatalf("after rotation: a signs with %s, b with %s (first %s)", a.Keys.current().Kid, b.Keys.current().Kid, first)
	}
}
