package oauthproxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/entramcp/entramcp/entra"
	"github.com/entramcp/entramcp/store"
)

// tokenError is an OAuth error from the token endpoint. A store failure is a 503, never
// invalid_grant: a client must not throw away a good refresh token because of an outage.
type tokenError struct {
	status     int
	code, desc string
}

func (e *tokenError) Error() string { return e.code + ": " + e.desc }

func invalidGrant(desc string) *tokenError {
	return &tokenError{http.StatusBadRequest, "invalid_grant", desc}
}

func unavailable() *tokenError {
	return &tokenError{http.StatusServiceUnavailable, "temporarily_unavailable", "the token service is temporarily unavailable; try again"}
}

func storeErr(err error, notFound string) *tokenError {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrNotFound) {
		return invalidGrant(notFound)
	}
	return unavailable()
}

func (p *Proxy) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be a form")
		return
	}
	f := r.PostForm
	clientID := f.Get("client_id")
	if clientID == "" && f.Get("client_assertion") != "" {
		clientID = assertionSubject(f.Get("client_assertion")) // RFC 7521: client_id is optional then
	}
	c, err := p.Registry.Lookup(p.Registry.withCaller(r), clientID)
	var docErr *DocumentError
	if errors.As(err, &docErr) {
		oauthError(w, http.StatusUnauthorized, "invalid_client", docErr.Error())
		return
	} else if errors.Is(err, ErrRateLimited) {
		w.Header().Set("Retry-After", "60")
		oauthError(w, http.StatusTooManyRequests, "slow_down", err.Error())
		return
	} else if errors.Is(err, ErrUnknownClient) {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client_id; register again")
		return
	} else if err != nil {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
		return
	}
	if !p.clientAuthenticated(r.Context(), w, c, f) {
		return
	}
	var resp []byte
	var terr *tokenError
	switch f.Get("grant_type") {
	case "authorization_code":
		resp, terr = p.codeGrant(r.Context(), c, f.Get("code"), f.Get("redirect_uri"), f.Get("code_verifier"), f.Get("resource"))
	case "refresh_token":
		resp, terr = p.refreshGrant(r.Context(), c, f.Get("refresh_token"))
	default:
		terr = &tokenError{http.StatusBadRequest, "unsupported_grant_type", "use authorization_code or refresh_token"}
	}
	if terr != nil {
		oauthError(w, terr.status, terr.code, terr.desc)
		return
	}
	p.Registry.Touch(r.Context(), c)
	w.Header().Set("Content-Type", "application/json")
	w.Write(resp)
}

func (p *Proxy) codeGrant(ctx context.Context, c *Client, code, redirect, verifier, resource string) ([]byte, *tokenError) {
	if code == "" || verifier == "" {
		return nil, &tokenError{http.StatusBadRequest, "invalid_request", "code and code_verifier are required"}
	}
	var rec codeRecord
	if err := takeJSON(ctx, p.Store, kindCode, hashKey(code), &rec); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return nil, unavailable()
		}
		// A replayed code revokes everything it issued (RFC 6749 10.5).
		var used codeRecord
		if getJSON(ctx, p.Store, kindUsedCode, hashKey(code), &used) == nil {
			p.revokeGrant(ctx, used.GrantID, "code_replayed")
		}
		return nil, invalidGrant("the authorization code is invalid, expired or already used")
	}
	putJSON(ctx, p.Store, kindUsedCode, hashKey(code), rec, 10*time.Minute)
	sum := sha256.Sum256([]byte(verifier))
	switch {
	case rec.ClientID != c.ClientID:
		p.revokeGrant(ctx, rec.GrantID, "code_used_by_another_client")
		return nil, invalidGrant("the code was issued to another client")
	case rec.RedirectURI != redirect:
		return nil, invalidGrant("redirect_uri differs from the authorization request")
	case subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(rec.Challenge)) != 1:
		return nil, invalidGrant("the code_verifier does not match the code_challenge")
	case resource != "" && resource != p.Resource:
		return nil, &tokenError{http.StatusBadRequest, "invalid_target", "resource must be " + p.Resource}
	}
	resp, _, terr := p.issue(ctx, c.ClientID, rec.GrantID, "authorization_code")
	return resp, terr
}

// issuedRecords names the store records behind one token response, so a response that is
// never sent (a concurrent refresh won) can be deleted instead of lingering.
type issuedRecords struct{ jti, rtKey string }

func (r issuedRecords) discard(ctx context.Context, s store.Store) {
	s.Delete(ctx, kindAT, r.jti)
	s.Delete(ctx, kindRT, r.rtKey)
}

// issue makes an access token and a refresh token for the grant.
func (p *Proxy) issue(ctx context.Context, clientID, grantID, grantType string) ([]byte, issuedRecords, *tokenError) {
	var g grantRecord
	if err := getJSON(ctx, p.Store, kindGrant, grantID, &g); err != nil {
		return nil, issuedRecords{}, storeErr(err, "the sign-in was revoked")
	}
	if g.Revoked {
		return nil, issuedRecords{}, invalidGrant("the sign-in was revoked")
	}
	at, jti, exp, err := p.Tokens.Issue(Grant{TenantID: g.TenantID, ObjectID: g.ObjectID, Name: g.Name, PreferredUsername: g.UPN,
		ClientID: clientID, Scopes: g.Scopes, Roles: g.Roles, Groups: g.Groups})
	if err != nil {
		return nil, issuedRecords{}, unavailable()
	}
	rt := randomID() + randomID()
	recs := issuedRecords{jti: jti, rtKey: hashKey(rt)}
	if putJSON(ctx, p.Store, kindAT, jti, grantID, time.Until(exp)+time.Minute) != nil ||
		putJSON(ctx, p.Store, kindRT, recs.rtKey, rtRecord{ClientID: clientID, GrantID: grantID}, 90*24*time.Hour) != nil {
		recs.discard(ctx, p.Store) // best effort: half a token pair is no use to anyone
		return nil, issuedRecords{}, unavailable()
	}
	p.event(Event{Name: "token.issued", ClientID: clientID, TenantID: g.TenantID, ObjectID: g.ObjectID, Reason: grantType})
	b, _ := json.Marshal(map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int(time.Until(exp).Seconds()),
		"refresh_token": rt, "scope": strings.Join(p.fullScopes(g.Scopes), " ")})
	return b, recs, nil
}

func (p *Proxy) grace() time.Duration {
	if p.RefreshGrace > 0 {
		return p.RefreshGrace
	}
	return 10 * time.Second
}

// refreshGrant rotates a refresh token. A token used again after the grace window revokes the
// whole family (reuse detection); within it, a duplicate gets the same response, because real
// clients refresh in parallel. The upstream Entra token is refreshed first when near expiry, and
// the client's refresh token is consumed only after that succeeded.
func (p *Proxy) refreshGrant(ctx context.Context, c *Client, rt string) ([]byte, *tokenError) {
	if rt == "" {
		return nil, &tokenError{http.StatusBadRequest, "invalid_request", "refresh_token is required"}
	}
	key := hashKey(rt)
	var rec rtRecord
	if err := getJSON(ctx, p.Store, kindRT, key, &rec); err != nil {
		return nil, storeErr(err, "the refresh token is invalid or expired")
	}
	if rec.ClientID != c.ClientID {
		return nil, invalidGrant("the refresh token was issued to another client")
	}
	if !rec.UsedAt.IsZero() {
		return p.reused(ctx, rec)
	}
	if terr := p.refreshUpstream(ctx, rec.GrantID); terr != nil {
		return nil, terr
	}
	// The upstream renewal may have waited for a parallel refresh of this very token: if
	// that one has answered meanwhile, this duplicate gets its answer.
	if err := getJSON(ctx, p.Store, kindRT, key, &rec); err != nil {
		return nil, storeErr(err, "the refresh token is invalid or expired")
	}
	if !rec.UsedAt.IsZero() {
		return p.reused(ctx, rec)
	}
	resp, recs, terr := p.issue(ctx, c.ClientID, rec.GrantID, "refresh_token")
	if terr != nil {
		return nil, terr
	}
	var winner []byte
	err := p.Store.Update(ctx, kindRT, key, func(old []byte) ([]byte, time.Duration, error) {
		var cur rtRecord
		if err := json.Unmarshal(old, &cur); err != nil {
			return nil, 0, err
		}
		if !cur.UsedAt.IsZero() { // a concurrent refresh got there first
			winner = cur.Response
			return old, time.Until(cur.UsedAt.Add(p.grace())) + time.Minute, nil
		}
		cur.UsedAt, cur.Response = time.Now(), resp
		b, err := json.Marshal(cur)
		return b, p.grace() + time.Hour, err
	})
	if err != nil {
		recs.discard(ctx, p.Store)
		return nil, storeErr(err, "the refresh token is invalid or expired")
	}
	if winner != nil {
		recs.discard(ctx, p.Store) // ours is never sent: leave no usable records behind
		return winner, nil
	}
	return resp, nil
}

func (p *Proxy) reused(ctx context.Context, rec rtRecord) ([]byte, *tokenError) {
	if time.Since(rec.UsedAt) <= p.grace() && rec.Response != nil {
		return rec.Response, nil
	}
	p.revokeGrant(ctx, rec.GrantID, "refresh_token_reused")
	return nil, invalidGrant("the refresh token was already used; the sign-in has been revoked, sign in again")
}

// refreshUpstream renews the stored Entra token when it has under 5 minutes left.
func (p *Proxy) refreshUpstream(ctx context.Context, grantID string) *tokenError {
	var g grantRecord
	if err := getJSON(ctx, p.Store, kindGrant, grantID, &g); err != nil {
		return storeErr(err, "the sign-in was revoked")
	}
	if g.Revoked {
		return invalidGrant("the sign-in was revoked")
	}
	if time.Until(g.EntraExpiry) > 5*time.Minute {
		return nil
	}
	// Only one replica refreshes a user's Entra token at a time: a short lock record. The
	// others wait for its result rather than fail, because clients refresh in parallel.
	if err := p.Store.Create(ctx, "lock", grantID, []byte("1"), 30*time.Second); err != nil {
		if !errors.Is(err, store.ErrAlreadyExists) {
			return unavailable()
		}
		renewed, terr := p.awaitUpstream(ctx, grantID, g.EntraExpiry)
		if terr != nil || renewed {
			return terr
		}
		// The lock is ours now (its holder gave up or died): renew below.
	}
	defer p.Store.Delete(ctx, "lock", grantID)
	t, err := p.upstreamToken(ctx, map[string][]string{"grant_type": {"refresh_token"}, "refresh_token": {g.EntraRefresh},
		"scope": {strings.Join(append(p.fullScopes(g.Scopes), "offline_access"), " ")}})
	if err != nil {
		if errors.Is(err, entra.ErrEntraUnavailable) {
			return unavailable()
		}
		p.revokeGrant(ctx, grantID, "entra_refresh_failed")
		return invalidGrant("the Microsoft sign-in can no longer be renewed; sign in again")
	}
	return storeErr(p.Store.Update(ctx, kindGrant, grantID, func(old []byte) ([]byte, time.Duration, error) {
		var cur grantRecord
		json.Unmarshal(old, &cur)
		cur.EntraAccess, cur.EntraExpiry = t.Access, t.Expiry
		if t.Refresh != "" {
			cur.EntraRefresh = t.Refresh
		}
		b, err := json.Marshal(cur)
		return b, 90 * 24 * time.Hour, err
	}), "the sign-in was revoked")
}

// awaitUpstream waits (up to 10 s) while another request renews grantID's Entra token, whose
// expiry was seen before waiting. It reports renewed when the stored token changed; false
// with no error means the lock was released without a renewal and is now the caller's.
func (p *Proxy) awaitUpstream(ctx context.Context, grantID string, seen time.Time) (renewed bool, terr *tokenError) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return false, unavailable()
		case <-time.After(50 * time.Millisecond):
		}
		var g grantRecord
		if err := getJSON(ctx, p.Store, kindGrant, grantID, &g); err != nil {
			return false, storeErr(err, "the sign-in was revoked")
		}
		if g.Revoked {
			return false, invalidGrant("the sign-in was revoked")
		}
		if !g.EntraExpiry.Equal(seen) {
			return true, nil
		}
		err := p.Store.Create(ctx, "lock", grantID, []byte("1"), 30*time.Second)
		if err == nil {
			return false, nil
		}
		if !errors.Is(err, store.ErrAlreadyExists) {
			return false, unavailable()
		}
	}
	return false, &tokenError{http.StatusServiceUnavailable, "temporarily_unavailable", "the Microsoft sign-in is being renewed; retry in a moment"}
}

// revokeGrant ends a family: its tokens stop working at once (access tokens resolve through it).
func (p *Proxy) revokeGrant(ctx context.Context, grantID, reason string) {
	var g grantRecord
	err := p.Store.Update(ctx, kindGrant, grantID, func(old []byte) ([]byte, time.Duration, error) {
		json.Unmarshal(old, &g)
		g.Revoked, g.EntraAccess, g.EntraRefresh = true, "", ""
		b, err := json.Marshal(g)
		return b, 24 * time.Hour, err
	})
	if err == nil {
		p.event(Event{Name: "grant.revoked", ClientID: g.ClientID, TenantID: g.TenantID, ObjectID: g.ObjectID, Reason: reason})
	}
}

// revoke is RFC 7009: a refresh token revokes its family; an unknown token is not an error.
func (p *Proxy) revoke(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be a form")
		return
	}
	clientID := r.PostForm.Get("client_id")
	if clientID == "" {
		clientID = assertionSubject(r.PostForm.Get("client_assertion"))
	}
	// A client that must authenticate does so here too; public clients are identified only.
	if c, err := p.Registry.Lookup(p.Registry.withCaller(r), clientID); err == nil {
		if !p.clientAuthenticated(r.Context(), w, c, r.PostForm) {
			return
		}
	} else if !errors.Is(err, ErrUnknownClient) {
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
		return
	}
	var rec rtRecord
	if err := getJSON(r.Context(), p.Store, kindRT, hashKey(r.PostForm.Get("token")), &rec); err == nil && rec.ClientID == clientID {
		p.revokeGrant(r.Context(), rec.GrantID, "revoked_by_client")
	}
	w.WriteHeader(http.StatusOK)
}

// clientAuthenticated runs authenticateClient and answers the failure: 401 invalid_client
// or 503 when the store cannot record the
// assertion's single use.
func (p *Proxy) clientAuthenticated(ctx context.Context, w http.ResponseWriter, c *Client, form url.Values) bool {
	err := p.authenticateClient(ctx, c, form)
	var authErr *clientAuthError
	switch {
	case err == nil:
		return true
	case errors.As(err, &authErr):
		oauthError(w, http.StatusUnauthorized, "invalid_client", authErr.reason)
	default:
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again")
	}
	return false
}

// UpstreamToken resolves an access token id to the user's current Entra token (Tokens.Upstream).
func (p *Proxy) UpstreamToken(ctx context.Context, jti string) (string, error) {
	var grantID string
	if err := getJSON(ctx, p.Store, kindAT, jti, &grantID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", ErrNoUpstream
		}
		return "", err
	}
	var g grantRecord
	if err := getJSON(ctx, p.Store, kindGrant, grantID, &g); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", ErrNoUpstream
		}
		return "", err
	}
	if g.Revoked {
		return "", ErrRevoked
	}
	return g.EntraAccess, nil
}

// ErrRevoked means the access token's sign-in was revoked: the token must be refused.
var ErrRevoked = errors.New("the sign-in was revoked")
