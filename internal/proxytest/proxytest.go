// Package proxytest drives the OAuth proxy's browser flow in tests the way an MCP client and a
// user would: register, authorize, approve our consent page, pick a user on the emulator's
// sign-in page, and exchange the code. It wraps internal/signin, failing the test on errors.
package proxytest

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/entramcp/entramcp/internal/signin"
)

// RedirectURI is the loopback redirect the test client registers; nothing listens there.
const RedirectURI = signin.RedirectURI

// Register registers a client by Dynamic Client Registration and returns its client_id.
func Register(t testing.TB, base, name string) string {
	t.Helper()
	return RegisterRedirect(t, base, name, RedirectURI)
}

// RegisterRedirect is Register with the client's own redirect URI.
func RegisterRedirect(t testing.TB, base, name, redirect string) string {
	t.Helper()
	id, err := signin.Register(context.Background(), http.DefaultClient, base, name, redirect)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Challenge is the S256 code challenge of verifier.
func Challenge(verifier string) string { return signin.Challenge(verifier) }

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
	q, err := signin.SignIn(context.Background(), browser, signin.AuthorizeURL(base, clientID, verifier, extra), user)
	if err != nil {
		t.Fatal(err)
	}
	return q
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
	resp, body, err := signin.Approve(context.Background(), browser, base, page, extra)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// Token posts form (plus client_id) to the proxy's token endpoint and decodes the answer.
func Token(t testing.TB, base, clientID string, form url.Values) (int, map[string]any) {
	t.Helper()
	status, body, err := signin.Token(context.Background(), http.DefaultClient, base, clientID, form)
	if err != nil {
		t.Fatal(err)
	}
	return status, body
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
