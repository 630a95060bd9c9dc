package emulator

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// graphCaller is the validated bearer of a Graph request.
type graphCaller struct {
	user   *User // nil for app-only tokens
	appID  string
	scopes []string
	roles  []string
}

func (c *graphCaller) hasAny(delegated []string, app []string) bool {
	if c.user != nil {
		return slices.ContainsFunc(c.scopes, func(s string) bool { return slices.Contains(delegated, s) })
	}
	return slices.ContainsFunc(c.roles, func(s string) bool { return slices.Contains(app, s) })
}

// graphError is Graph's error envelope with its HTTP status.
type graphError struct {
	status  int
	code    string
	message string
}

func gerr(status int, code, msg string) *graphError { return &graphError{status, code, msg} }

var errInsufficient = gerr(http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")

func writeGraphError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	rid := newGUID()
	w.Header().Set("request-id", rid)
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"innerError": map[string]any{"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": rid, "client-request-id": r.Header.Get("client-request-id")},
	}})
}

// graphAuth validates the bearer token as Graph does: its own signature (nonce form included),
// Graph as audience, this tenant's v1 issuer, and lifetime.
func (em *Emulator) graphAuth(r *http.Request) (*graphCaller, *graphError) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return nil, gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
	}
	_, claims, err := em.verifyOwn(strings.TrimSpace(tok))
	if err != nil {
		if err == errMalformed {
			return nil, gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.")
		}
		return nil, gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid signature.")
	}
	switch claimString(claims, "aud") {
	case GraphResourceURI, GraphResourceURI + "/", GraphAppID:
	default:
		return nil, gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
	}
	if claimString(claims, "iss") != "https://sts.windows.net/"+em.dir.tenant.ID+"/" {
		return nil, gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid issuer.")
	}
	now := em.now().Unix()
	if exp := claimInt(claims, "exp"); exp == 0 || now >= exp {
		return nil, gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
	}
	if nbf := claimInt(claims, "nbf"); nbf > now+300 {
		return nil, gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is not yet valid.")
	}
	c := &graphCaller{appID: claimString(claims, "appid")}
	if scp := claimString(claims, "scp"); scp != "" {
		c.scopes = strings.Fields(scp)
		c.user = em.dir.userByID(claimString(claims, "oid"))
		if c.user == nil {
			return nil, gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "The user of this token no longer exists.")
		}
	}
	if roles, ok := claims["roles"].([]any); ok {
		for _, x := range roles {
			if s, ok := x.(string); ok {
				c.roles = append(c.roles, s)
			}
		}
	}
	if c.user == nil && claimString(claims, "idtyp") != "app" {
		return nil, gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure: no scp or roles.")
	}
	return c, nil
}

// graphRoute registers a Graph handler: counted in stats, authenticated, and run under the
// directory lock (write lock for methods that change state).
func (em *Emulator) graphRoute(mux *http.ServeMux, pattern string, h func(http.ResponseWriter, *http.Request, *graphCaller) *graphError) {
	write := !strings.HasPrefix(pattern, "GET ")
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		em.stats.countGraph(pattern)
		r.Body = http.MaxBytesReader(w, r.Body, 256<<10)
		if write {
			em.dir.mu.Lock()
			defer em.dir.mu.Unlock()
		} else {
			em.dir.mu.RLock()
			defer em.dir.mu.RUnlock()
		}
		c, ge := em.graphAuth(r)
		if ge == nil {
			ge = h(w, r, c)
		}
		if ge != nil {
			writeGraphError(w, r, ge.status, ge.code, ge.message)
		}
	})
}

func (em *Emulator) graphHandler() http.Handler {
	mux := http.NewServeMux()
	em.graphRoute(mux, "GET /v1.0/me", em.graphMe)
	em.graphRoute(mux, "GET /v1.0/users/{id}", em.graphUser)
	em.graphRoute(mux, "GET /oidc/userinfo", em.graphUserInfo)
	for _, p := range []string{"memberOf", "transitiveMemberOf"} {
		em.graphRoute(mux, "GET /v1.0/me/"+p, em.graphMemberOf)
		em.graphRoute(mux, "GET /v1.0/me/"+p+"/{cast}", em.graphMemberOf)
		em.graphRoute(mux, "GET /v1.0/users/{id}/"+p, em.graphMemberOf)
		em.graphRoute(mux, "GET /v1.0/users/{id}/"+p+"/{cast}", em.graphMemberOf)
	}
	em.graphRoute(mux, "POST /v1.0/me/getMemberObjects", em.graphMemberObjects)
	em.graphRoute(mux, "POST /v1.0/users/{id}/getMemberObjects", em.graphMemberObjects)
	em.graphRoute(mux, "GET /v1.0/admin/serviceAnnouncement/messages", em.graphMessages)
	em.graphRoute(mux, "GET /v1.0/admin/serviceAnnouncement/messages/{id}", em.graphMessage)
	em.graphRoute(mux, "GET /v1.0/organization", em.graphOrganization)
	em.registerAppRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeGraphError(w, r, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+truncate(lastSegment(r.URL.Path), 80)+"'. (Not modelled by the entramcp emulator.)")
	})
	return mux
}

func lastSegment(p string) string {
	p = strings.TrimSuffix(p, "/")
	return p[strings.LastIndex(p, "/")+1:]
}

// targetUser resolves /me or /users/{id} for the caller, with Graph's permission rules.
func (em *Emulator) targetUser(r *http.Request, c *graphCaller, self []string, others []string, appRoles []string) (*User, *graphError) {
	id := r.PathValue("id")
	if id == "" {
		if c.user == nil {
			return nil, gerr(http.StatusBadRequest, "BadRequest", "/me request is only valid with delegated authentication flow.")
		}
		if !c.hasAny(self, nil) {
			return nil, errInsufficient
		}
		return c.user, nil
	}
	u := em.dir.userByHint(id)
	if u == nil || (!isGUID(id) && !strings.Contains(id, "@")) {
		return nil, gerr(http.StatusNotFound, "Request_ResourceNotFound", "Resource '"+truncate(id, 80)+"' does not exist or one of its queried reference-property objects are not present.")
	}
	if c.user != nil && c.user.ID == u.ID && c.hasAny(self, nil) {
		return u, nil
	}
	if !c.hasAny(others, appRoles) {
		return nil, errInsufficient
	}
	return u, nil
}

var userReadSelf = []string{"User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All", "Directory.Read.All"}
var userReadAll = []string{"User.ReadBasic.All", "User.Read.All", "Directory.Read.All"}

func (em *Emulator) graphMe(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	u, ge := em.targetUser(r, c, userReadSelf, userReadAll, []string{"User.Read.All", "Directory.Read.All"})
	if ge != nil {
		return ge
	}
	return writeEntity(w, r, em.GraphURL()+"/v1.0/$metadata#users/$entity", userJSON(u))
}

func (em *Emulator) graphUser(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	return em.graphMe(w, r, c)
}

func (em *Emulator) graphUserInfo(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	if c.user == nil {
		return gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "userinfo needs a user token.")
	}
	u := c.user
	writeJSON(w, http.StatusOK, map[string]any{"sub": pairwiseSubject(u.ID, c.appID), "name": u.DisplayName,
		"family_name": u.Surname, "given_name": u.GivenName, "email": u.Mail, "picture": em.GraphURL() + "/v1.0/me/photo/$value"})
	return nil
}

func userJSON(u *User) map[string]any {
	return map[string]any{
		"id": u.ID, "displayName": u.DisplayName, "givenName": u.GivenName, "surname": u.Surname,
		"userPrincipalName": u.UserPrincipalName, "mail": nullIfEmpty(u.Mail), "jobTitle": nullIfEmpty(u.JobTitle),
		"officeLocation": nullIfEmpty(u.OfficeLocation), "businessPhones": u.BusinessPhones, "mobilePhone": u.MobilePhone,
		"preferredLanguage": nullIfEmpty(u.PreferredLanguage),
	}
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// writeEntity writes one object, honouring $select.
func writeEntity(w http.ResponseWriter, r *http.Request, context string, obj map[string]any) *graphError {
	obj, ge := applySelect(obj, r.URL.Query().Get("$select"))
	if ge != nil {
		return ge
	}
	obj["@odata.context"] = context
	writeJSON(w, http.StatusOK, obj)
	return nil
}

func applySelect(obj map[string]any, sel string) (map[string]any, *graphError) {
	if sel == "" {
		return obj, nil
	}
	out := map[string]any{}
	if t, ok := obj["@odata.type"]; ok {
		out["@odata.type"] = t
	}
	for _, f := range strings.Split(sel, ",") {
		f = strings.TrimSpace(f)
		v, ok := obj[f]
		if !ok {
			return nil, gerr(http.StatusBadRequest, "BadRequest", "Could not find a property named '"+truncate(f, 60)+"' on type 'microsoft.graph.entity'.")
		}
		out[f] = v
	}
	return out, nil
}

func (em *Emulator) graphMemberOf(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	memberScopes := []string{"GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"}
	u, ge := em.targetUser(r, c, memberScopes, memberScopes, []string{"GroupMember.Read.All", "Directory.Read.All"})
	if ge != nil {
		return ge
	}
	cast := r.PathValue("cast")
	if cast != "" && cast != "microsoft.graph.group" && cast != "microsoft.graph.directoryRole" {
		return gerr(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+truncate(cast, 60)+"'.")
	}
	q := r.URL.Query()
	eventual := strings.EqualFold(r.Header.Get("ConsistencyLevel"), "eventual")
	if (q.Get("$count") != "" || q.Get("$filter") != "" || q.Get("$search") != "") && !eventual {
		return gerr(http.StatusBadRequest, "Request_UnsupportedQuery", "Request with $filter, $count or $search on memberOf requires the ConsistencyLevel header set to eventual.")
	}
	transitive := strings.Contains(r.URL.Path, "/transitiveMemberOf")
	var items []map[string]any
	if cast != "microsoft.graph.directoryRole" {
		groups := em.dir.transitiveGroups(u)
		for _, g := range groups {
			if transitive || em.dir.directMember(g, u) {
				items = append(items, groupJSON(g))
			}
		}
	}
	if cast != "microsoft.graph.group" {
		for _, role := range u.DirectoryRoles {
			id := directoryRoleTemplates[role]
			items = append(items, map[string]any{"@odata.type": "#microsoft.graph.directoryRole", "id": deriveGUID("role", id), "displayName": role, "roleTemplateId": id})
		}
	}
	items, ge = filterObjects(items, q.Get("$filter"), memberFilterFields)
	if ge != nil {
		return ge
	}
	return em.writePage(w, r, items, 100, 999, "directoryObjects")
}

func groupJSON(g *Group) map[string]any {
	gt := g.GroupTypes
	if gt == nil {
		gt = []string{}
	}
	return map[string]any{"@odata.type": "#microsoft.graph.group", "id": g.ID, "displayName": g.DisplayName,
		"description": nullIfEmpty(g.Description), "securityEnabled": g.SecurityEnabled, "mailEnabled": g.MailEnabled, "groupTypes": gt}
}

func (em *Emulator) graphMemberObjects(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	memberScopes := []string{"GroupMember.Read.All", "Group.Read.All", "Directory.Read.All", "User.Read"}
	u, ge := em.targetUser(r, c, memberScopes, memberScopes[:3], []string{"GroupMember.Read.All", "Directory.Read.All"})
	if ge != nil {
		return ge
	}
	ids := []string{}
	for _, g := range em.dir.transitiveGroups(u) {
		ids = append(ids, g.ID)
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": ids})
	return nil
}

func (em *Emulator) graphOrganization(w http.ResponseWriter, r *http.Request, c *graphCaller) *graphError {
	t := em.dir.tenant
	writeJSON(w, http.StatusOK, map[string]any{"value": []map[string]any{{
		"id": t.ID, "displayName": t.DisplayName,
		"verifiedDomains": []map[string]any{{"name": t.Domain, "isDefault": true, "isInitial": true, "type": "Managed"}},
	}}})
	return nil
}

// writePage returns a collection page. As in Graph, $top sets the page size (0 returns only the
// count), Prefer: odata.maxpagesize does too, and @odata.nextLink continues with an opaque
// $skiptoken; @odata.count comes with $count=true.
func (em *Emulator) writePage(w http.ResponseWriter, r *http.Request, items []map[string]any, defSize, maxSize int, set string) *graphError {
	q := r.URL.Query()
	size := defSize
	if p := preferMaxPageSize(r); p > 0 {
		size = min(p, maxSize)
		w.Header().Set("Preference-Applied", "odata.maxpagesize="+strconv.Itoa(size))
	}
	if t := q.Get("$top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > maxSize {
			return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid page size specified: '"+truncate(t, 20)+"'. Must be between 0 and "+strconv.Itoa(maxSize)+" inclusive.")
		}
		size = n
	}
	offset := 0
	if s := q.Get("$skip"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return gerr(http.StatusBadRequest, "BadRequest", "Invalid value '"+truncate(s, 20)+"' for $skip query option.")
		}
		offset = n
	}
	if tok := q.Get("$skiptoken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 {
			return gerr(http.StatusBadRequest, "BadRequest", "The $skiptoken is not valid.")
		}
		offset = n
	}
	count := len(items)
	offset = min(offset, count)
	end := min(count, offset+size)
	sel := q.Get("$select")
	out := make([]map[string]any, 0, end-offset)
	for _, it := range items[offset:end] {
		s, ge := applySelect(it, sel)
		if ge != nil {
			return ge
		}
		out = append(out, s)
	}
	resp := map[string]any{"@odata.context": em.GraphURL() + "/v1.0/$metadata#" + set, "value": out}
	if strings.EqualFold(q.Get("$count"), "true") {
		resp["@odata.count"] = count
	}
	if size > 0 && end < count {
		next := url.Values{}
		for k, v := range q {
			if k != "$skip" && k != "$skiptoken" {
				next[k] = v
			}
		}
		next.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end))))
		resp["@odata.nextLink"] = em.GraphURL() + r.URL.Path + "?" + next.Encode()
	}
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
	_ = json.NewEncoder(w).Encode(resp)
	return nil
}

func preferMaxPageSize(r *http.Request) int {
	for _, p := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(p, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && strings.EqualFold(k, "odata.maxpagesize") {
				if n, err := strconv.Atoi(strings.Trim(v, `"`)); err == nil && n > 0 {
					return n
				}
			}
		}
	}
	return 0
}
