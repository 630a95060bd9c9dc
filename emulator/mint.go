package emulator

import (
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// issue says who a token is for; mint turns it into an access token shaped like Entra's.
type issue struct {
	client     *Application
	clientAuth string // azpacr: "0" public, "1" secret, "2" certificate or assertion
	user       *User  // nil for app-only tokens
	mi         *ManagedIdentity
	resource   *Application
	viaURI     string   // the identifier the client named the resource by (v1 aud)
	scopes     []string // delegated scope values granted (scp)
	roles      []string
	mfa        bool
	profile    bool // the profile scope was granted: name and preferred_username appear
	authTime   time.Time
}

// defaultUserRoleTemplate is the "User" role every member has; Entra puts it in wids.
const defaultUserRoleTemplate = "b79fbf4d-3ef9-4689-8143-76b194e85509"

func (em *Emulator) lifetime() time.Duration {
	s := em.dir.settings
	lo, hi := time.Duration(s.AccessTokenLifetimeMin), time.Duration(s.AccessTokenLifetimeMax)
	if lo == 0 {
		lo = 60 * time.Minute
	}
	if hi < lo {
		hi = lo + 30*time.Minute
		if s.AccessTokenLifetimeMin != 0 && s.AccessTokenLifetimeMax == 0 {
			hi = lo
		}
	}
	if hi == lo {
		return lo
	}
	return lo + time.Duration(rand.Int64N(int64(hi-lo)))
}

// aioFor encodes the authentication facts the emulator needs later (MFA done, auth time) in the
// opaque aio claim, as Entra keeps its own session data there.
func aioFor(mfa bool, authTime time.Time) string {
	b, _ := json.Marshal(map[string]any{"m": mfa, "t": authTime.Unix()})
	return "E2." + base64.RawURLEncoding.EncodeToString(b) + "." + randomToken(6)
}

func parseAIO(aio string) (mfa bool, authTime time.Time) {
	parts := strings.Split(aio, ".")
	if len(parts) != 3 || parts[0] != "E2" {
		return false, time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false, time.Time{}
	}
	var v struct {
		M bool  `json:"m"`
		T int64 `json:"t"`
	}
	if json.Unmarshal(b, &v) != nil {
		return false, time.Time{}
	}
	return v.M, time.Unix(v.T, 0)
}

// mint issues an access token and returns it with its expiry.
func (em *Emulator) mint(is issue) (string, time.Time, error) {
	now := em.now()
	iat := now.Add(-5 * time.Minute) // Entra back-dates iat/nbf by five minutes for clock skew
	exp := iat.Add(em.lifetime())
	tid := em.dir.tenant.ID
	version := tokenVersion(is.resource)
	c := map[string]any{
		"iat": iat.Unix(), "nbf": iat.Unix(), "exp": exp.Unix(),
		"tid": tid, "uti": randomToken(16), "rh": "0.A" + randomToken(40) + ".",
		"aio": aioFor(is.mfa, is.authTime),
	}
	if version == 2 {
		c["ver"] = "2.0"
		c["iss"] = em.URL() + "/" + tid + "/v2.0"
		c["aud"] = is.resource.AppID
		if is.client != nil {
			c["azp"] = is.client.AppID
		}
		c["azpacr"] = is.clientAuth
	} else {
		c["ver"] = "1.0"
		c["iss"] = "https://sts.windows.net/" + tid + "/"
		c["aud"] = is.viaURI
		if is.client != nil {
			c["appid"] = is.client.AppID
			c["app_displayname"] = is.client.DisplayName
		}
		c["appidacr"] = is.clientAuth
	}
	if is.mi != nil {
		c["azp"] = is.mi.ClientID
		if version == 1 {
			c["appid"] = is.mi.ClientID
			delete(c, "app_displayname")
		}
	}
	if len(is.roles) > 0 {
		c["roles"] = is.roles
	}
	if is.user == nil {
		oid := ""
		if is.mi != nil {
			oid = is.mi.PrincipalID
		} else if sp := em.dir.spByAppID(is.client.AppID); sp != nil {
			oid = sp.ID
		}
		c["oid"], c["sub"], c["idtyp"] = oid, oid, "app"
		if version == 1 {
			c["idp"] = c["iss"]
		}
	} else {
		u := is.user
		c["oid"] = u.ID
		c["sub"] = pairwiseSubject(u.ID, is.client.AppID)
		c["scp"] = strings.Join(is.scopes, " ")
		if wids := em.dir.wids(u); len(wids) > 0 {
			c["wids"] = wids
		}
		if version == 2 {
			if is.profile {
				c["name"] = u.DisplayName
				c["preferred_username"] = u.UserPrincipalName
			}
		} else {
			amr := []string{"pwd"}
			if is.mfa {
				amr = append(amr, "mfa")
			}
			c["amr"], c["acr"], c["acct"], c["idtyp"] = amr, "1", 0, "user"
			c["name"], c["unique_name"], c["upn"] = u.DisplayName, u.UserPrincipalName, u.UserPrincipalName
			c["given_name"], c["family_name"] = u.GivenName, u.Surname
			c["ipaddr"], c["platf"] = "127.0.0.1", "3"
			if em.dir.tenant.Region != "" {
				c["tenant_region_scope"] = em.dir.tenant.Region
			}
		}
		em.addGroupsClaim(c, is.resource, u)
	}
	graph := is.resource.AppID == GraphAppID
	tok, err := em.sign(c, version == 1, graph)
	return tok, exp, err
}

// addGroupsClaim adds the groups claim when the resource app asks for it, or the overage
// indicator when the user has more groups than fit in a token.
func (em *Emulator) addGroupsClaim(c map[string]any, resource *Application, u *User) {
	if resource.GroupMembershipClaims == nil || *resource.GroupMembershipClaims == "None" {
		return
	}
	groups := em.dir.transitiveGroups(u)
	limit := em.dir.settings.GroupsOverageLimit
	if limit <= 0 {
		limit = 200
	}
	if len(groups) > limit {
		c["_claim_names"] = map[string]string{"groups": "src1"}
		c["_claim_sources"] = map[string]any{"src1": map[string]string{
			"endpoint": em.GraphURL() + "/v1.0/users/" + u.ID + "/getMemberObjects",
		}}
		return
	}
	ids := make([]string, 0, len(groups))
	for _, g := range groups {
		ids = append(ids, g.ID)
	}
	c["groups"] = ids
}

// idToken is the OpenID Connect ID token for client.
func (em *Emulator) idToken(client *Application, u *User, nonce string, mfa bool, authTime time.Time) (string, error) {
	now := em.now()
	iat := now.Add(-5 * time.Minute)
	c := map[string]any{
		"aud": client.AppID, "iss": em.Issuer(), "iat": iat.Unix(), "nbf": iat.Unix(), "exp": iat.Add(time.Hour).Unix(),
		"name": u.DisplayName, "oid": u.ID, "preferred_username": u.UserPrincipalName, "email": u.Mail,
		"sub": pairwiseSubject(u.ID, client.AppID), "tid": em.dir.tenant.ID, "ver": "2.0",
		"rh": "0.A" + randomToken(40) + ".", "uti": randomToken(16), "aio": aioFor(mfa, authTime),
	}
	if nonce != "" {
		c["nonce"] = nonce
	}
	return em.sign(c, false, false)
}

// clientInfo is the base64url JSON MSAL reads the account's home ids from.
func (em *Emulator) clientInfo(u *User) string {
	b, _ := json.Marshal(map[string]string{"uid": u.ID, "utid": em.dir.tenant.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

// respondToClient sends authorization-response parameters in the requested response mode.
func (em *Emulator) respondToClient(w http.ResponseWriter, redirectURI, mode string, v url.Values) {
	switch mode {
	case "form_post":
		writeFormPost(w, redirectURI, v)
	case "fragment":
		w.Header().Set("Location", redirectURI+"#"+v.Encode())
		w.WriteHeader(http.StatusFound)
	default:
		sep := "?"
		if strings.Contains(redirectURI, "?") {
			sep = "&"
		}
		w.Header().Set("Location", redirectURI+sep+v.Encode())
		w.WriteHeader(http.StatusFound)
	}
}
