package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/testenv"
)

// postWith sends initialize with a raw Authorization header value (and extra headers; a key
// "Authorization2" adds a second Authorization header).
func postWith(t *testing.T, env *testenv.Env, authz string, extra map[string]string, query string) (*http.Response, string) {
	t.Helper()
	u := env.MCPURL
	if query != "" {
		u += "?" + query
	}
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(testenv.Initialize))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for k, v := range extra {
		if k == "Authorization2" {
			req.Header.Add("Authorization", v)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func tokenRequest(t *testing.T, em *emulator.Emulator, form url.Values) map[string]any {
	t.Helper()
	resp, err := em.HTTPClient().PostForm(em.Authority()+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 200 {
		t.Fatalf("token request: %d %v", resp.StatusCode, body["error_description"])
	}
	return body
}

func passwordTokenField(t *testing.T, em *emulator.Emulator, user, scope, field string) string {
	t.Helper()
	info := em.Info()
	pw := ""
	for _, u := range info.Users {
		if u.Name == user {
			pw = u.Password
		}
	}
	body := tokenRequest(t, em, url.Values{"grant_type": {"password"}, "client_id": {info.Apps.Client.ClientID}, "username": {user}, "password": {pw}, "scope": {scope}})
	return body[field].(string)
}

func passwordToken(t *testing.T, em *emulator.Emulator, user, scope string) string {
	return passwordTokenField(t, em, user, scope, "access_token")
}

func oboToken(t *testing.T, em *emulator.Emulator, assertion string) string {
	t.Helper()
	s := em.Info().Apps.Server
	return tokenRequest(t, em, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret},
		"assertion": {assertion}, "scope": {"https://graph.microsoft.com/.default"}, "requested_token_use": {"on_behalf_of"}})["access_token"].(string)
}

func clientCredentials(t *testing.T, em *emulator.Emulator, id, secret, scope string) string {
	t.Helper()
	return tokenRequest(t, em, url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}, "scope": {scope}})["access_token"].(string)
}
