package oauthproxy_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/internal/emutest"
	"github.com/entramcp/entramcp/internal/proxytest"
	"github.com/entramcp/entramcp/internal/redistest"
	"github.com/entramcp/entramcp/mcpauth"
	"github.com/entramcp/entramcp/oauthproxy"
	"github.com/entramcp/entramcp/store"
)

type proxyEnv struct {
	em       *emulator.Emulator
	ts       *httptest.Server
	proxy    *oauthproxy.Proxy   // the first replica
	replicas []*oauthproxy.Proxy // all of them
	client   string
}

// redisStores opens a new client of the Redis at url for each replica.
func redisStores(t testing.TB, url string) func() store.Store {
	return func() store.Store {
		st, err := store.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
}

func startProxy(t testing.TB) *proxyEnv {
	return startReplicas(t, 1, func() store.Store { return store.NewMemory() })
}

// startReplicas runs n proxy replicas, each with its own store client from open (sealed with
// one shared keyring) and its own key set, behind one URL that sends each request to the next
// replica in turn, as a round-robin load balancer would.
func startReplicas(t testing.TB, n int, open func() store.Store) *proxyEnv {
	return startReplicasWith(t, n, open, nil)
}

// startReplicasWith is startReplicas with the emulator's configuration changed by mutate.
func startReplicasWith(t testing.TB, n int, open func() store.Store, mutate func(*emulator.Config)) *proxyEnv {
	em := emutest.Start(t, mutate)
	info := em.Info()
	var next atomic.Int64
	muxes := make([]*http.ServeMux, n)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		muxes[int(next.Add(1))%n].ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	v, err := entra.NewVerifier(entra.VerifierOptions{TenantID: em.TenantID(), ClientID: emulator.DefaultServerAppID, RequiredScopes: []string{"mcp-access"},
		AuthorityHost: strings.TrimPrefix(em.URL(), "https://"), HTTPClient: em.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v.Start(ctx)
	kr, _ := store.NewRandomKeyring()
	shared := open()
	var all []*oauthproxy.Proxy
	for i := range n {
		st := store.Encrypted(shared, kr)
		if i > 0 {
			st = store.Encrypted(open(), kr)
		}
		keys, err := oauthproxy.LoadKeys(ctx, st, "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		p := &oauthproxy.Proxy{Store: st, Registry: &oauthproxy.Registry{Store: st, Policy: oauthproxy.RedirectPolicy{}}, Verifier: v,
			Issuer: ts.URL, Resource: ts.URL + "/mcp", AuthorityHost: strings.TrimPrefix(em.URL(), "https://"), TenantID: em.TenantID(),
			ClientID: info.Apps.Server.ClientID, Credential: entra.SecretCredential(info.Apps.Server.ClientSecret), HTTPClient: em.HTTPClient(),
			UpstreamScopes: []string{info.Apps.Server.IdentifierURI + "/mcp-access"}, RefreshGrace: 200 * time.Millisecond}
		p.Tokens = &oauthproxy.Tokens{Keys: keys, Issuer: ts.URL, Resource: ts.URL + "/mcp", Upstream: p.UpstreamToken}
		mux := http.NewServeMux()
		p.Mount(mux)
		a, _ := mcpauth.New(mcpauth.Options{Verifier: mcpauth.ByAlgorithm{"ES256": p.Tokens, "RS256": v}, ResourceURL: ts.URL + "/mcp", AuthorizationServers: []string{ts.URL}})
		mux.Handle("/mcp", a.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := entra.IdentityFromContext(r.Context())
			json.NewEncoder(w).Encode(map[string]string{"oid": id.ObjectID, "upstream_aud": audOf(id.Token())})
		})))
		muxes[i] = mux
		all = append(all, p)
	}
	return &proxyEnv{em: em, ts: ts, proxy: all[0], replicas: all, client: proxytest.Register(t, ts.URL, "Test client")}
}

func audOf(jwt string) string {
	s, _ := claimsOf(jwt)["aud"].(string)
	return s
}

func (e *proxyEnv) signIn(t *testing.T, verifier, user string) url.Values {
	t.Helper()
	return proxytest.SignIn(t, e.em.HTTPClient(), e.ts.URL, e.client, verifier, user)
}

func (e *proxyEnv) tokenReq(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	return proxytest.Token(t, e.ts.URL, e.client, form)
}

func (e *proxyEnv) call(t testing.TB, at string) (int, map[string]string) {
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+at)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b map[string]string
	json.NewDecoder(resp.Body).Decode(&b)
	return resp.StatusCode, b
}

func TestProxyFlowEndToEnd(t *testing.T) { runFlow(t, startProxy(t)) }

// Three replicas on one Redis, each request to the next replica: every step of the flow (the
// consent page on one, the callback on another, the code exchange and refresh on a third)
// works from the shared store, and so do the replay and reuse defenses.
func TestProxyFlowAcrossReplicasOnRedis(t *testing.T) {
	redis := redistest.Start(t)
	runFlow(t, startReplicas(t, 3, redisStores(t, redis.URL)))
}

func runFlow(t *testing.T, e *proxyEnv) {
	verifier := strings.Repeat("v", 60)
	q := e.signIn(t, verifier, "alice")
	if q.Get("state") != "st" || q.Get("iss") != e.ts.URL || q.Get("code") == "" {
		t.Fatalf("redirect to the client: %v", q)
	}
	code := q.Get("code")
	// Wrong verifier: refused (and the code is burnt).
	if status, b := e.tokenReq(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://127.0.0.1:9/cb"}, "code_verifier": {strings.Repeat("w", 60)}}); status != 400 || b["error"] != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %v", status, b)
	}
	q = e.signIn(t, verifier, "alice")
	status, tok := e.tokenReq(t, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {"http://127.0.0.1:9/cb"}, "code_verifier": {verifier}})
	if status != 200 || tok["refresh_token"] == nil {
		t.Fatalf("code exchange: %d %v", status, tok)
	}
	at := tok["access_token"].(string)
	if status, who := e.call(t, at); status != 200 || who["oid"] != e.em.Info().Users[0].OID || who["upstream_aud"] != emulator.DefaultServerAppID {
		t.Fatalf("MCP call with the proxy token: %d %v (the stored Entra token must be the OBO assertion)", status, who)
	}
	// Code replay: refused, and the family it issued is revoked.
	if status, _ := e.tokenReq(t, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {"http://127.0.0.1:9/cb"}, "code_verifier": {verifier}}); status != 400 {
		t.Fatalf("code replay: %d", status)
	}
	if status, _ := e.call(t, at); status != 401 {
		t.Fatalf("token from a replayed code's family still works: %d", status)
	}

	// A fresh sign-in; refresh rotates; a duplicate inside the grace window gets the same
	// answer; reuse after it revokes the family.
	q = e.signIn(t, verifier, "bob")
	_, tok = e.tokenReq(t, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {"http://127.0.0.1:9/cb"}, "code_verifier": {verifier}})
	rt := tok["refresh_token"].(string)
	status, r1 := e.tokenReq(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	_, r2 := e.tokenReq(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	if status != 200 || r1["refresh_token"] == rt || r1["access_token"] != r2["access_token"] {
		t.Fatalf("rotation and grace: %d %v %v", status, r1["refresh_token"] == rt, r1["access_token"] == r2["access_token"])
	}
	time.Sleep(300 * time.Millisecond) // past the grace window; time passing is what is tested
	if status, b := e.tokenReq(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); status != 400 || b["error"] != "invalid_grant" {
		t.Fatalf("reuse after grace: %d %v", status, b)
	}
	if status, _ := e.tokenReq(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r1["refresh_token"].(string)}}); status != 400 {
		t.Fatalf("the rotated token survived the family's revocation: %d", status)
	}
	if status, _ := e.call(t, r1["access_token"].(string)); status != 401 {
		t.Fatalf("access token of a revoked family: %d", status)
	}
	// Unknown client: 401 invalid_client so the client registers again.
	resp, _ := http.PostForm(e.ts.URL+"/token", url.Values{"client_id": {"mcp_gone"}, "grant_type": {"refresh_token"}, "refresh_token": {"x"}})
	if resp.StatusCode != 401 {
		t.Fatalf("unknown client: %d", resp.StatusCode)
	}
}

// authorizeEdited sends /authorize with a copy of q changed by edit, without following redirects.
func authorizeEdited(t *testing.T, e *proxyEnv, q url.Values, edit func(url.Values)) *http.Response {
	t.Helper()
	v := url.Values{}
	for k, x := range q {
		v[k] = append([]string{}, x...)
	}
	edit(v)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(e.ts.URL + "/authorize?" + v.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestProxyConsentBoundToTheBrowser(t *testing.T) {
	e := startProxy(t)
	q := url.Values{"client_id": {e.client}, "redirect_uri": {proxytest.RedirectURI}, "response_type": {"code"}, "state": {"st"},
		"code_challenge": {proxytest.Challenge(strings.Repeat("v", 60))}, "code_challenge_method": {"S256"}}
	resp, _ := http.Get(e.ts.URL + "/authorize?" + q.Encode())
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := url.Values{"decision": {"approve"}}
	for _, m := range regexp.MustCompile(`name="(authz|csrf)" value="([^"]+)"`).FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], m[2])
	}
	// Posted without the browser's cookie (another browser, or a CSRF attempt): refused.
	resp, _ = http.PostForm(e.ts.URL+"/consent", form)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("consent from another browser: %d", resp.StatusCode)
	}
	// Attacks before the redirect is trusted are pages, never redirects.
	for name, edit := range map[string]func(url.Values){
		"unregistered redirect": func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9/other") },
		"unknown client":        func(v url.Values) { v.Set("client_id", "mcp_nope") },
		"second redirect_uri":   func(v url.Values) { v.Add("redirect_uri", "https://evil.example/cb") },
		// Variants of the registered http://127.0.0.1:9/cb: none is the same redirect.
		"trailing slash":  func(v url.Values) { v.Set("redirect_uri", proxytest.RedirectURI+"/") },
		"path case":       func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9/CB") },
		"added query":     func(v url.Values) { v.Set("redirect_uri", proxytest.RedirectURI+"?next=https://evil.example") },
		"fragment":        func(v url.Values) { v.Set("redirect_uri", proxytest.RedirectURI+"#x") },
		"userinfo":        func(v url.Values) { v.Set("redirect_uri", "http://evil.example@127.0.0.1:9/cb") },
		"encoded dots":    func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9/cb/%2e%2e/cb") },
		"dot segments":    func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9/x/../cb") },
		"other host":      func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.2:9/cb") },
		"https scheme":    func(v url.Values) { v.Set("redirect_uri", "https://127.0.0.1:9/cb") },
		"backslash":       func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9\\@evil.example/cb") },
		"repeated client": func(v url.Values) { v.Add("client_id", "mcp_other") },
	} {
		resp := authorizeEdited(t, e, q, edit)
		if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
			t.Errorf("%s: %d %q", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// PKCE plain or missing, and a login_hint that is not a user name, go back to the client
	// as errors.
	for name, edit := range map[string]func(url.Values){
		"PKCE plain":          func(v url.Values) { v.Set("code_challenge_method", "plain") },
		"PKCE missing":        func(v url.Values) { v.Del("code_challenge_method"); v.Del("code_challenge") },
		"login_hint too long": func(v url.Values) { v.Set("login_hint", strings.Repeat("a", 257)) },
		"login_hint control":  func(v url.Values) { v.Set("login_hint", "alice\r\nX: y") },
	} {
		resp := authorizeEdited(t, e, q, edit)
		if loc := resp.Header.Get("Location"); !strings.Contains(loc, "error=invalid_request") || !strings.Contains(loc, "state=st") {
			t.Errorf("%s: %q", name, loc)
		}
	}
}

// "Don't ask again": the same browser, client and redirect skip the consent page next time, but
// only for the user who approved; another account signing in is refused and the memory dropped.
func TestProxyRemembersConsentPerBrowserAndUser(t *testing.T) {
	e := startProxy(t)
	jar, _ := cookiejar.New(nil)
	browser := e.em.HTTPClient()
	browser.Jar = jar
	browser.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), proxytest.RedirectURI) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	authorizeURL := e.ts.URL + "/authorize?" + url.Values{"client_id": {e.client}, "redirect_uri": {proxytest.RedirectURI}, "response_type": {"code"},
		"state": {"st"}, "code_challenge": {proxytest.Challenge(strings.Repeat("v", 60))}, "code_challenge_method": {"S256"}}.Encode()
	get := func() (*http.Response, []byte) {
		resp, err := browser.Get(authorizeURL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, body
	}
	signInAs := func(resp *http.Response, page []byte, user string) url.Values {
		form := url.Values{}
		for _, m := range regexp.MustCompile(`name="([a-z_]+)" value="([^"]*)"`).FindAllStringSubmatch(string(page), -1) {
			form.Set(m[1], strings.ReplaceAll(m[2], "&amp;", "&"))
		}
		form.Set("emu_user", user)
		resp, err := browser.PostForm(resp.Request.URL.Scheme+"://"+resp.Request.URL.Host+resp.Request.URL.Path, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return loc.Query()
	}

	// First time: the consent page, "don't ask again" ticked, alice signs in.
	_, page := get()
	if !strings.Contains(string(page), `name="remember"`) {
		t.Fatalf("consent page without the remember option: %s", page)
	}
	resp, signin := proxytest.ApproveWith(t, browser, e.ts.URL, page, url.Values{"remember": {"1"}})
	if q := signInAs(resp, signin, "alice"); q.Get("code") == "" {
		t.Fatalf("first sign-in: %v", q)
	}
	// Second time: no consent page; Entra's session signs alice in; a code comes back.
	resp, _ = get()
	if loc, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode != http.StatusFound || loc.Query().Get("code") == "" {
		t.Fatalf("remembered consent: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Forcing the page still works.
	if resp, page := func() (*http.Response, []byte) {
		r, _ := browser.Get(authorizeURL + "&prompt=consent")
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		return r, b
	}(); resp.StatusCode != 200 || !strings.Contains(string(page), `id="approve"`) {
		t.Fatalf("prompt=consent must show the page: %d", resp.StatusCode)
	}
	// prompt=none: with the approval remembered, no page anywhere (Entra's session is
	// reused) and a code comes back; in a browser without it, consent_required straight back
	// to the client, nothing sent to Entra.
	noUI := func(b *http.Client) *url.URL {
		r, err := b.Get(authorizeURL + "&prompt=none")
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		loc, _ := url.Parse(r.Header.Get("Location"))
		if r.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), proxytest.RedirectURI) {
			t.Fatalf("prompt=none must end at the client without a page: %d %v", r.StatusCode, loc)
		}
		return loc
	}
	if loc := noUI(browser); loc.Query().Get("code") == "" {
		t.Fatalf("prompt=none with a remembered approval: %v", loc)
	}
	stranger := &http.Client{CheckRedirect: browser.CheckRedirect, Transport: browser.Transport}
	if loc := noUI(stranger); loc.Query().Get("error") != "consent_required" || loc.Query().Get("state") != "st" {
		t.Fatalf("prompt=none without an approval: %v", loc)
	}
	// Without Entra's session cookie (the approval still remembered here): Entra cannot sign
	// in without UI, and the client is told so in OIDC terms.
	ours, _ := url.Parse(e.ts.URL)
	onlyOurs, _ := cookiejar.New(nil)
	for _, c := range jar.Cookies(ours) { // both listen on 127.0.0.1, and cookies ignore ports
		if c.Name != "ESTSAUTH" {
			onlyOurs.SetCookies(ours, []*http.Cookie{c})
		}
	}
	if loc := noUI(&http.Client{Transport: browser.Transport, Jar: onlyOurs, CheckRedirect: browser.CheckRedirect}); loc.Query().Get("error") != "login_required" && loc.Query().Get("error") != "interaction_required" {
		t.Fatalf("prompt=none after Entra's session ended: %v", loc)
	}

	// Bob on the same browser (Entra session gone): the remembered consent is alice's, so bob is refused...
	emJar, _ := cookiejar.New(nil)
	deviceOnly := &proxyCookiesOnly{inner: jar, proxyHost: strings.TrimPrefix(e.ts.URL, "http://"), other: emJar}
	browser.Jar = deviceOnly
	resp, signin = get()
	if resp.StatusCode != 200 || !strings.Contains(string(signin), `id="user-bob"`) {
		t.Fatalf("expected Entra's sign-in page straight away: %d", resp.StatusCode)
	}
	if q := signInAs(resp, signin, "bob"); q.Get("error") != "access_denied" || q.Get("code") != "" {
		t.Fatalf("bob under alice's remembered consent: %v", q)
	}
	// ...and the memory is gone: the next visit shows the consent page.
	if resp, page := get(); resp.StatusCode != 200 || !strings.Contains(string(page), `id="approve"`) {
		t.Fatalf("after a mismatch the consent page must come back: %d", resp.StatusCode)
	}
}

// proxyCookiesOnly keeps the proxy's cookies from inner and gives every other host a fresh jar:
// the same browser after its Entra session ended.
type proxyCookiesOnly struct {
	inner     http.CookieJar
	proxyHost string
	other     http.CookieJar
}

func (j *proxyCookiesOnly) jar(u *url.URL) http.CookieJar {
	if u.Host == j.proxyHost {
		return j.inner
	}
	return j.other
}

func (j *proxyCookiesOnly) SetCookies(u *url.URL, c []*http.Cookie) { j.jar(u).SetCookies(u, c) }
func (j *proxyCookiesOnly) Cookies(u *url.URL) []*http.Cookie       { return j.jar(u).Cookies(u) }

// Redis goes away: the token and registration endpoints answer 503 temporarily_unavailable
// (never invalid_grant, so clients keep their refresh tokens), MCP calls with proxy tokens get
// 503, nothing is consumed; when Redis returns, the same refresh token works.
func TestProxyDuringARedisOutage(t *testing.T) {
	redis := redistest.StartDurable(t)
	e := startReplicas(t, 2, redisStores(t, redis.URL))
	verifier := strings.Repeat("v", 60)
	q := e.signIn(t, verifier, "alice")
	_, tok := e.tokenReq(t, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}})
	rt, at := tok["refresh_token"].(string), tok["access_token"].(string)

	redis.Stop()
	for i := range 2 { // both replicas
		if status, b := e.tokenReq(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); status != 503 || b["error"] != "temporarily_unavailable" {
			t.Fatalf("refresh during the outage (replica %d): %d %v", i, status, b)
		}
		if status, _ := e.call(t, at); status != 503 {
			t.Fatalf("MCP call during the outage (replica %d): %d", i, status)
		}
	}
	resp, err := http.Post(e.ts.URL+"/register", "application/json", strings.NewReader(`{"client_name":"x","redirect_uris":["http://127.0.0.1:9/cb"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("registration during the outage: %d", resp.StatusCode)
	}

	redis.Restart(t)
	var status int
	var b map[string]any
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if status, b = e.tokenReq(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); status != 503 {
			break
		}
	}
	if status != 200 || b["refresh_token"] == nil {
		t.Fatalf("the refresh token after Redis came back: %d %v", status, b)
	}
	if status, who := e.call(t, b["access_token"].(string)); status != 200 || who["oid"] != e.em.Info().Users[0].OID {
		t.Fatalf("MCP call after the outage: %d %v", status, who)
	}
}

// Two replicas receive the same refresh token at the same moment (a client retrying, or two
// tabs): every request gets the one rotated answer and the family survives (reuse after the
// grace window, which revokes it, is covered by runFlow).
func TestConcurrentRefreshAcrossReplicas(t *testing.T) {
	redis := redistest.Start(t)
	e := startReplicas(t, 2, redisStores(t, redis.URL))
	verifier := strings.Repeat("v", 60)
	for round := range 5 {
		q := e.signIn(t, verifier, "alice")
		_, tok := e.tokenReq(t, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}})
		rt := tok["refresh_token"].(string)
		answers := e.refreshTogether(t, rt, 4, fmt.Sprintf("round %d", round))
		if status, _ := e.call(t, answers[0]["access_token"].(string)); status != 200 {
			t.Fatalf("round %d: the family was revoked by a concurrent duplicate: %d", round, status)
		}
	}
}

// refreshTogether sends n refreshes of rt at once and requires one answer for all: 200 and the
// same token pair (the grace window). It returns the answers.
func (e *proxyEnv) refreshTogether(t *testing.T, rt string, n int, what string) []map[string]any {
	t.Helper()
	var wg sync.WaitGroup
	answers := make([]map[string]any, n)
	statuses := make([]int, n)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], answers[i] = e.tokenReq(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		}()
	}
	wg.Wait()
	for i := range answers {
		if statuses[i] != 200 || answers[i]["access_token"] != answers[0]["access_token"] || answers[i]["refresh_token"] != answers[0]["refresh_token"] {
			t.Fatalf("%s: parallel refreshes disagree: %v %v", what, statuses, answers[i])
		}
	}
	return answers
}

// rtCounter counts live refresh-token records written through it (Put minus Delete), to
// show that a refresh that lost a race leaves no record behind.
type rtCounter struct {
	store.Store
	live *atomic.Int64
}

func (c rtCounter) Put(ctx context.Context, kind, key string, v []byte, ttl time.Duration) error {
	if kind == "rt" {
		c.live.Add(1)
	}
	return c.Store.Put(ctx, kind, key, v, ttl)
}

func (c rtCounter) Delete(ctx context.Context, kind, key string) error {
	if kind == "rt" {
		c.live.Add(-1)
	}
	return c.Store.Delete(ctx, kind, key)
}

// Parallel refreshes of one token while the Entra token needs renewing (every refresh here
// renews it, and Entra answers slowly): one replica renews, the others wait for it instead
// of failing, and all get the one rotated answer; Entra sees one refresh; the losers' token
// records are gone.
func TestConcurrentRefreshDuringEntraRenewal(t *testing.T) {
	redis := redistest.Start(t)
	var live atomic.Int64
	open := redisStores(t, redis.URL)
	e := startReplicasWith(t, 3, func() store.Store { return rtCounter{open(), &live} }, func(c *emulator.Config) {
		c.Settings.AccessTokenLifetimeMin = emulator.Duration(8 * time.Minute) // 3 min left: under the renewal margin
		c.Settings.AccessTokenLifetimeMax = emulator.Duration(8 * time.Minute)
	})
	for _, p := range e.replicas {
		// The test's 200 ms grace is shorter than a renewal under a loaded race-detector run;
		// the duplicates must be judged against a realistic window (production: 10 s).
		p.RefreshGrace = 5 * time.Second
	}
	verifier := strings.Repeat("v", 60)
	for round := range 3 {
		q := e.signIn(t, verifier, "alice")
		_, tok := e.tokenReq(t, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}})
		rt := tok["refresh_token"].(string)
		e.em.SetLatency(emulator.Login, 300*time.Millisecond)
		before, liveBefore := e.em.Stats(), live.Load()
		answers := e.refreshTogether(t, rt, 4, fmt.Sprintf("round %d, during the renewal", round))
		e.em.SetLatency(emulator.Login, 0)
		if d := e.em.Stats().Token["refresh_token"] - before.Token["refresh_token"]; d != 1 {
			t.Errorf("round %d: Entra refreshes %d, want 1", round, d)
		}
		if d := live.Load() - liveBefore; d != 1 {
			t.Errorf("round %d: %d new refresh-token records, want 1 (no orphans from the losers)", round, d)
		}
		if status, _ := e.call(t, answers[0]["access_token"].(string)); status != 200 {
			t.Fatalf("round %d: MCP call with the answer: %d", round, status)
		}
	}
}

// The proxy costs Entra one code redemption per sign-in and nothing per refresh while the
// stored Entra token is fresh, nor per MCP call (signing keys stay cached).
func TestProxyEntraRoundTrips(t *testing.T) {
	e := startProxy(t)
	verifier := strings.Repeat("v", 60)
	before := e.em.Stats()
	q := e.signIn(t, verifier, "alice")
	_, tok := e.tokenReq(t, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}})
	rt := tok["refresh_token"].(string)
	for range 3 {
		_, next := e.tokenReq(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		rt = next["refresh_token"].(string)
		if status, _ := e.call(t, next["access_token"].(string)); status != 200 {
			t.Fatalf("MCP call: %d", status)
		}
	}
	after := e.em.Stats()
	if d := after.Token["authorization_code"] - before.Token["authorization_code"]; d != 1 {
		t.Errorf("Entra code redemptions for one sign-in: %d, want 1", d)
	}
	if d := after.Token["refresh_token"] - before.Token["refresh_token"]; d != 0 {
		t.Errorf("Entra refreshes for 3 proxy refreshes of a fresh grant: %d, want 0", d)
	}
	if d := after.JWKS - before.JWKS; d != 0 {
		t.Errorf("JWKS fetches during the flow: %d, want 0", d)
	}
}

// When the stored Entra token is near expiry, a proxy refresh renews it at Entra first (one
// call); when Entra refuses (the user's sessions were revoked), the grant is revoked and the
// client told to sign in again.
func TestProxyRenewsTheEntraToken(t *testing.T) {
	e := startReplicasWith(t, 1, func() store.Store { return store.NewMemory() }, func(c *emulator.Config) {
		c.Settings.AccessTokenLifetimeMin = emulator.Duration(8 * time.Minute) // iat is back-dated 5 min: 3 min left, under the renewal margin
		c.Settings.AccessTokenLifetimeMax = emulator.Duration(8 * time.Minute)
	})
	verifier := strings.Repeat("v", 60)
	q := e.signIn(t, verifier, "alice")
	_, tok := e.tokenReq(t, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}})
	if tok["refresh_token"] == nil {
		t.Fatalf("code exchange: %v (sign-in: %v)", tok, q)
	}
	before := e.em.Stats()
	status, next := e.tokenReq(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	if status != 200 {
		t.Fatalf("refresh: %d %v", status, next)
	}
	if d := e.em.Stats().Token["refresh_token"] - before.Token["refresh_token"]; d != 1 {
		t.Fatalf("Entra refreshes: %d, want 1", d)
	}
	if status, who := e.call(t, next["access_token"].(string)); status != 200 || who["upstream_aud"] != emulator.DefaultServerAppID {
		t.Fatalf("MCP call with the renewed grant: %d %v", status, who)
	}
	// Entra refuses the renewal: the grant ends, and the client learns it must sign in again.
	if err := e.em.RevokeSessions("alice"); err != nil {
		t.Fatal(err)
	}
	status, b := e.tokenReq(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next["refresh_token"].(string)}})
	if status != 400 || b["error"] != "invalid_grant" {
		t.Fatalf("refresh after Entra revoked the sessions: %d %v", status, b)
	}
	if status, _ := e.call(t, next["access_token"].(string)); status != 401 {
		t.Fatalf("access token of a grant Entra ended: %d", status)
	}
}

// Step-up: a client that needs another scope of our API asks for it (short or full name) and
// the proxy asks Entra for it too when the server lists it as a step-up scope; the new token
// carries it, and the token response names the scopes granted. Scopes the server does not
// know, and other resources' scopes, are ignored rather than failing the sign-in at Entra.
func TestProxyForwardsOurScopesForStepUp(t *testing.T) {
	e := startReplicasWith(t, 1, func() store.Store { return store.NewMemory() }, func(c *emulator.Config) {
		for _, app := range c.Applications {
			if app.AppID == emulator.DefaultServerAppID {
				app.API.OAuth2PermissionScopes = append(app.API.OAuth2PermissionScopes, emulator.PermissionScope{
					ID: "6b1e4c2a-8d3f-4e5a-9b7c-2d4f6a8c0e13", Value: "mcp-admin", Type: "User", IsEnabled: true, UserConsentDisplayName: "Administer"})
			}
		}
	})
	e.proxy.ExtraScopes = func() []string { return []string{"mcp-admin"} }
	api := "api://" + emulator.DefaultServerAppID + "/"
	verifier := strings.Repeat("v", 60)
	grant := func(scope string) string {
		q := proxytest.SignInWith(t, e.em.HTTPClient(), e.ts.URL, e.client, verifier, "alice", url.Values{"scope": {scope}})
		status, tok := e.tokenReq(t, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {proxytest.RedirectURI}, "code_verifier": {verifier}})
		if status != 200 {
			t.Fatalf("scope %q: %d %v", scope, status, tok)
		}
		if c := claimsOf(tok["access_token"].(string)); tok["scope"] != api+strings.ReplaceAll(c["scope"].(string), " ", " "+api) {
			t.Fatalf("token response scope %q, token scope %q", tok["scope"], c["scope"])
		}
		return tok["scope"].(string)
	}
	for scope, want := range map[string]string{
		"mcp-admin offline_access https://graph.microsoft.com/User.Read": api + "mcp-access " + api + "mcp-admin",
		api + "mcp-admin":            api + "mcp-access " + api + "mcp-admin",
		"read write mcp:tools":       api + "mcp-access", // unknown: ignored, the sign-in still works
		"":                           api + "mcp-access",
		api + "nope " + api + "mcp-": api + "mcp-access",
	} {
		if got := grant(scope); got != want {
			t.Errorf("scope %q: granted %q, want %q", scope, got, want)
		}
	}
}

func claimsOf(jwt string) map[string]any {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	json.Unmarshal(b, &c)
	return c
}
