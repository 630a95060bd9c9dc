package emulator_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/entramcp/entramcp/emulator"
)

// graphTokenFor is a delegated Graph token for user through the dev server app (OBO).
func graphTokenFor(t *testing.T, em *emulator.Emulator, user, scope string) string {
	t.Helper()
	status, body := obo(t, em, userToken(t, em, user), scope)
	if status != 200 {
		t.Fatalf("OBO for %s: %d %v", user, status, body)
	}
	return body["access_token"].(string)
}

func TestGraphMembership(t *testing.T) {
	em := startEmulator(t, nil)
	tok := graphTokenFor(t, em, "alice", graphDefault)
	engineering := "3c7a1f5b-9d4e-4a0c-88e3-1b5d7f9a4c62" // alice is in it only through Platform Team
	path := "/v1.0/me/transitiveMemberOf/microsoft.graph.group?$filter=" + url.QueryEscape("id eq '"+engineering+"'") + "&$count=true"
	status, body := graphGet(t, em, tok, path, "ConsistencyLevel", "eventual")
	vals, _ := body["value"].([]any)
	if status != 200 || body["@odata.count"] != float64(1) || len(vals) != 1 || vals[0].(map[string]any)["displayName"] != "Engineering" {
		t.Fatalf("transitive membership: %d %v", status, body)
	}
	// memberOf (direct) does not include the nested group.
	status, body = graphGet(t, em, tok, "/v1.0/me/memberOf/microsoft.graph.group?$filter="+url.QueryEscape("id eq '"+engineering+"'")+"&$count=true", "ConsistencyLevel", "eventual")
	if status != 200 || body["@odata.count"] != float64(0) {
		t.Fatalf("direct membership of a nested group: %d %v", status, body)
	}
	// $count without ConsistencyLevel: eventual fails as in Graph.
	status, body = graphGet(t, em, tok, path)
	if status != 400 || body["error"].(map[string]any)["code"] != "Request_UnsupportedQuery" {
		t.Fatalf("without ConsistencyLevel: %d %v", status, body)
	}
	// Without a cast, directory roles come back too.
	status, body = graphGet(t, em, tok, "/v1.0/me/transitiveMemberOf?$select=id,displayName")
	if n := len(body["value"].([]any)); status != 200 || n != 6 {
		t.Fatalf("transitiveMemberOf: %d, %d objects, want 4 groups + 2 roles", status, n)
	}
	// Paging: $top is the page size, nextLink continues.
	status, body = graphGet(t, em, tok, "/v1.0/me/transitiveMemberOf/microsoft.graph.group?$top=3")
	next, _ := body["@odata.nextLink"].(string)
	if status != 200 || len(body["value"].([]any)) != 3 || !strings.HasPrefix(next, em.GraphURL()) {
		t.Fatalf("first page: %d %v", status, body)
	}
	req, _ := http.NewRequest(http.MethodGet, next, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	status, body = do(t, em, req)
	if status != 200 || len(body["value"].([]any)) != 1 || body["@odata.nextLink"] != nil {
		t.Fatalf("second page: %d %v", status, body)
	}
	// A token with only User.Read may not list memberships.
	status, _ = graphGet(t, em, graphTokenFor(t, em, "alice", "https://graph.microsoft.com/User.Read"), "/v1.0/me/memberOf")
	if status != 403 {
		t.Fatalf("memberOf with User.Read only: %d, want 403", status)
	}
}

func TestGraphServiceMessages(t *testing.T) {
	em := startEmulator(t, nil)
	tok := graphTokenFor(t, em, "alice", graphDefault)
	list := func(q url.Values, headers ...string) (int, map[string]any) {
		return graphGet(t, em, tok, "/v1.0/admin/serviceAnnouncement/messages?"+q.Encode(), headers...)
	}
	ids := func(body map[string]any) []string {
		var out []string
		for _, v := range body["value"].([]any) {
			out = append(out, v.(map[string]any)["id"].(string))
		}
		return out
	}
	cases := []struct {
		filter string
		want   int
	}{
		{"isMajorChange eq true", 5},
		{"severity eq 'high'", 3},
		{"category eq 'planForChange' and isMajorChange eq false", 1},
		{"contains(tolower(title),'exchange')", 2},
		{"lastModifiedDateTime ge 2026-08-20T00:00:00Z", 5},
		{"lastModifiedDateTime lt 2026-08-20T00:00:00Z", 7},
		{"services/any(s:s eq 'Microsoft Teams')", 2},
		{"not (severity eq 'normal') or category eq 'stayInformed'", 9},
	}
	for _, c := range cases {
		status, body := list(url.Values{"$filter": {c.filter}, "$count": {"true"}})
		if status != 200 || body["@odata.count"] != float64(c.want) {
			t.Errorf("$filter=%s: %d count %v, want %d (%v)", c.filter, status, body["@odata.count"], c.want, body["error"])
		}
	}
	status, body := list(url.Values{"$filter": {"severity eq"}})
	if status != 400 {
		t.Errorf("broken filter: %d %v", status, body)
	}
	status, body = list(url.Values{"$filter": {"secret eq 'x'"}})
	if status != 400 {
		t.Errorf("unknown property: %d %v", status, body)
	}
	status, body = list(url.Values{"$orderby": {"lastModifiedDateTime asc"}, "$top": {"2"}, "$select": {"id,title"}})
	if got := ids(body); status != 200 || len(got) != 2 || got[0] != "MC210640" || body["@odata.nextLink"] == nil {
		t.Errorf("orderby asc + top: %d %v", status, body)
	}
	status, body = list(url.Values{"$top": {"0"}, "$count": {"true"}})
	if status != 200 || body["@odata.count"] != float64(12) || len(body["value"].([]any)) != 0 {
		t.Errorf("$top=0 count only: %d %v", status, body)
	}
	status, body = list(url.Values{"$skip": {"10"}})
	if status != 200 || len(body["value"].([]any)) != 2 {
		t.Errorf("$skip: %d %v", status, body)
	}
	status, body = list(url.Values{}, "Prefer", "odata.maxpagesize=5")
	if status != 200 || len(body["value"].([]any)) != 5 || body["@odata.nextLink"] == nil {
		t.Errorf("maxpagesize: %d %v", status, body)
	}
	status, body = graphGet(t, em, tok, "/v1.0/admin/serviceAnnouncement/messages/MC180234")
	if status != 200 || body["body"].(map[string]any)["content"] == "" {
		t.Errorf("one message: %d %v", status, body)
	}
	// bob has the permission but not the Message Center Reader role: 403.
	status, body = graphGet(t, em, graphTokenFor(t, em, "bob", graphDefault), "/v1.0/admin/serviceAnnouncement/messages")
	if status != 403 || !strings.Contains(body["error"].(map[string]any)["message"].(string), "Message Center Reader") {
		t.Errorf("bob: %d %v", status, body)
	}
}

func TestGraphValidatesTokens(t *testing.T) {
	em := startEmulator(t, nil)
	apiToken := userToken(t, em, "alice")
	graphTok := graphTokenFor(t, em, "alice", graphDefault)
	cases := map[string]string{"no token": "", "token for another API": apiToken, "garbage": "abc.def.ghi", "tampered": graphTok[:len(graphTok)-4] + "AAAA"}
	for name, tok := range cases {
		if status, body := graphGet(t, em, tok, "/v1.0/me"); status != 401 || body["error"].(map[string]any)["code"] != "InvalidAuthenticationToken" {
			t.Errorf("%s: %d %v", name, status, body)
		}
	}
	em.SetClockOffset(2 * time.Hour)
	if status, _ := graphGet(t, em, graphTok, "/v1.0/me"); status != 401 {
		t.Errorf("expired token: %d, want 401", status)
	}
}

func TestGraphAppRegistration(t *testing.T) {
	em := startEmulator(t, nil)
	admin := adminGraphToken(t, em, "alice")
	status, app := graphDo(t, em, http.MethodPost, admin, "/v1.0/applications", map[string]any{
		"displayName": "mcp api", "signInAudience": "AzureADMyOrg",
		"api": map[string]any{"requestedAccessTokenVersion": 2},
		"web": map[string]any{"redirectUris": []string{"https://mcp.contoso.example/auth/callback"}},
	})
	if status != 201 {
		t.Fatalf("create app: %d %v", status, app)
	}
	id, appID := app["id"].(string), app["appId"].(string)
	scopeID := "0e6b1c3a-5d7f-4a9b-8c2e-4f6a8b0c2d4e"
	status, body := graphDo(t, em, http.MethodPatch, admin, "/v1.0/applications/"+id, map[string]any{
		"identifierUris": []string{"api://" + appID},
		"api":            map[string]any{"oauth2PermissionScopes": []any{map[string]any{"id": scopeID, "value": "mcp-access", "type": "User", "isEnabled": true}}},
	})
	if status != 204 {
		t.Fatalf("patch app: %d %v", status, body)
	}
	status, got := graphGet(t, em, admin, "/v1.0/applications/"+id)
	if status != 200 || got["api"].(map[string]any)["requestedAccessTokenVersion"] != float64(2) || len(got["identifierUris"].([]any)) != 1 {
		t.Fatalf("patch lost or did not apply fields: %v", got)
	}
	// An identifier URI outside the verified domains, and removing an enabled scope, are refused.
	status, body = graphDo(t, em, http.MethodPatch, admin, "/v1.0/applications/"+id, map[string]any{"identifierUris": []string{"api://evil.example/x"}})
	if status != 400 || body["error"].(map[string]any)["code"] != "HostNameNotOnVerifiedDomain" {
		t.Fatalf("unverified identifier URI: %d %v", status, body)
	}
	status, body = graphDo(t, em, http.MethodPatch, admin, "/v1.0/applications/"+id, map[string]any{"api": map[string]any{"oauth2PermissionScopes": []any{}}})
	if status != 400 || body["error"].(map[string]any)["code"] != "CannotDeleteOrUpdateEnabledEntitlement" {
		t.Fatalf("removing an enabled scope: %d %v", status, body)
	}
	status, pw := graphDo(t, em, http.MethodPost, admin, "/v1.0/applications/"+id+"/addPassword", map[string]any{"passwordCredential": map[string]any{"displayName": "ci"}})
	secret, _ := pw["secretText"].(string)
	if status != 200 || len(secret) < 30 {
		t.Fatalf("addPassword: %d %v", status, pw)
	}
	if _, got = graphGet(t, em, admin, "/v1.0/applications/"+id); strings.Contains(toJSON(got), secret) {
		t.Fatal("GET application returned the secret text")
	}
	// No service principal yet: a token for the new API fails with 500011, then works.
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {appID}, "client_secret": {secret}, "scope": {appID + "/.default"}}
	status, body = post(t, em, form)
	wantAAD(t, status, body, 400, "invalid_resource", 500011)
	status, sp := graphDo(t, em, http.MethodPost, admin, "/v1.0/servicePrincipals", map[string]any{"appId": appID})
	if status != 201 {
		t.Fatalf("create SP: %d %v", status, sp)
	}
	if status, body = post(t, em, form); status != 200 {
		t.Fatalf("client credentials with the new secret: %d %v", status, body)
	}
	status, _ = graphDo(t, em, http.MethodPost, admin, "/v1.0/servicePrincipals", map[string]any{"appId": appID})
	if status != 409 {
		t.Fatalf("second SP: %d, want 409", status)
	}
	// Admin consent for Graph scopes: created once, a duplicate is a conflict, PATCH merges.
	_, graphSPs := graphGet(t, em, admin, "/v1.0/servicePrincipals?$filter="+url.QueryEscape("appId eq '"+emulator.GraphAppID+"'"))
	graphSP := graphSPs["value"].([]any)[0].(map[string]any)["id"].(string)
	grant := map[string]any{"clientId": sp["id"], "consentType": "AllPrincipals", "resourceId": graphSP, "scope": "User.Read"}
	status, g := graphDo(t, em, http.MethodPost, admin, "/v1.0/oauth2PermissionGrants", grant)
	if status != 201 {
		t.Fatalf("create grant: %d %v", status, g)
	}
	if status, _ := graphDo(t, em, http.MethodPost, admin, "/v1.0/oauth2PermissionGrants", grant); status != 409 {
		t.Fatalf("duplicate grant: %d, want 409", status)
	}
	if status, body := graphDo(t, em, http.MethodPatch, admin, "/v1.0/oauth2PermissionGrants/"+g["id"].(string), map[string]any{"scope": "User.Read ServiceMessage.Read.All"}); status != 204 {
		t.Fatalf("patch grant: %d %v", status, body)
	}
	filter := url.QueryEscape("clientId eq '" + sp["id"].(string) + "' and resourceId eq '" + graphSP + "'")
	status, grants := graphGet(t, em, admin, "/v1.0/oauth2PermissionGrants?$filter="+filter)
	if vals := grants["value"].([]any); status != 200 || len(vals) != 1 || vals[0].(map[string]any)["scope"] != "User.Read ServiceMessage.Read.All" {
		t.Fatalf("grants: %d %v", status, grants)
	}
	// bob is no administrator: he may not register apps or grant consent.
	bob := adminGraphToken(t, em, "bob")
	if status, _ := graphDo(t, em, http.MethodPost, bob, "/v1.0/applications", map[string]any{"displayName": "x"}); status != 403 {
		t.Fatalf("bob creates an app: %d, want 403", status)
	}
	if status, _ := graphDo(t, em, http.MethodPost, bob, "/v1.0/oauth2PermissionGrants", grant); status != 403 {
		t.Fatalf("bob grants consent: %d, want 403", status)
	}
}
