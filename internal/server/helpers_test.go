package server_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/internal/emutest"
	"github.com/entramcp/entramcp/internal/server"
	"github.com/entramcp/entramcp/internal/testenv"
	"github.com/entramcp/entramcp/mcpauth"
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

func passwordTokenField(t *testing.T, em *emulator.Emulator, user, scope, field string) string {
	t.Helper()
	return emutest.Password(t, em, user, scope)[field].(string)
}

func passwordToken(t *testing.T, em *emulator.Emulator, user, scope string) string {
	return passwordTokenField(t, em, user, scope, "access_token")
}

func oboToken(t *testing.T, em *emulator.Emulator, assertion string) string {
	t.Helper()
	status, body := emutest.OBO(t, em, assertion, "https://graph.microsoft.com/.default")
	if status != 200 {
		t.Fatalf("OBO: %d %v", status, body)
	}
	return body["access_token"].(string)
}

func clientCredentials(t *testing.T, em *emulator.Emulator, id, secret, scope string) string {
	t.Helper()
	return emutest.Token(t, em, url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}, "scope": {scope}})["access_token"].(string)
}

type serverConfig = server.Config

func identityOf(req mcp.Request) *entra.Identity { return mcpauth.IdentityFrom(req) }

func connectURL(t *testing.T, mcpURL, token string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "replica-client", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint: mcpURL, HTTPClient: &http.Client{Transport: bearerTransport{token, http.DefaultTransport}},
	}, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", mcpURL, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// redisDump returns every key and string value in the Redis database, for leak checks.
func redisDump(t *testing.T, url string) string {
	t.Helper()
	opt, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opt)
	defer c.Close()
	var b strings.Builder
	keys, _ := c.Keys(context.Background(), "*").Result()
	for _, k := range keys {
		v, _ := c.Get(context.Background(), k).Result()
		b.WriteString(k + "=" + v + "\n")
	}
	return b.String()
}
