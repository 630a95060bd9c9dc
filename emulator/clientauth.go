package emulator

import (
	"crypto/sha1" // #nosec: x5t thumbprints are SHA-1 by definition
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const assertionTypeJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// authenticatedClient is the outcome of client authentication.
type authenticatedClient struct {
	app *Application
	acr string // "0" public, "1" secret, "2" certificate or federated assertion
}

// authenticateClient identifies the calling app and checks its credential. public says whether
// this request is a public-client flow (no credential allowed) or a confidential one (credential
// required), as Entra decides per flow and redirect platform. The caller holds the directory lock.
func (em *Emulator) authenticateClient(r *http.Request, form url.Values, public func(*Application) bool) (*authenticatedClient, *aadError) {
	clientID := form.Get("client_id")
	secret := form.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		bu, err1 := url.QueryUnescape(u)
		bp, err2 := url.QueryUnescape(p)
		if err1 != nil || err2 != nil {
			return nil, aad("invalid_client", 7000215, "Invalid client secret provided: the Authorization header is not valid.")
		}
		if clientID != "" && clientID != bu {
			return nil, aad("invalid_request", 9002313, "Invalid request. Request is malformed or invalid: client_id in the body differs from the Authorization header.")
		}
		if secret != "" {
			return nil, aad("invalid_request", 9002313, "Invalid request. The client secret was sent both in the body and in the Authorization header.")
		}
		clientID, secret = bu, bp
	}
	if clientID == "" {
		return nil, aad("invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
	}
	if !isGUID(clientID) {
		return nil, aad("unauthorized_client", 700038, "%s is not a valid application identifier.", clientID)
	}
	app := em.dir.appByAppID(clientID)
	if app == nil {
		return nil, aad("unauthorized_client", 700016, "Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, em.dir.tenant.DisplayName)
	}
	assertion, assertionType := form.Get("client_assertion"), form.Get("client_assertion_type")
	hasCred := secret != "" || assertion != ""
	if public(app) {
		if hasCred {
			return nil, aad("invalid_client", 700025, "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.")
		}
		return &authenticatedClient{app: app, acr: "0"}, nil
	}
	switch {
	case !hasCred:
		return nil, aad("invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	case secret != "" && assertion != "":
		return nil, aad("invalid_request", 9002313, "Invalid request. Both client_secret and client_assertion were presented.")
	case secret != "":
		if e := em.checkSecret(app, secret); e != nil {
			return nil, e
		}
		return &authenticatedClient{app: app, acr: "1"}, nil
	}
	if assertionType != assertionTypeJWTBearer {
		return nil, aad("invalid_request", 700023, "The client_assertion_type '%s' is not supported; use '%s'.", truncate(assertionType, 80), assertionTypeJWTBearer)
	}
	if e := em.checkAssertion(r, app, assertion); e != nil {
		return nil, e
	}
	return &authenticatedClient{app: app, acr: "2"}, nil
}

func (em *Emulator) checkSecret(app *Application, secret string) *aadError {
	now := em.now()
	expired := false
	for _, p := range app.PasswordCredentials {
		if p.SecretText == "" || subtle.ConstantTimeCompare([]byte(p.SecretText), []byte(secret)) != 1 {
			continue
		}
		if p.EndDateTime != nil && now.After(*p.EndDateTime) {
			expired = true
			continue
		}
		return nil
	}
	if expired {
		return aad("invalid_client", 7000222, "The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app.", app.AppID)
	}
	return aad("invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", app.AppID)
}

// checkAssertion accepts a certificate assertion (PS256 with x5t#S256, padded standard or
// base64url; RS256 with x5t) or a federated credential: a token the emulator issued (managed
// identity) matching one of the app's federated identity credentials.
func (em *Emulator) checkAssertion(r *http.Request, app *Application, assertion string) *aadError {
	parser := jwt.NewParser(jwt.WithoutClaimsValidation())
	unverified, _, err := parser.ParseUnverified(assertion, jwt.MapClaims{})
	if err != nil {
		return aad("invalid_client", 50027, "JWT token is invalid or malformed.")
	}
	_, has256 := unverified.Header["x5t#S256"]
	_, has1 := unverified.Header["x5t"]
	if !has256 && !has1 {
		return em.checkFederatedAssertion(app, assertion)
	}
	cert := findCertificate(app, unverified.Header)
	if cert == nil {
		return aad("invalid_client", 700027, "Client assertion failed signature validation. Reason: the key was not found (no certificate with this thumbprint is registered for app '%s').", app.AppID)
	}
	claims := jwt.MapClaims{}
	_, err = jwt.NewParser(jwt.WithValidMethods([]string{"PS256", "RS256"}), jwt.WithoutClaimsValidation()).
		ParseWithClaims(assertion, claims, func(*jwt.Token) (any, error) { return cert.PublicKey, nil })
	if err != nil {
		return aad("invalid_client", 700027, "Client assertion failed signature validation.")
	}
	if iss, _ := claims["iss"].(string); iss != app.AppID {
		return aad("invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' parameter.")
	}
	if sub, _ := claims["sub"].(string); sub != app.AppID {
		return aad("invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' parameter.")
	}
	if !em.tokenEndpointAudience(r, claims) {
		return aad("invalid_client", 700027, "Client assertion contains an invalid audience: it must be the token endpoint URL.")
	}
	now := em.now()
	exp, _ := claims.GetExpirationTime()
	nbf, _ := claims.GetNotBefore()
	if exp == nil || now.After(exp.Time.Add(5*time.Minute)) || (nbf != nil && now.Add(5*time.Minute).Before(nbf.Time)) {
		return aad("invalid_client", 700024, "Client assertion is not within its valid time range.")
	}
	return nil
}

// tokenEndpointAudience accepts the token endpoint URL with the tenant named as in the request,
// by id or by domain.
func (em *Emulator) tokenEndpointAudience(r *http.Request, claims jwt.MapClaims) bool {
	aud, err := claims.GetAudience()
	if err != nil {
		return false
	}
	ok := []string{
		em.URL() + r.URL.Path,
		em.URL() + "/" + em.dir.tenant.ID + "/oauth2/v2.0/token",
		em.URL() + "/" + em.dir.tenant.Domain + "/oauth2/v2.0/token",
	}
	for _, a := range aud {
		if slices.Contains(ok, a) {
			return true
		}
	}
	return false
}

func findCertificate(app *Application, header map[string]any) *x509.Certificate {
	want256, _ := header["x5t#S256"].(string)
	want1, _ := header["x5t"].(string)
	for _, kc := range app.KeyCredentials {
		der, err := base64.StdEncoding.DecodeString(kc.Key)
		if err != nil {
			continue
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			continue
		}
		s256 := sha256.Sum256(der)
		s1 := sha1.Sum(der) // #nosec G401
		if (want256 != "" && thumbprintMatches(want256, s256[:])) || (want1 != "" && thumbprintMatches(want1, s1[:])) {
			return cert
		}
	}
	return nil
}

// thumbprintMatches accepts the encodings clients use: padded standard base64 (MSAL Go),
// base64url with or without padding, and hex.
func thumbprintMatches(got string, sum []byte) bool {
	for _, enc := range []string{
		base64.StdEncoding.EncodeToString(sum), base64.RawStdEncoding.EncodeToString(sum),
		base64.URLEncoding.EncodeToString(sum), base64.RawURLEncoding.EncodeToString(sum),
		hex.EncodeToString(sum), strings.ToUpper(hex.EncodeToString(sum)),
	} {
		if subtle.ConstantTimeCompare([]byte(got), []byte(enc)) == 1 {
			return true
		}
	}
	return false
}

func (em *Emulator) checkFederatedAssertion(app *Application, assertion string) *aadError {
	h, claims, err := em.verifyOwn(assertion)
	if err != nil || h.Nonce != "" {
		return aad("invalid_client", 700027, "Client assertion failed signature validation. The emulator verifies federated assertions it issued itself (managed identity tokens) only.")
	}
	if exp := claimInt(claims, "exp"); exp == 0 || em.now().Unix() > exp {
		return aad("invalid_client", 700024, "Client assertion is not within its valid time range.")
	}
	iss, sub := claimString(claims, "iss"), claimString(claims, "sub")
	auds := audiences(claims)
	for _, fic := range app.FederatedIdentityCredentials {
		if fic.Issuer != iss || fic.Subject != sub {
			continue
		}
		for _, a := range auds {
			if slices.Contains(fic.Audiences, a) || (a == TokenExchangeAppID && slices.ContainsFunc(fic.Audiences, func(x string) bool { return strings.HasPrefix(x, TokenExchangeAudience) })) {
				return nil
			}
		}
	}
	return aad("invalid_request", 70021, "No matching federated identity record found for presented assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: '%s'.", iss, sub, strings.Join(auds, ","))
}

func audiences(c map[string]any) []string {
	switch v := c["aud"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
