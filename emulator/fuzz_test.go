package emulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Bad input to any endpoint must get an Entra-style error, never a panic or a 500.

func FuzzFilter(f *testing.F) {
	for _, s := range []string{"isMajorChange eq true", "contains(tolower(title),'x') and severity ne 'normal'",
		"tags/any(t:t eq 'x')", "not (a eq 1) or (", "lastModifiedDateTime ge 2026-01-01T00:00:00Z", "'unterminated", "((((", "services/all(s:contains(s,'a'))"} {
		f.Add(s)
	}
	obj := toMap(defaultServiceMessages()[0])
	f.Fuzz(func(t *testing.T, s string) {
		pred, err := parseFilter(s, messageFields)
		if err == nil {
			pred(obj)
		}
	})
}

func fuzzEmulator(f *testing.F) (*Emulator, http.Handler) {
	em, err := Start(Options{StateDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { em.Close() })
	return em, em.loginHandler()
}

func FuzzTokenEndpoint(f *testing.F) {
	em, h := fuzzEmulator(f)
	for _, s := range []string{"grant_type=password&client_id=" + DefaultClientAppID + "&username=alice&password=x&scope=User.Read",
		"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&client_id=" + DefaultServerAppID + "&client_secret=x&assertion=a.b.c&requested_token_use=on_behalf_of&scope=.default",
		"grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=eyJhbGciOiJQUzI1NiJ9.e30.x&client_id=" + DefaultServerAppID,
		"grant_type=authorization_code&code=%ff&client_id=", "scope=api:///&grant_type=refresh_token&refresh_token=1.AQ", "%%%"} {
		f.Add(s)
	}
	path := "/" + em.TenantID() + "/oauth2/v2.0/token"
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("not JSON for %q: %s", body, rec.Body)
		}
	})
}

func FuzzAuthorize(f *testing.F) {
	em, h := fuzzEmulator(f)
	for _, s := range []string{"client_id=" + DefaultClientAppID + "&redirect_uri=http://localhost&response_type=code&scope=User.Read",
		"client_id=" + DefaultClientAppID + "&redirect_uri=http://localhost:1/&response_type=code&scope=a/b/c&code_challenge=x&prompt=none",
		"client_id=%zz", "redirect_uri=javascript:alert(1)&client_id=" + DefaultClientAppID} {
		f.Add(s)
	}
	path := "/" + em.TenantID() + "/oauth2/v2.0/authorize?"
	f.Fuzz(func(t *testing.T, q string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL.Path = "/" + em.TenantID() + "/oauth2/v2.0/authorize"
		req.URL.RawQuery = q
		req.RequestURI = path + q
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q", rec.Code, q)
		}
	})
}

func FuzzGraphQuery(f *testing.F) {
	em, err := Start(Options{StateDir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { em.Close() })
	em.dir.mu.RLock()
	alice := em.dir.userByHint("alice")
	tok, _, err := em.mint(issue{client: em.dir.devServerApp(), clientAuth: "1", user: alice, resource: em.dir.graphApp, viaURI: GraphResourceURI,
		scopes: []string{"User.Read", "GroupMember.Read.All", "ServiceMessage.Read.All"}})
	em.dir.mu.RUnlock()
	if err != nil {
		f.Fatal(err)
	}
	h := em.graphHandler()
	for _, s := range []string{"/v1.0/admin/serviceAnnouncement/messages?$top=5&$skip=2&$orderby=title desc",
		"/v1.0/me/transitiveMemberOf/microsoft.graph.group?$count=true&$filter=id eq 'x'", "/v1.0/me?$select=id,nope",
		"/v1.0/admin/serviceAnnouncement/messages?$skiptoken=%%%", "/v1.0/applications(appId='x')"} {
		f.Add(s, "eventual")
	}
	f.Fuzz(func(t *testing.T, target, consistency string) {
		req, err := http.NewRequest(http.MethodGet, "https://graph.test"+target, nil)
		if err != nil || !strings.HasPrefix(req.URL.Path, "/") {
			return
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("ConsistencyLevel", consistency)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q", rec.Code, target)
		}
	})
}
