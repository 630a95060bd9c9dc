package emulator_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/emutest"
)

// startEmulator runs an emulator for one test, optionally with a changed configuration.
func startEmulator(t testing.TB, mutate func(*emulator.Config)) *emulator.Emulator {
	return emutest.Start(t, mutate)
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
	return emutest.Password(t, em, user, scope)
}

// apiScope is the dev server app's delegated scope in its full form.
func apiScope(em *emulator.Emulator) string { return emutest.APIScope(em) }

// userToken is an access token for the dev server API for user.
func userToken(t testing.TB, em *emulator.Emulator, user string) string {
	t.Helper()
	return emutest.UserToken(t, em, user)
}

// obo exchanges assertion for scope as the dev server app, with its secret.
func obo(t testing.TB, em *emulator.Emulator, assertion, scope string) (int, map[string]any) {
	t.Helper()
	return emutest.OBO(t, em, assertion, scope)
}

// claims decodes a JWT's payload without verifying it.
func claims(t testing.TB, jwt string) map[string]any { t.Helper(); return emutest.Claims(t, jwt) }

func header(t testing.TB, jwt string) map[string]any { t.Helper(); return emutest.Header(t, jwt) }

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
