package emulator

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// deviceGrant is a pending device-code sign-in (RFC 8628), used by `entramcp setup` with the
// Azure CLI client id.
type deviceGrant struct {
	clientID   string
	userCode   string
	scopes     *scopeRequest
	expires    time.Time
	userID     string // set once approved
	declined   bool
	redeemed   bool
	approvedAt time.Time
}

const deviceCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ23456789"

func newUserCode() string {
	b := []byte(randomToken(12))
	out := make([]byte, 9)
	for i := range out {
		out[i] = deviceCodeAlphabet[int(b[i])%len(deviceCodeAlphabet)]
	}
	return string(out)
}

func (em *Emulator) handleDeviceCode(w http.ResponseWriter, r *http.Request) {
	if _, e := em.resolveTenant(r.PathValue("tenant")); e != nil {
		em.writeTokenError(w, r, e)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		em.writeTokenError(w, r, aad("invalid_request", 900561, "The endpoint only accepts POST requests with a form body."))
		return
	}
	em.dir.mu.RLock()
	defer em.dir.mu.RUnlock()
	ca, e := em.authenticateClient(r, r.PostForm, func(a *Application) bool { return isFallbackPublic(a) })
	if e != nil {
		em.writeTokenError(w, r, e)
		return
	}
	sr, e := em.dir.parseScopes(r.PostForm.Get("scope"))
	if e != nil {
		em.writeTokenError(w, r, e)
		return
	}
	dc, uc := randomToken(48), newUserCode()
	em.grantsMu.Lock()
	em.devices[hashToken(dc)] = &deviceGrant{clientID: ca.app.AppID, userCode: uc, scopes: sr, expires: em.now().Add(15 * time.Minute)}
	em.grantsMu.Unlock()
	verify := em.URL() + "/common/oauth2/deviceauth"
	writeJSON(w, http.StatusOK, map[string]any{
		"user_code": uc, "device_code": dc, "verification_uri": verify, "expires_in": 900, "interval": 5,
		"message": fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", verify, uc),
	})
}

// ApproveDevice signs user in for a pending device code, as a person would on the device page.
func (em *Emulator) ApproveDevice(userCode, user string) error {
	em.dir.mu.Lock()
	defer em.dir.mu.Unlock()
	u := em.dir.userByHint(user)
	if u == nil {
		return fmt.Errorf("unknown user %q", user)
	}
	return em.approveDevice(userCode, u)
}

func (em *Emulator) approveDevice(userCode string, u *User) error {
	em.grantsMu.Lock()
	var g *deviceGrant
	for _, d := range em.devices {
		if strings.EqualFold(d.userCode, strings.ReplaceAll(userCode, "-", "")) && d.userID == "" {
			g = d
		}
	}
	em.grantsMu.Unlock()
	if g == nil || em.now().After(g.expires) {
		return fmt.Errorf("no pending sign-in for code %q", userCode)
	}
	client := em.dir.appByAppID(g.clientID)
	if _, missing := em.dir.grantScopes(client, u, g.scopes); len(missing) > 0 {
		if !em.canConsent(u, g.scopes.resource, missing) {
			return fmt.Errorf("AADSTS90094: %s needs admin approval for %s", client.DisplayName, strings.Join(missing, " "))
		}
		em.recordUserConsent(client, g.scopes.resource, u, missing, false)
	}
	em.grantsMu.Lock()
	g.userID, g.approvedAt = u.ID, em.now()
	em.grantsMu.Unlock()
	return nil
}

// handleDevicePage is the verification page: enter the code and pick an account.
func (em *Emulator) handleDevicePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Frame-Options", "DENY")
	msg := ""
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
		_ = r.ParseForm()
		em.dir.mu.Lock()
		u := em.dir.userByHint(r.PostForm.Get("emu_user"))
		var err error
		if u == nil {
			err = fmt.Errorf("pick an account")
		} else {
			err = em.approveDevice(r.PostForm.Get("otc"), u)
		}
		em.dir.mu.Unlock()
		if err == nil {
			fmt.Fprint(w, `<!doctype html><title>Signed in</title><h1 id="done">You have signed in.</h1><p>You may now close this window.</p>`)
			return
		}
		msg = err.Error()
	}
	em.dir.mu.RLock()
	users := em.dir.users
	em.dir.mu.RUnlock()
	_ = devicePage.Execute(w, map[string]any{"Users": users, "Message": msg})
}

var devicePage = template.Must(template.New("device").Parse(`<!doctype html><title>Enter code</title>
<h1>Enter code</h1><p>Enter the code displayed on your app or device.</p>{{if .Message}}<p id="error">{{.Message}}</p>{{end}}
<form method="post"><input name="otc" id="otc" autocomplete="off">
{{range .Users}}<button id="user-{{.Name}}" name="emu_user" value="{{.Name}}">Continue as {{.DisplayName}}</button>{{end}}</form>`))

func (em *Emulator) grantDevice(r *http.Request, form url.Values) (map[string]any, *aadError) {
	dc := form.Get("device_code")
	if dc == "" {
		return nil, aad("invalid_request", 900144, "The request body must contain the following parameter: 'device_code'.")
	}
	ca, e := em.authenticateClient(r, form, func(a *Application) bool { return isFallbackPublic(a) })
	if e != nil {
		return nil, e
	}
	em.grantsMu.Lock()
	g := em.devices[hashToken(dc)]
	var snapshot deviceGrant
	if g != nil {
		snapshot = *g
		if g.userID != "" && !g.redeemed && ca.app.AppID == g.clientID {
			g.redeemed = true
		}
	}
	em.grantsMu.Unlock()
	switch {
	case g == nil || ca.app.AppID != snapshot.clientID:
		return nil, aad("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid: the device code is not valid.")
	case snapshot.redeemed:
		return nil, aad("invalid_grant", 54005, "The device code was already redeemed.")
	case em.now().After(snapshot.expires):
		return nil, aad("expired_token", 70020, "The provided value for the input parameter 'device_code' is not valid. This device code has expired.")
	case snapshot.declined:
		return nil, aad("authorization_declined", 70019, "The user declined the sign-in.")
	case snapshot.userID == "":
		return nil, aad("authorization_pending", 70016, "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
	}
	u := em.dir.userByID(snapshot.userID)
	rg := &refreshGrant{clientID: ca.app.AppID, userID: u.ID, platform: "publicClient", oidc: snapshot.scopes.oidc, scopes: snapshot.scopes, mfa: true, authTime: snapshot.approvedAt}
	return em.userTokens(ca, u, snapshot.scopes, rg, "", form)
}
