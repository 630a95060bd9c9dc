// Package signin drives the OAuth proxy's browser flow the way an MCP client and its user
// would: register, authorize, approve our consent page, pick a user on the emulator's sign-in
// page, and exchange the code. It returns errors, so the load tool can use it; tests use the
// proxytest wrappers, which fail the test instead.
package signin

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// RedirectURI is a loopback redirect for clients that catch the code before it is delivered
// (SignIn stops there); nothing listens on it.
const RedirectURI = "http://127.0.0.1:9/cb"

// Register registers a client by Dynamic Client Registration and returns its client_id.
func Register(ctx context.Context, client *http.Client, base, name, redirect string) (string, error) {
	body, _ := json.Marshal(map[string]any{"client_name": name, "redirect_uris": []string{redirect}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/register", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var reg map[string]any
	json.NewDecoder(resp.Body).Decode(&reg)
	id, _ := reg["client_id"].(string)
	if resp.StatusCode != http.StatusCreated || id == "" {
		return "", fmt.Errorf("registration: %d %v", resp.StatusCode, reg)
	}
	return id, nil
}

// Challenge is the S256 code challenge of verifier.
func Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// AuthorizeURL is the authorization request a client makes (PKCE S256, resource = base/mcp,
// state "st"), with extra parameters added.
func AuthorizeURL(base, clientID, verifier string, extra url.Values) string {
	q := url.Values{"client_id": {clientID}, "redirect_uri": {RedirectURI}, "response_type": {"code"}, "state": {"st"},
		"code_challenge": {Challenge(verifier)}, "code_challenge_method": {"S256"}, "resource": {base + "/mcp"}}
	for k, v := range extra {
		q[k] = v
	}
	return base + "/authorize?" + q.Encode()
}

// SignIn runs the browser part for user (an emulator user name such as "alice") up to the
// redirect back to RedirectURI, and returns that redirect's query (code, state, iss).
// browser must trust the emulator's CA; it gets a cookie jar of its own.
func SignIn(ctx context.Context, browser *http.Client, authURL, user string) (url.Values, error) {
	back, _, err := Browse(ctx, browser, authURL, user, func(u *url.URL) bool { return strings.HasPrefix(u.String(), RedirectURI) })
	if err != nil {
		return nil, err
	}
	return back.Query(), nil
}

var (
	consentFields = regexp.MustCompile(`name="(authz|csrf)" value="([^"]+)"`)
	entraFields   = regexp.MustCompile(`name="([a-z_]+)" value="([^"]*)"`)
)

// Browse is the user's browser from authURL (our /authorize): it approves our consent page,
// picks user on the emulator's sign-in page and follows the redirects back to the client. stop
// says which redirect to leave unfollowed (nil: follow them all, so a client's own loopback
// listener receives the code). It returns the client redirect URL and the last page's body.
func Browse(ctx context.Context, browser *http.Client, authURL, user string, stop func(*url.URL) bool) (*url.URL, []byte, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return nil, nil, err
	}
	clientRedirect := u.Query().Get("redirect_uri")
	if clientRedirect == "" {
		return nil, nil, errors.New("the authorization URL has no redirect_uri")
	}
	base := u.Scheme + "://" + u.Host
	var back *url.URL
	jar, _ := cookiejar.New(nil)
	browser = &http.Client{Transport: browser.Transport, Jar: jar, Timeout: 30 * time.Second}
	browser.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), clientRedirect) {
			back = r.URL
		}
		if stop != nil && stop(r.URL) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	resp, err := browser.Do(req)
	if err != nil {
		return nil, nil, err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") == "" {
		return nil, nil, fmt.Errorf("consent page: %d %.300s", resp.StatusCode, page)
	}
	resp, signin, err := Approve(ctx, browser, base, page, nil) // -> Entra's sign-in page
	if err != nil {
		return nil, nil, err
	}
	if !strings.Contains(string(signin), `id="user-`+user+`"`) {
		return nil, nil, fmt.Errorf("expected the emulator's sign-in page: %.300s", signin)
	}
	form := url.Values{}
	for _, m := range entraFields.FindAllStringSubmatch(string(signin), -1) {
		form.Set(m[1], strings.ReplaceAll(m[2], "&amp;", "&"))
	}
	form.Set("emu_user", user) // the page's user buttons also carry emu_user; the click decides
	resp, err = postForm(ctx, browser, resp.Request.URL.Scheme+"://"+resp.Request.URL.Host+resp.Request.URL.Path, form)
	if err != nil {
		return nil, nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if back == nil {
		return nil, nil, fmt.Errorf("after Entra sign-in: no redirect to the client (%d %s %.300s)", resp.StatusCode, resp.Request.URL, body)
	}
	if e := back.Query().Get("error"); e != "" {
		return nil, nil, fmt.Errorf("the client got an error: %s %s", e, back.Query().Get("error_description"))
	}
	return back, body, nil
}

// Approve submits "approve" on the proxy's consent page (its HTML in page) from browser, which
// must hold the cookie the page set, with extra form fields (remember=1 ticks "don't ask
// again"), and follows the redirects. It returns the last response and its body.
func Approve(ctx context.Context, browser *http.Client, base string, page []byte, extra url.Values) (*http.Response, []byte, error) {
	form := url.Values{"decision": {"approve"}}
	for k, v := range extra {
		form[k] = v
	}
	for _, m := range consentFields.FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], m[2])
	}
	if form.Get("authz") == "" || form.Get("csrf") == "" {
		return nil, nil, fmt.Errorf("not the consent page: %.300s", page)
	}
	resp, err := postForm(ctx, browser, base+"/consent", form)
	if err != nil {
		return nil, nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body, nil
}

// Token posts form (plus client_id, when not empty) to the proxy's token endpoint and decodes
// the answer.
func Token(ctx context.Context, client *http.Client, base, clientID string, form url.Values) (int, map[string]any, error) {
	if clientID != "" || form.Get("client_assertion") == "" {
		form.Set("client_id", clientID)
	}
	resp, err := postForm(ctx, client, base+"/token", form)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var b map[string]any
	json.NewDecoder(resp.Body).Decode(&b)
	return resp.StatusCode, b, nil
}

func postForm(ctx context.Context, c *http.Client, target string, form url.Values) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.Do(req)
}
