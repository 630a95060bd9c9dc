package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Test controls: a Go API on *Emulator and the same operations over HTTP under /_emulator/,
// answered for loopback callers only.

// GrantConsent records consent for client to use scope (space-separated values) on resource;
// user "" means admin consent for everyone. Apps are named by appId, display name or
// identifier URI; users by name, UPN or id.
func (em *Emulator) GrantConsent(client, resource, scope, user string) error {
	em.dir.mu.Lock()
	defer em.dir.mu.Unlock()
	return em.dir.addConsent(ConsentConfig{Client: client, Resource: resource, Scope: scope, User: user})
}

// RevokeConsent removes scopes (all when scope is "") from every grant of client on resource.
func (em *Emulator) RevokeConsent(client, resource, scope string) error {
	em.dir.mu.Lock()
	defer em.dir.mu.Unlock()
	c, r := em.dir.appByRef(client), em.dir.appByRef(resource)
	if c == nil || r == nil {
		return fmt.Errorf("unknown client %q or resource %q", client, resource)
	}
	cs, rs := em.dir.spByAppID(c.AppID), em.dir.spByAppID(r.AppID)
	if cs == nil || rs == nil {
		return nil
	}
	drop := strings.Fields(scope)
	em.dir.grants = slices.DeleteFunc(em.dir.grants, func(g *PermissionGrant) bool {
		if g.ClientID != cs.ID || g.ResourceID != rs.ID {
			return false
		}
		if len(drop) == 0 {
			return true
		}
		g.Scope = strings.Join(slices.DeleteFunc(strings.Fields(g.Scope), func(s string) bool { return slices.Contains(drop, s) }), " ")
		return g.Scope == ""
	})
	return nil
}

// SetMFAPolicy requires multi-factor authentication for user on resource ("*" for any);
// errorCode is 50079 or 50076 (0 means 50079). It returns the policy id carried in claims
// challenges.
func (em *Emulator) SetMFAPolicy(user, resource string, errorCode int) (string, error) {
	em.dir.mu.Lock()
	defer em.dir.mu.Unlock()
	if em.dir.userByHint(user) == nil && user != "*" {
		return "", fmt.Errorf("unknown user %q", user)
	}
	if resource != "*" && em.dir.appByRef(resource) == nil {
		return "", fmt.Errorf("unknown resource %q", resource)
	}
	if errorCode != 0 && errorCode != 50076 && errorCode != 50079 {
		return "", fmt.Errorf("errorCode must be 50076 or 50079")
	}
	p := &Policy{ID: newGUID(), DisplayName: "Require MFA for " + user, Users: []string{user}, Resources: []string{resource}, Require: "mfa", ErrorCode: errorCode}
	em.dir.policies = append(em.dir.policies, p)
	return p.ID, nil
}

// ClearPolicies removes every MFA policy.
func (em *Emulator) ClearPolicies() {
	em.dir.mu.Lock()
	em.dir.policies = nil
	em.dir.mu.Unlock()
}

// RevokeSessions revokes the user's refresh tokens and sessions (TokensValidFrom = now), as
// Graph's revokeSignInSessions does.
func (em *Emulator) RevokeSessions(user string) error {
	em.dir.mu.RLock()
	u := em.dir.userByHint(user)
	em.dir.mu.RUnlock()
	if u == nil {
		return fmt.Errorf("unknown user %q", user)
	}
	em.grantsMu.Lock()
	em.validFrom[u.ID] = em.now()
	em.grantsMu.Unlock()
	return nil
}

// SetAutoApprove turns the non-interactive sign-in (login_hint names the user, consent recorded
// without a prompt) on or off.
func (em *Emulator) SetAutoApprove(on bool) {
	em.dir.mu.Lock()
	em.dir.settings.AutoApprove = on
	em.dir.mu.Unlock()
}

// AddRedirectURI adds a redirect URI to an app on a platform: "web" (confidential, for example
// the dev server's callback), "publicClient" or "spa".
func (em *Emulator) AddRedirectURI(app, platform, uri string) error {
	em.dir.mu.Lock()
	defer em.dir.mu.Unlock()
	a := em.dir.appByRef(app)
	if a == nil {
		return fmt.Errorf("unknown app %q", app)
	}
	var list *[]string
	switch platform {
	case "web":
		list = &a.Web.RedirectURIs
	case "publicClient":
		list = &a.PublicClient.RedirectURIs
	case "spa":
		list = &a.SPA.RedirectURIs
	default:
		return fmt.Errorf("unknown platform %q (want web, publicClient or spa)", platform)
	}
	if !slices.Contains(*list, uri) {
		*list = append(*list, uri)
	}
	return nil
}

func (em *Emulator) controlRoutes(mux *http.ServeMux) {
	handle := func(pattern string, h func(*http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if !isLoopback(r) {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "forbidden", "error_description": "the emulator's test controls answer loopback callers only"})
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			out, err := h(r)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": err.Error()})
				return
			}
			if out == nil {
				out = map[string]string{"status": "ok"}
			}
			writeJSON(w, http.StatusOK, out)
		})
	}
	decode := func(r *http.Request, v any) error {
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return fmt.Errorf("bad JSON body: %v", err)
		}
		return nil
	}
	handle("GET /_emulator/stats", func(*http.Request) (any, error) { return em.Stats(), nil })
	handle("DELETE /_emulator/stats", func(*http.Request) (any, error) { em.ResetStats(); return nil, nil })
	handle("POST /_emulator/faults", func(r *http.Request) (any, error) {
		var f struct {
			Target     Target   `json:"target"`
			Latency    string   `json:"latency"`
			Outage     string   `json:"outage"`
			Duration   string   `json:"duration"`
			FailNext   int      `json:"fail_next"`
			Failure    *Failure `json:"failure"`
			Throttle   int      `json:"throttle_next"`
			RetryAfter string   `json:"retry_after"`
		}
		if err := decode(r, &f); err != nil {
			return nil, err
		}
		if _, err := em.endpoint(f.Target); err != nil {
			return nil, err
		}
		if f.Latency != "" {
			d, err := time.ParseDuration(f.Latency)
			if err != nil || d < 0 || d > 5*time.Minute {
				return nil, fmt.Errorf("latency must be a duration between 0 and 5m")
			}
			_ = em.SetLatency(f.Target, d)
		}
		if f.Outage != "" {
			d, err := time.ParseDuration(f.Duration)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("an outage over HTTP needs a positive duration (the controls may be behind it)")
			}
			if err := em.SetOutage(f.Target, OutageMode(f.Outage), d); err != nil {
				return nil, err
			}
		}
		if f.FailNext > 0 {
			x := Failure{}
			if f.Failure != nil {
				x = *f.Failure
			}
			if x.Status != 0 && (x.Status < 400 || x.Status > 599) {
				return nil, fmt.Errorf("failure.status must be 4xx or 5xx")
			}
			_ = em.FailNext(f.Target, f.FailNext, x)
		}
		if f.Throttle > 0 {
			if f.RetryAfter == "" {
				f.RetryAfter = "1"
			}
			if err := em.ThrottleNext(f.Target, f.Throttle, f.RetryAfter); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	handle("DELETE /_emulator/faults", func(*http.Request) (any, error) { em.ResetFaults(); return nil, nil })
	handle("POST /_emulator/keys/rotate", func(r *http.Request) (any, error) {
		keep := r.URL.Query().Get("keep_old") != "false"
		if err := em.RotateKeys(keep); err != nil {
			return nil, err
		}
		return map[string]any{"kids": em.SigningKeyIDs()}, nil
	})
	handle("POST /_emulator/clock", func(r *http.Request) (any, error) {
		var b struct {
			Offset string `json:"offset"`
		}
		if err := decode(r, &b); err != nil {
			return nil, err
		}
		d, err := time.ParseDuration(b.Offset)
		if err != nil {
			return nil, fmt.Errorf("offset must be a duration such as \"2h\" or \"-90m\"")
		}
		em.SetClockOffset(d)
		return nil, nil
	})
	handle("POST /_emulator/consents", func(r *http.Request) (any, error) {
		var b struct {
			Client, Resource, Scope, User string
			Revoke                        bool
		}
		if err := decode(r, &b); err != nil {
			return nil, err
		}
		if b.Revoke {
			return nil, em.RevokeConsent(b.Client, b.Resource, b.Scope)
		}
		return nil, em.GrantConsent(b.Client, b.Resource, b.Scope, b.User)
	})
	handle("POST /_emulator/policies", func(r *http.Request) (any, error) {
		var b struct {
			User, Resource string
			ErrorCode      int `json:"errorCode"`
		}
		if err := decode(r, &b); err != nil {
			return nil, err
		}
		id, err := em.SetMFAPolicy(b.User, b.Resource, b.ErrorCode)
		return map[string]string{"id": id}, err
	})
	handle("DELETE /_emulator/policies", func(*http.Request) (any, error) { em.ClearPolicies(); return nil, nil })
	handle("POST /_emulator/users/{user}/revoke", func(r *http.Request) (any, error) { return nil, em.RevokeSessions(r.PathValue("user")) })
	handle("POST /_emulator/device/approve", func(r *http.Request) (any, error) {
		var b struct {
			UserCode string `json:"user_code"`
			User     string `json:"user"`
		}
		if err := decode(r, &b); err != nil {
			return nil, err
		}
		return nil, em.ApproveDevice(b.UserCode, b.User)
	})
	handle("POST /_emulator/auto-approve", func(r *http.Request) (any, error) {
		var b struct {
			Enabled bool `json:"enabled"`
		}
		if err := decode(r, &b); err != nil {
			return nil, err
		}
		em.SetAutoApprove(b.Enabled)
		return nil, nil
	})
}

func (em *Emulator) loginHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", em.handleDiscovery)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", em.handleKeys)
	mux.HandleFunc("GET /{tenant}/discovery/keys", em.handleKeys)
	mux.HandleFunc("GET /{tenant}/discovery/instance", em.handleInstanceDiscovery)
	mux.HandleFunc("/{tenant}/oauth2/v2.0/authorize", em.handleAuthorize)
	mux.HandleFunc("/{tenant}/oauth2/v2.0/token", em.handleToken)
	mux.HandleFunc("/{tenant}/oauth2/v2.0/devicecode", em.handleDeviceCode)
	mux.HandleFunc("/common/oauth2/deviceauth", em.handleDevicePage)
	mux.HandleFunc("GET /{tenant}/oauth2/v2.0/logout", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "ESTSAUTH", Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>Signed out</title><h1>You signed out of your account</h1>")
	})
	mux.HandleFunc("GET /metadata/identity/oauth2/token", em.handleIMDS)
	mux.HandleFunc("GET /msi/token", em.handleAppServiceMI)
	mux.HandleFunc("GET /error", em.handleErrorPage)
	mux.HandleFunc("GET /{$}", em.handleIndex)
	em.controlRoutes(mux)
	return mux
}
