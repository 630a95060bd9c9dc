package emulator_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/entramcp/entramcp/emulator"
)

// startEmulator runs an emulator for one test, optionally with a changed configuration.
func startEmulator(t testing.TB, mutate func(*emulator.Config)) *emulator.Emulator {
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

func tokenURL(em *emulator.Emulator) string { return em.Authority() + "/oauth2/v2.0/token" }

// post sends a form to the token endpoint and decodes the JSON answer.
func post(t testing.TB, em *emulator.Emulator, form url.Values, headers ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, tokenURL(em), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return do(t, em, req)
}

func do(t testing.TB, em *emulator.Emulator, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := em.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	body := map[string]any{}
	if len(data) > 0 && json.Unmarshal(data, &body) != nil {
		t.Fatalf("%s %s: response is not JSON: %.300s", req.Method, req.URL.Path, data)
	}
	return resp.StatusCode, body
}

// password gets tokens with the password grant through the dev public client.
func password(t testing.TB, em *emulator.Emulator, user, scope string) map[string]any {
	t.Helper()
	info := em.Info()
	pw := ""
	for _, u := range info.Users {
		if u.Name == user {
			pw = u.Password
		}
	}
	status, body := post(t, em, url.Values{"grant_type": {"password"}, "client_id": {info.Apps.Client.ClientID},
		"username": {user}, "password": {pw}, "scope": {scope}})
	if status != 200 {
		t.Fatalf("password grant for %s (%s): %d %v", user, scope, status, body["error_description"])
	}
	return body
}

// apiScope is the dev server app's delegated scope in its full form.
func apiScope(em *emulator.Emulator) string {
	s := em.Info().Apps.Server
	return s.IdentifierURI + "/" + s.Scopes[0]
}

// userToken is an access token for the dev server API for user.
func userToken(t testing.TB, em *emulator.Emulator, user string) string {
	t.Helper()
	return password(t, em, user, apiScope(em)+" openid profile offline_access")["access_token"].(string)
}

// obo exchanges assertion for scope as the dev server app, with its secret.
func obo(t testing.TB, em *emulator.Emulator, assertion, scope string) (int, map[string]any) {
	t.Helper()
	s := em.Info().Apps.Server
	return post(t, em, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "client_id": {s.ClientID},
		"client_secret": {s.ClientSecret}, "assertion": {assertion}, "scope": {scope}, "requested_token_use": {"on_behalf_of"}})
}

// claims decodes a JWT's payload without verifying it.
func claims(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.40s", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func header(t testing.TB, jwt string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(jwt, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// graphGet calls the Graph stand-in with a bearer token.
func graphGet(t testing.TB, em *emulator.Emulator, token, path string, headers ...string) (int, map[string]any) {
	t.Helper()
	return graphDo(t, em, http.MethodGet, token, path, nil, headers...)
}

func graphDo(t testing.TB, em *emulator.Emulator, method, token, path string, body any, headers ...string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, em.GraphURL()+path, r)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return do(t, em, req)
}

// wantAAD checks an Entra error envelope: status, error, AADSTS code and the envelope's fields.
func wantAAD(t testing.TB, status int, body map[string]any, wantStatus int, wantErr string, wantCode int) {
	t.Helper()
	if status != wantStatus || body["error"] != wantErr {
		t.Fatalf("got %d %v (%v), want %d %s AADSTS%d", status, body["error"], body["error_description"], wantStatus, wantErr, wantCode)
	}
	codes, _ := body["error_codes"].([]any)
	if len(codes) != 1 || int(codes[0].(float64)) != wantCode {
		t.Fatalf("error_codes = %v, want [%d] (%v)", body["error_codes"], wantCode, body["error_description"])
	}
	desc, _ := body["error_description"].(string)
	for _, want := range []string{"AADSTS" + itoa(wantCode) + ":", "Trace ID:", "Correlation ID:", "Timestamp:"} {
		if !strings.Contains(desc, want) {
			t.Fatalf("error_description %q lacks %q", desc, want)
		}
	}
	for _, k := range []string{"timestamp", "trace_id", "correlation_id", "error_uri"} {
		if s, _ := body[k].(string); s == "" {
			t.Fatalf("error envelope lacks %s: %v", k, body)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func sha256Bytes(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
