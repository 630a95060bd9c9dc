// Package proxytest drives the OAuth proxy's browser flow in tests the way an MCP client and a
// user would: register, authorize, approve our consent page, pick a user on the emulator's
// sign-in page, and exchange the code.
package proxytest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// RedirectURI is the loopback redirect the test client registers; nothing listens there.
const RedirectURI = "http://127.0.0.1:9/cb"

// Register registers a client by Dynamic Client Registration and returns its client_id.
func Register(t testing.TB, base, name string) string {
	t.Helper()
	return RegisterRedirect(t, base, name, RedirectURI)
}

// RegisterRedirect is Register with the client's own redirect URI.
func RegisterRedirect(t testing.TB, base, name, redirect string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"client_name": name, "redirect_uris": []string{redirect}})
	resp, err := http.Post(base+"/register", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reg map[string]any
	json.NewDecoder(resp.Body).Decode(&reg)
	id, _ := reg["client_id"].(string)
	if resp.StatusCode != http.StatusCreated || id == "" {
		t.Fatalf("registration: %d %v", resp.StatusCode, reg)
	}
	return id
}

// Challenge is the S256 code challenge of verifier.
func Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

var hidden = regexp.MustCompile(`name="(authz|csrf)" value="([^"]+)"`)
var entraHidden = regexp.MustCompile(`name="([a-z_]+)" value="([^"]*)"`)

// SignIn runs the browser part for user (an emulator user name such as "alice"): authorize,
// consent, Entra's sign-in page, callback. browser must trust the emulator's CA (it gets its
// own cookie jar). It returns the query of the redirect back to the client (code, state, iss).
func SignIn(t testing.TB, browser *http.Client, base, clientID, verifier, user string) url.Values {
	t.Helper()
	return SignInWith(t, browser, base, clientID, verifier, user, nil)
}

// SignInWith is SignIn with extra authorization request parameters (scope, prompt, ...).
func SignInWith(t testing.TB, browser *http.Client, base, clientID, verifier, user string, extra url.Values) url.Values {
	t.Helper()
	q := url.Values{"client_id": {clientID}, "redirect_uri": {RedirectURI}, "response_type": {"code"}, "state": {"st"},
		"code_challenge": {Challenge(verifier)}, "code_challenge_method": {"S256"}, "resource": {base + "/mcp"}}
	for k, v := range extra {
		q[k] = v
	}
	back, _ := browse(t, browser, base+"/authorize?"+q.Encode(), user, func(u *url.URL) bool { return strings.HasPrefix(u.String(), RedirectURI) })
	return back.Query()
}

// Browse is the user's browser for a real MCP client that printed or "opened" authURL (our
// /authorize): it approves our consent page, picks user on the emulator's sign-in page, and
// follows the redirects back to the client's own loopback listener, which receives the code as
// it would from a desktop browser. It returns the URL it delivered the code to and that page's
// body.
func Browse(t testing.TB, browser *http.Client, authURL, user string) (*url.URL, []byte) {
	t.Helper()
	base, err := url.Parse(authURL)
	if err != nil {
		t.Fatalf("authorization URL %q: %v", authURL, err)
	}
	redirect, err := url.Parse(base.Query().Get("redirect_uri"))
	if err != nil || redirect.Host == "" {
		t.Fatalf("authorization URL without a redirect_uri: %s", authURL)
	}
	// Stop at nothing: the last hop is the client's listener. Its URL is remembered on the way.
	return browse(t, browser, authURL, user, func(*url.URL) bool { return false })
}

// browse drives the flow from authURL; stop says which redirect ends it unfollowed.
func browse(t testing.TB, browser *http.Client, authURL, user string, stop func(*url.URL) bool) (*url.URL, []byte) {
	t.Helper()
	u, _ := url.Parse(authURL)
	base := u.Scheme + "://" + u.Host
	clientRedirect := u.Query().Get("redirect_uri")
	var back *url.URL
	jar, _ := cookiejar.New(nil)
	browser = &http.Client{Transport: browser.Transport, Jar: jar, Timeout: 30 * time.Second}
	browser.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), clientRedirect) {
			back = r.URL
		}
		if stop(r.URL) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := browser.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("consent page: %d %s", resp.StatusCode, page)
	}
	resp, signin := Approve(t, browser, base, page) // -> Entra's sign-in page
	if !strings.Contains(string(signin), `id="user-`+user+`"`) {
		t.Fatalf("expected the emulator's sign-in page: %.300s", signin)
	}
	entraForm := url.Values{}
	for _, m := range entraHidden.FindAllStringSubmatch(string(signin), -1) {
		entraForm.Set(m[1], strings.ReplaceAll(m[2], "&amp;", "&"))
	}
	entraForm.Set("emu_user", user) // the page's user buttons also carry emu_user; the click decides
	resp, err = browser.PostForm(resp.Request.URL.Scheme+"://"+resp.Request.URL.Host+resp.Request.URL.Path, entraForm)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if back == nil {
		t.Fatalf("after Entra sign-in: no redirect to the client (%d %s %.300s)", resp.StatusCode, resp.Request.URL, body)
	}
	if e := back.Query().Get("error"); e != "" {
		t.Fatalf("the client got an error: %s %s", e, back.Query().Get("error_description"))
	}
	return back, body
}

// Approve submits "approve" on the proxy's consent page (its HTML in page) from browser, which
// must hold the cookie the page set, and follows the redirects. It returns the last response
// and its body.
func Approve(t testing.TB, browser *http.Client, base string, page []byte) (*http.Response, []byte) {
	t.Helper()
	return ApproveWith(t, browser, base, page, nil)
}

// ApproveWith is Approve with extra form fields (remember=1 ticks "don't ask again").
func ApproveWith(t testing.TB, browser *http.Client, base string, page []byte, extra url.Values) (*http.Response, []byte) {
	t.Helper()
	form := url.Values{"decision": {"approve"}}
	for k, v := range extra {
		form[k] = v
	}
	for _, m := range hidden.FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], m[2])
	}
	if form.Get("authz") == "" || form.Get("csrf") == "" {
		t.Fatalf("not the consent page: %.300s", page)
	}
	resp, err := browser.PostForm(base+"/consent", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body
}

// Token posts form (plus client_id) to the proxy's token endpoint and decodes the answer.
func Token(t testing.TB, base, clientID string, form url.Values) (int, map[string]any) {
	t.Helper()
	form.Set("client_id", clientID)
	resp, err := http.PostForm(base+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b map[string]any
	json.NewDecoder(resp.Body).Decode(&b)
	return resp.StatusCode, b
}

// AccessToken signs user in and exchanges the code: the whole flow, for tests that need a
// proxy token and do not examine the steps.
func AccessToken(t testing.TB, browser *http.Client, base, user string) string {
	t.Helper()
	client := Register(t, base, "Test client")
	verifier := strings.Repeat("v", 60)
	q := SignIn(t, browser, base, client, verifier, user)
	status, tok := Token(t, base, client, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {RedirectURI}, "code_verifier": {verifier}})
	at, _ := tok["access_token"].(string)
	if status != http.StatusOK || at == "" {
		t.Fatalf("code exchange: %d %v", status, tok)
	}
	return at
}
