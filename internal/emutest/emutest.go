// Package emutest holds the helpers tests use against the emulator: start one for a test,
// and get tokens from it the way a script would.
package emutest

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/entramcp/entramcp/emulator"
)

// Start runs an emulator for one test, optionally with a changed configuration, and closes it
// when the test ends.
func Start(t testing.TB, mutate func(*emulator.Config)) *emulator.Emulator {
	t.Helper()
	cfg := emulator.DefaultConfig()
	if mutate != nil {
		mutate(cfg)
	}
	em, err := emulator.Start(emulator.Options{Config: cfg, StateDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() { em.Close() })
	return em
}

// PasswordOf returns a built-in test user's password.
func PasswordOf(em *emulator.Emulator, user string) string {
	for _, u := range em.Info().Users {
		if u.Name == user {
			return u.Password
		}
	}
	return ""
}

// Post sends a form to the token endpoint and returns the status and decoded JSON body.
func Post(t testing.TB, em *emulator.Emulator, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := em.HTTPClient().PostForm(em.Authority()+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	defer resp.Body.Close()
	body := map[string]any{}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("token response is not JSON: %v", err)
	}
	return resp.StatusCode, body
}

// Token posts form and fails the test unless a token comes back.
func Token(t testing.TB, em *emulator.Emulator, form url.Values) map[string]any {
	t.Helper()
	status, body := Post(t, em, form)
	if status != 200 {
		t.Fatalf("%s grant: %d %v", form.Get("grant_type"), status, body["error_description"])
	}
	return body
}

// Password gets tokens for user with the password grant through the dev public client.
func Password(t testing.TB, em *emulator.Emulator, user, scope string) map[string]any {
	t.Helper()
	return Token(t, em, url.Values{"grant_type": {"password"}, "client_id": {em.Info().Apps.Client.ClientID},
		"username": {user}, "password": {PasswordOf(em, user)}, "scope": {scope}})
}

// APIScope is the dev server app's first delegated scope in full form.
func APIScope(em *emulator.Emulator) string {
	s := em.Info().Apps.Server
	return s.IdentifierURI + "/" + s.Scopes[0]
}

// UserToken is an access token for the dev server API (with profile, so name claims are in it)
// plus any extra scopes of the same API.
func UserToken(t testing.TB, em *emulator.Emulator, user string, extra ...string) string {
	t.Helper()
	scope := APIScope(em) + " openid profile offline_access " + strings.Join(extra, " ")
	return Password(t, em, user, scope)["access_token"].(string)
}

// OBO exchanges assertion for scope as the dev server app, with its secret.
func OBO(t testing.TB, em *emulator.Emulator, assertion, scope string) (int, map[string]any) {
	t.Helper()
	s := em.Info().Apps.Server
	return Post(t, em, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "client_id": {s.ClientID},
		"client_secret": {s.ClientSecret}, "assertion": {assertion}, "scope": {scope}, "requested_token_use": {"on_behalf_of"}})
}

// Claims decodes a JWT's payload without verifying it.
func Claims(t testing.TB, jwt string) map[string]any {
	t.Helper()
	return decodeSegment(t, jwt, 1)
}

// Header decodes a JWT's header without verifying it.
func Header(t testing.TB, jwt string) map[string]any {
	t.Helper()
	return decodeSegment(t, jwt, 0)
}

func decodeSegment(t testing.TB, jwt string, i int) map[string]any {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.40s", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
