package emulator_test

import (
	"context"

	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/entramcp/entramcp/emulator"
)

// These tests prove /authorize and the code, PKCE and refresh grants against golang.org/x/oauth2.

func oauthConfig(em *emulator.Emulator, redirect string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:    em.Info().Apps.Client.ClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: em.Authority() + "/oauth2/v2.0/authorize", TokenURL: tokenURL(em), AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: redirect, Scopes: scopes,
	}
}

// noRedirect is a browser stand-in that stops at the redirect back to the client.
func noRedirect(em *emulator.Emulator) *http.Client {
	c := em.HTTPClient()
	c.Jar, _ = cookiejar.New(nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// redirectParams follows /authorize to the client's redirect and returns its query.
func redirectParams(t *testing.T, resp *http.Response) url.Values {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("authorize: status %d, want 302: %.400s", resp.StatusCode, body)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func TestAuthorizationCodePKCEWithOAuth2(t *testing.T) {
	em := startEmulator(t, func(c *emulator.Config) { c.Settings.AutoApprove = true })
	redirect := "http://127.0.0.1:49152/callback" // loopback: any port matches the registered http://127.0.0.1
	if err := em.AddRedirectURI(emulator.DefaultClientAppID, "publicClient", "http://127.0.0.1/callback"); err != nil {
		t.Fatal(err)
	}
	conf := oauthConfig(em, redirect, apiScope(em), "openid", "profile", "offline_access")
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("st-123", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", "alice"), oauth2.SetAuthURLParam("nonce", "n-1"))
	resp, err := noRedirect(em).Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	q := redirectParams(t, resp)
	if q.Get("state") != "st-123" || q.Get("code") == "" {
		t.Fatalf("redirect params: %v", q)
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, em.HTTPClient())

	// A wrong verifier is refused, and burns the code as Entra does.
	if _, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil || !strings.Contains(err.Error(), "AADSTS501481") {
		t.Fatalf("wrong verifier: %v, want AADSTS501481", err)
	}
	resp, _ = noRedirect(em).Get(authURL)
	q = redirectParams(t, resp)
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	c := claims(t, tok.AccessToken)
	if c["aud"] != emulator.DefaultServerAppID || c["scp"] != emulator.DefaultServerScope || c["ver"] != "2.0" || c["name"] != "Alice Example" {
		t.Fatalf("access token claims: %v", c)
	}
	idt, _ := tok.Extra("id_token").(string)
	if idc := claims(t, idt); idc["nonce"] != "n-1" || idc["aud"] != emulator.DefaultClientAppID {
		t.Fatalf("id token claims: %v", idc)
	}
	// Code reuse: AADSTS54005.
	if _, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier)); err == nil || !strings.Contains(err.Error(), "AADSTS54005") {
		t.Fatalf("code reuse: %v, want AADSTS54005", err)
	}

	// Refresh: a new refresh token each time, and the old one still works.
	old := tok.RefreshToken
	expired := &oauth2.Token{RefreshToken: old, Expiry: time.Now().Add(-time.Minute)}
	fresh, err := conf.TokenSource(ctx, expired).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if fresh.RefreshToken == "" || fresh.RefreshToken == old || fresh.AccessToken == tok.AccessToken {
		t.Fatalf("refresh did not rotate: %+v", fresh)
	}
	if _, err := conf.TokenSource(ctx, expired).Token(); err != nil {
		t.Fatalf("old refresh token no longer works: %v", err)
	}
	if n := em.Stats().Token["refresh_token"]; n != 2 {
		t.Errorf("refresh_token count = %d, want 2", n)
	}
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// TestInteractiveSignInAndConsent drives the sign-in and consent pages as a browser would.
func TestInteractiveSignInAndConsent(t *testing.T) {
	em := startEmulator(t, nil)
	if err := em.RevokeConsent(emulator.DefaultClientAppID, emulator.DefaultServerAppID, ""); err != nil {
		t.Fatal(err)
	}
	conf := oauthConfig(em, "http://localhost:8123", apiScope(em))
	verifier := oauth2.GenerateVerifier()
	browser := noRedirect(em)
	resp, err := browser.Get(conf.AuthCodeURL("s1", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `id="user-bob"`) {
		t.Fatalf("sign-in page: %d %.300s", resp.StatusCode, page)
	}
	submit := func(page []byte, extra url.Values) *http.Response {
		form := url.Values{}
		for _, m := range hiddenInput.FindAllStringSubmatch(string(page), -1) {
			form.Set(m[1], strings.ReplaceAll(m[2], "&amp;", "&"))
		}
		for k, v := range extra {
			form[k] = v
		}
		r, err := browser.PostForm(em.Authority()+"/oauth2/v2.0/authorize", form)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	resp = submit(page, url.Values{"emu_user": {"bob"}})
	consent, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(consent), `id="consent-accept"`) || !strings.Contains(string(consent), emulator.DefaultServerScope) {
		t.Fatalf("expected the consent page naming %s: %.500s", emulator.DefaultServerScope, consent)
	}
	q := redirectParams(t, submit(consent, url.Values{"emu_consent": {"accept"}}))
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, em.HTTPClient())
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if c := claims(t, tok.AccessToken); c["oid"] != "c4a2d8f1-6e3b-4f9c-8b2d-7a4e1c9f5b62" {
		t.Fatalf("token is not bob's: %v", c)
	}
	// The session cookie now signs bob in silently, and his consent was recorded.
	q = redirectParams(t, mustGet(t, browser, conf.AuthCodeURL("s2", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "none"))))
	if q.Get("code") == "" {
		t.Fatalf("prompt=none with a session: %v", q)
	}
	// Without a session, prompt=none fails with login_required, redirected with state.
	q = redirectParams(t, mustGet(t, noRedirect(em), conf.AuthCodeURL("s3", oauth2.SetAuthURLParam("prompt", "none"))))
	if q.Get("error") != "login_required" || q.Get("state") != "s3" || !strings.HasPrefix(q.Get("error_description"), "AADSTS50058:") || q.Get("error_uri") == "" {
		t.Fatalf("prompt=none without a session: %v", q)
	}
}

func mustGet(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	r, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestConsentDeniedAndAdminOnlyScopes(t *testing.T) {
	em := startEmulator(t, nil)
	em.RevokeConsent(emulator.DefaultClientAppID, emulator.DefaultServerAppID, "")
	conf := oauthConfig(em, "http://localhost", apiScope(em))
	browser := noRedirect(em)
	form := url.Values{"client_id": {conf.ClientID}, "response_type": {"code"}, "redirect_uri": {"http://localhost"},
		"scope": {apiScope(em)}, "state": {"x"}, "emu_user": {"bob"}, "emu_consent": {"deny"}}
	resp, err := browser.PostForm(em.Authority()+"/oauth2/v2.0/authorize", form)
	if err != nil {
		t.Fatal(err)
	}
	if q := redirectParams(t, resp); q.Get("error") != "access_denied" || !strings.Contains(q.Get("error_description"), "AADSTS65004") {
		t.Fatalf("denied consent: %v", q)
	}
	// Directory.Read.All needs an admin: bob sees "Need admin approval", not a redirect.
	form.Set("scope", "https://graph.microsoft.com/Directory.Read.All")
	form.Set("emu_consent", "accept")
	resp, _ = browser.PostForm(em.Authority()+"/oauth2/v2.0/authorize", form)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "AADSTS90094") {
		t.Fatalf("admin-only scope for a user: %d %.300s", resp.StatusCode, body)
	}
}
