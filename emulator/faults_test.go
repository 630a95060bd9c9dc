package emulator_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/entramcp/entramcp/emulator"
)

func controlPost(t *testing.T, em *emulator.Emulator, path string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, em.URL()+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	return do(t, em, req)
}

func clientCredentials(t *testing.T, em *emulator.Emulator) (int, map[string]any) {
	s := em.Info().Apps.Server
	return post(t, em, url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret}, "scope": {graphDefault}})
}

func TestFaultInjection(t *testing.T) {
	em := startEmulator(t, nil)

	status, body := controlPost(t, em, "/_emulator/faults", map[string]any{"target": "login", "fail_next": 2, "failure": map[string]any{"status": 503, "error": "temporarily_unavailable", "code": 50198}})
	if status != 200 {
		t.Fatalf("set fault: %d %v", status, body)
	}
	for i := 0; i < 2; i++ {
		status, body = clientCredentials(t, em)
		wantAAD(t, status, body, 503, "temporarily_unavailable", 50198)
	}
	if status, body = clientCredentials(t, em); status != 200 {
		t.Fatalf("third request after fail_next=2: %d %v", status, body)
	}

	tok := graphTokenFor(t, em, "alice", graphDefault)
	if status, _ := controlPost(t, em, "/_emulator/faults", map[string]any{"target": "graph", "throttle_next": 1, "retry_after": "1.5"}); status != 200 {
		t.Fatal("set throttle")
	}
	req, _ := http.NewRequest(http.MethodGet, em.GraphURL()+"/v1.0/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := em.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1.5" {
		t.Fatalf("throttled: %d Retry-After=%q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if status, _ := graphGet(t, em, tok, "/v1.0/me"); status != 200 {
		t.Fatalf("after throttling: %d", status)
	}

	// A 503 outage of Graph leaves login working.
	if err := em.SetOutage(emulator.Graph, emulator.Outage503, 0); err != nil {
		t.Fatal(err)
	}
	if status, body := graphGet(t, em, tok, "/v1.0/me"); status != 503 || body["error"].(map[string]any)["code"] != "serviceNotAvailable" {
		t.Fatalf("graph outage: %d %v", status, body)
	}
	if status, _ := clientCredentials(t, em); status != 200 {
		t.Fatal("login broke during a Graph outage")
	}
	em.ClearOutage(emulator.Graph)

	// A refused outage closes the socket: connection refused, then service comes back.
	if err := em.SetOutage(emulator.Login, emulator.OutageRefuse, 0); err != nil {
		t.Fatal(err)
	}
	c := em.HTTPClient()
	_, err = c.Get(em.Authority() + "/v2.0/.well-known/openid-configuration")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("during a refused outage: err = %v, want connection refused", err)
	}
	if err := em.ClearOutage(emulator.Login); err != nil {
		t.Fatal(err)
	}
	if status, _ := clientCredentials(t, em); status != 200 {
		t.Fatal("login did not come back after the outage")
	}

	// Over HTTP an outage needs a duration, since the controls may be behind it.
	if status, _ := controlPost(t, em, "/_emulator/faults", map[string]any{"target": "login", "outage": "refuse"}); status != 400 {
		t.Fatalf("outage without duration: %d, want 400", status)
	}
	if status, _ := controlPost(t, em, "/_emulator/faults", map[string]any{"target": "moon", "latency": "1s"}); status != 400 {
		t.Fatalf("unknown target: %d, want 400", status)
	}

	// Latency is added to every request.
	em.SetLatency(emulator.Login, 150*time.Millisecond)
	start := time.Now()
	clientCredentials(t, em)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("request took %v with 150ms latency injected", d)
	}
	em.ResetFaults()
}

func TestStatsContract(t *testing.T) {
	em := startEmulator(t, nil)
	graphTokenFor(t, em, "alice", graphDefault)
	resp, err := em.HTTPClient().Get(em.URL() + "/_emulator/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		Token map[string]int `json:"token"`
		Graph map[string]int `json:"graph"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"authorization_code", "refresh_token", "client_credentials", "password", "on_behalf_of"} {
		if _, ok := s.Token[k]; !ok {
			t.Errorf("stats.token lacks %s: %v", k, s.Token)
		}
	}
	if s.Token["password"] != 1 || s.Token["on_behalf_of"] != 1 || s.Graph == nil {
		t.Errorf("stats: %+v", s)
	}
}

func TestDeviceCodeFlow(t *testing.T) {
	em := startEmulator(t, nil)
	req, _ := http.NewRequest(http.MethodPost, em.Authority()+"/oauth2/v2.0/devicecode", bytes.NewBufferString(url.Values{
		"client_id": {emulator.AzureCLIAppID}, "scope": {"https://graph.microsoft.com/Application.ReadWrite.All offline_access"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	status, dc := do(t, em, req)
	if status != 200 || dc["user_code"] == nil || dc["verification_uri"] == nil {
		t.Fatalf("devicecode: %d %v", status, dc)
	}
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "client_id": {emulator.AzureCLIAppID}, "device_code": {dc["device_code"].(string)}}
	status, body := post(t, em, form)
	wantAAD(t, status, body, 400, "authorization_pending", 70016)
	if status, body := controlPost(t, em, "/_emulator/device/approve", map[string]any{"user_code": dc["user_code"], "user": "alice"}); status != 200 {
		t.Fatalf("approve: %d %v", status, body)
	}
	status, body = post(t, em, form)
	if status != 200 || body["refresh_token"] == nil {
		t.Fatalf("device token: %d %v", status, body)
	}
	if c := claims(t, body["access_token"].(string)); c["scp"] != "Application.ReadWrite.All" || c["appid"] != emulator.AzureCLIAppID {
		t.Fatalf("device token claims: %v", c)
	}
	status, body = post(t, em, form)
	wantAAD(t, status, body, 400, "invalid_grant", 54005)
}
