package oauthproxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entramcp/entramcp/internal/proxytest"
	"github.com/entramcp/entramcp/oauthproxy"
	"github.com/entramcp/entramcp/store"
)

// docServer publishes metadata documents over TLS on 127.0.0.1 and counts fetches.
type docServer struct {
	ts   *httptest.Server
	docs map[string]string // path -> body (%s is the document's own URL)
	hits atomic.Int64
}

func startDocServer(t *testing.T) *docServer {
	d := &docServer{docs: map[string]string{}}
	d.ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.hits.Add(1)
		switch r.URL.Path {
		case "/redirect.json":
			http.Redirect(w, r, "/client.json", http.StatusFound)
			return
		case "/large.json":
			io.WriteString(w, `{"client_id":"`+d.ts.URL+`/large.json","pad":"`+strings.Repeat("a", 70<<10)+`"}`)
			return
		}
		body, ok := d.docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, strings.ReplaceAll(body, "%s", d.ts.URL+r.URL.Path))
	}))
	t.Cleanup(d.ts.Close)
	return d
}

func (d *docServer) documents(allowPrivate bool) *oauthproxy.Documents {
	pool := d.ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	// Most tests fetch many documents from one address; the limit has its own test.
	return &oauthproxy.Documents{Store: store.NewMemory(), RootCAs: pool, AllowPrivateAddresses: allowPrivate, PerMinute: 1000}
}

func TestClientIDMetadataDocuments(t *testing.T) {
	d := startDocServer(t)
	d.docs["/client.json"] = `{"client_id":"%s","client_name":"Doc Client","redirect_uris":["http://127.0.0.1/cb","https://127.0.0.1/app/cb"]}`
	d.docs["/other-id.json"] = `{"client_id":"https://elsewhere.example/client.json","redirect_uris":["http://127.0.0.1/cb"]}`
	d.docs["/bad-redirect.json"] = `{"client_id":"%s","redirect_uris":["https://evil.example/cb"]}`
	d.docs["/js-redirect.json"] = `{"client_id":"%s","redirect_uris":["javascript:alert(1)"]}`
	d.docs["/jwt.json"] = `{"client_id":"%s","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"private_key_jwt"}`
	d.docs["/no-redirects.json"] = `{"client_id":"%s"}`
	d.docs["/weak-key.json"] = `{"client_id":"%s","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"RSA","n":"` + strings.Repeat("q", 171) + `","e":"AQAB"}]}}`
	d.docs["/two-key-sources.json"] = `{"client_id":"%s","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[]},"jwks_uri":"https://x.example/k"}`
	d.docs["/keys-but-public.json"] = `{"client_id":"%s","redirect_uris":["http://127.0.0.1/cb"],"jwks":{"keys":[]}}`
	d.docs["/secret-client.json"] = `{"client_id":"%s","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"client_secret_basic"}`
	d.docs["/not-json.json"] = `<html>%s</html>`
	docs := d.documents(true)
	ctx := context.Background()

	c, err := docs.Lookup(ctx, d.ts.URL+"/client.json")
	if err != nil || c.ClientName != "Doc Client" || len(c.RedirectURIs) != 2 {
		t.Fatalf("good document: %v %+v", err, c)
	}
	if _, err := docs.Lookup(ctx, d.ts.URL+"/client.json"); err != nil || d.hits.Load() != 1 {
		t.Fatalf("second lookup must come from the cache: %v, %d fetches", err, d.hits.Load())
	}
	for path, want := range map[string]string{
		"/other-id.json":        "not its own URL",
		"/bad-redirect.json":    "evil.example",
		"/js-redirect.json":     "javascript",
		"/jwt.json":             "private_key_jwt",
		"/weak-key.json":        "no usable signing key",
		"/two-key-sources.json": "not both",
		"/keys-but-public.json": "publishes keys",
		"/secret-client.json":   "client_secret_basic",
		"/no-redirects.json":    "redirect_uris",
		"/not-json.json":        "not a JSON object",
		"/redirect.json":        "HTTP 302",
		"/large.json":           "larger than",
		"/missing.json":         "HTTP 404",
	} {
		_, err := docs.Lookup(ctx, d.ts.URL+path)
		var de *oauthproxy.DocumentError
		if !errors.As(err, &de) || !errors.Is(err, oauthproxy.ErrUnknownClient) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want a DocumentError mentioning %q", path, err, want)
		}
	}
	// Text from a hostile document is bounded before it reaches an error page.
	d.docs["/long-id.json"] = `{"client_id":"https://x.example/` + strings.Repeat("a", 5000) + `","redirect_uris":["http://127.0.0.1/cb"]}`
	if _, err := docs.Lookup(ctx, d.ts.URL+"/long-id.json"); err == nil || len(err.Error()) > 400 {
		t.Errorf("long client_id in the error: %d bytes", len(fmt.Sprint(err)))
	}
	// A failure is remembered briefly: asking again does not fetch again.
	before := d.hits.Load()
	docs.Lookup(ctx, d.ts.URL+"/missing.json")
	if d.hits.Load() != before {
		t.Fatal("a failed document was fetched again at once")
	}
	// Not document URLs at all.
	for _, id := range []string{"http://client.example/c.json", "https://client.example", "https://client.example/", "https://u@client.example/c.json",
		"https://client.example/c.json#x", "https://client.example/a/../c.json", "https://client.example/%2e%2e/c.json"} {
		if oauthproxy.IsDocumentClientID(id) {
			t.Errorf("%s accepted as a document client_id", id)
		}
	}
}

// The SSRF guard: the address actually dialled must be public, whatever the name resolves to.
func TestClientIDMetadataDocumentSSRFGuard(t *testing.T) {
	d := startDocServer(t)
	d.docs["/client.json"] = `{"client_id":"%s","redirect_uris":["http://127.0.0.1/cb"]}`
	docs := d.documents(false)
	port := d.ts.URL[strings.LastIndex(d.ts.URL, ":"):]
	for _, id := range []string{d.ts.URL + "/client.json", "https://localhost" + port + "/client.json", "https://[::1]" + port + "/client.json",
		"https://169.254.169.254/latest/meta-data.json", "https://10.0.0.1/client.json", "https://[::ffff:127.0.0.1]" + port + "/client.json"} {
		_, err := docs.Lookup(context.Background(), id)
		if err == nil || !strings.Contains(err.Error(), "private or internal address") {
			t.Errorf("%s: %v", id, err)
		}
	}
	if d.hits.Load() != 0 {
		t.Fatalf("the guard let %d requests through", d.hits.Load())
	}
	for addr, public := range map[string]bool{"8.8.8.8": true, "2606:4700::1111": true, "127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false,
		"192.168.1.1": false, "169.254.169.254": false, "100.64.0.1": false, "0.0.0.0": false, "::1": false, "fe80::1": false, "fd00::1": false,
		"::ffff:10.0.0.1": false, "64:ff9b::a00:1": false, "224.0.0.1": false, "255.255.255.255": false} {
		if got := oauthproxy.PublicAddress(netip.MustParseAddr(addr)); got != public {
			t.Errorf("PublicAddress(%s) = %v", addr, got)
		}
	}
}

// A client with a metadata document signs in through the proxy without registering.
func TestProxyFlowWithAMetadataDocumentClient(t *testing.T) {
	d := startDocServer(t)
	d.docs["/client.json"] = `{"client_id":"%s","client_name":"Doc Client","redirect_uris":["` + proxytest.RedirectURI + `"]}`
	e := startProxy(t)
	e.proxy.Registry.Documents = d.documents(true)
	clientID := d.ts.URL + "/client.json"
	verifier := strings.Repeat("d", 60)
	q := proxytest.SignIn(t, e.em.HTTPClient(), e.ts.URL, clientID, verifier, "alice")
	status, tok := proxytest.Token(t, e.ts.URL, clientID, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}})
	if status != 200 || tok["access_token"] == nil {
		t.Fatalf("token for a document client: %d %v", status, tok)
	}
	if status, who := e.call(t, tok["access_token"].(string)); status != 200 || who["oid"] != e.em.Info().Users[0].OID {
		t.Fatalf("MCP call: %d %v", status, who)
	}
	// A document that fails is explained on the page, never redirected to.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ := noFollow.Get(e.ts.URL + "/authorize?" + url.Values{"client_id": {d.ts.URL + "/missing.json"}, "redirect_uri": {proxytest.RedirectURI},
		"response_type": {"code"}, "code_challenge": {proxytest.Challenge(verifier)}, "code_challenge_method": {"S256"}}.Encode())
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("Location") != "" || !strings.Contains(string(body), "HTTP 404") {
		t.Fatalf("failing document: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
}

// Fetches of metadata documents are limited per caller address: a caller cycling through
// fresh URLs gets 429 after PerMinute fetches, with no request reaching the host; cached
// documents cost nothing, and other callers are unaffected.
func TestMetadataDocumentFetchesAreRateLimited(t *testing.T) {
	d := startDocServer(t)
	for i := range 5 {
		d.docs[fmt.Sprintf("/c%d.json", i)] = `{"client_id":"%s","redirect_uris":["` + proxytest.RedirectURI + `"]}`
	}
	e := startProxy(t)
	e.proxy.Registry.Documents = d.documents(true)
	e.proxy.Registry.Documents.PerMinute = 3
	authorize := func(path string) int {
		resp, err := http.Get(e.ts.URL + "/authorize?" + url.Values{"client_id": {d.ts.URL + path}, "redirect_uri": {proxytest.RedirectURI},
			"response_type": {"code"}, "code_challenge": {proxytest.Challenge(strings.Repeat("v", 50))}, "code_challenge_method": {"S256"}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		return resp.StatusCode
	}
	for i := range 3 {
		if got := authorize(fmt.Sprintf("/c%d.json", i)); got != 200 {
			t.Fatalf("fetch %d: %d", i, got)
		}
	}
	if got := authorize("/c3.json"); got != 429 || d.hits.Load() != 3 {
		t.Fatalf("fourth fresh document: %d after %d fetches, want 429 after 3", got, d.hits.Load())
	}
	if got := authorize("/c0.json"); got != 200 {
		t.Fatalf("a cached document must not be limited: %d", got)
	}
	// The token endpoint counts against the same budget and says so in OAuth terms.
	status, body := proxytest.Token(t, e.ts.URL, d.ts.URL+"/c4.json", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}})
	if status != 429 || body["error"] != "slow_down" {
		t.Fatalf("token endpoint over the limit: %d %v", status, body)
	}
	// Another caller (the budget is per address) still gets its document fetched.
	ctxOther := httptest.NewRequest(http.MethodGet, "/", nil) // RemoteAddr 192.0.2.1
	if _, err := e.proxy.Registry.Documents.Lookup(oauthproxy.WithCallerForTest(ctxOther), d.ts.URL+"/c4.json"); err != nil || d.hits.Load() != 4 {
		t.Fatalf("another address: %v, %d fetches", err, d.hits.Load())
	}
}

// Documents are cached as their publisher's headers say, within bounds that keep a client from
// making us refetch constantly (1 minute) or pinning a stale document for ever (24 hours).
func TestMetadataDocumentCacheFollowsHeaders(t *testing.T) {
	d := &oauthproxy.Documents{}
	for _, c := range []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{}, time.Hour},
		{http.Header{"Cache-Control": {"public, max-age=600"}}, 10 * time.Minute},
		{http.Header{"Cache-Control": {"s-maxage=7200"}}, 2 * time.Hour},
		{http.Header{"Cache-Control": {"max-age=5"}}, time.Minute},
		{http.Header{"Cache-Control": {"max-age=99999999999"}}, 24 * time.Hour},
		{http.Header{"Cache-Control": {"no-store"}}, time.Minute},
		{http.Header{"Cache-Control": {"max-age=600, no-cache"}}, time.Minute},
		{http.Header{"Cache-Control": {"max-age=banana"}}, time.Hour},
		{http.Header{"Expires": {time.Now().Add(3 * time.Hour).UTC().Format(http.TimeFormat)}}, 3 * time.Hour},
		{http.Header{"Expires": {"0"}}, time.Minute},
	} {
		if got := d.CacheForTest(c.h); got.Round(time.Minute) != c.want {
			t.Errorf("%v: cached %s, want %s", c.h, got, c.want)
		}
	}
}
