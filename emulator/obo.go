package emulator

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// grantOBO is the On-Behalf-Of flow (ENTRA-FACTS section 4): a middle-tier app exchanges the
// user's access token for one to a downstream resource, with every rule Entra enforces.
func (em *Emulator) grantOBO(r *http.Request, form url.Values) (map[string]any, *aadError) {
	ca, e := em.authenticateClient(r, form, func(*Application) bool { return false })
	if e != nil {
		return nil, e
	}
	if form.Get("requested_token_use") != "on_behalf_of" {
		return nil, aad("invalid_request", 900144, "The request body must contain the following parameter: 'requested_token_use' with the value 'on_behalf_of'.")
	}
	assertion := form.Get("assertion")
	if assertion == "" {
		return nil, aad("invalid_request", 900144, "The request body must contain the following parameter: 'assertion'.")
	}
	h, claims, err := em.verifyOwn(assertion)
	switch {
	case err == errMalformed:
		return nil, aad("invalid_grant", 50027, "JWT token is invalid or malformed.")
	case err != nil || h.Nonce != "":
		// A Graph token's nonce header makes its signature unverifiable: Entra refuses it here.
		return nil, aad("invalid_grant", 50013, "Assertion failed signature validation. [Reason - The key was not found or the token is not meant for this app (e.g. a Microsoft Graph token).]")
	}
	tid := em.dir.tenant.ID
	if iss := claimString(claims, "iss"); iss != em.URL()+"/"+tid+"/v2.0" && iss != "https://sts.windows.net/"+tid+"/" {
		return nil, aad("invalid_grant", 50013, "Assertion failed signature validation. [Reason - The issuer '%s' is not this tenant's.]", truncate(iss, 200))
	}
	_, hasScp := claims["scp"]
	_, hasRoles := claims["roles"]
	isApp := claimString(claims, "idtyp") == "app"
	if !hasScp && !hasRoles && !isApp && claimString(claims, "azp") == "" && claimString(claims, "appid") == "" {
		return nil, aad("invalid_grant", 240002, "Input id_token cannot be used as 'urn:ietf:params:oauth:grant-type:jwt-bearer' grant.")
	}
	aud := claimString(claims, "aud")
	if !strings.EqualFold(aud, ca.app.AppID) && !slices.ContainsFunc(ca.app.IdentifierURIs, func(u string) bool { return strings.EqualFold(u, aud) }) {
		return nil, aad("invalid_grant", 500131, "Assertion audience does not match the Client app presenting the assertion. The audience in the assertion was '%s' and the expected audience is '%s' or one of the Application Id URIs of this application.", truncate(aud, 200), ca.app.AppID)
	}
	if exp := claimInt(claims, "exp"); exp == 0 || em.now().Unix() >= exp {
		return nil, aad("invalid_grant", 500133, "Assertion is not within its valid time range. Ensure that the access token is not expired before using it for user assertion, or request a new token. Current time: %s, expiry time of assertion %s.",
			em.now().UTC().Format("2006-01-02T15:04:05.0000000Z"), time.Unix(exp, 0).UTC().Format("2006-01-02T15:04:05.0000000Z"))
	}
	if isApp || !hasScp {
		return nil, aad("unauthorized_client", 7000114, "Application '%s' is not allowed to make application on-behalf-of calls.", ca.app.AppID)
	}
	u := em.dir.userByID(claimString(claims, "oid"))
	if u == nil {
		return nil, aad("invalid_grant", 50034, "The user account does not exist in the %s directory.", em.dir.tenant.Domain)
	}
	mfa, authTime := parseAIO(claimString(claims, "aio"))
	if em.revokedBefore(u, time.Unix(claimInt(claims, "iat"), 0)) {
		return nil, aad("invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed.")
	}
	sr, e := em.dir.parseScopes(form.Get("scope"))
	if e != nil {
		return nil, e
	}
	rg := &refreshGrant{clientID: ca.app.AppID, userID: u.ID, platform: "web", oidc: sr.oidc, scopes: sr, mfa: mfa, authTime: authTime}
	return em.userTokens(ca, u, sr, rg, "", form)
}

// pkceMatches checks a code_verifier against the stored challenge (S256 or plain).
func pkceMatches(challenge, method, verifier string) bool {
	if verifier == "" {
		return false
	}
	if method == "S256" {
		sum := sha256.Sum256([]byte(verifier))
		return constantTimeEqual(base64.RawURLEncoding.EncodeToString(sum[:]), challenge)
	}
	return constantTimeEqual(verifier, challenge)
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
