package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// aadError is an Entra error: the OAuth error code, the AADSTS number and its text. It is
// rendered as the token endpoint's JSON envelope (ENTRA-FACTS section 6), as redirect parameters
// from /authorize, or as the sign-in error page.
type aadError struct {
	Status   int
	Err      string
	Code     int
	Message  string
	SubError string
	Claims   string
}

func (e *aadError) Error() string { return fmt.Sprintf("%s: AADSTS%d: %s", e.Err, e.Code, e.Message) }

func aad(errCode string, code int, format string, args ...any) *aadError {
	status := http.StatusBadRequest
	if errCode == "invalid_client" {
		status = http.StatusUnauthorized // the one error Entra returns as 401
	}
	return &aadError{Status: status, Err: errCode, Code: code, Message: fmt.Sprintf(format, args...)}
}

// description is the AADSTS text with the trace lines Entra appends.
func (e *aadError) description(traceID, correlationID string, now time.Time) string {
	return fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
		e.Code, e.Message, traceID, correlationID, now.UTC().Format("2006-01-02 15:04:05Z"))
}

// writeTokenError writes the JSON error envelope of the token endpoint.
func (em *Emulator) writeTokenError(w http.ResponseWriter, r *http.Request, e *aadError) {
	now := em.now()
	trace, corr := newGUID(), correlationID(r)
	body := map[string]any{
		"error":             e.Err,
		"error_description": e.description(trace, corr, now),
		"error_codes":       []int{e.Code},
		"timestamp":         now.UTC().Format("2006-01-02 15:04:05Z"),
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         fmt.Sprintf("%s/error?code=%d", em.URL(), e.Code),
	}
	if e.SubError != "" {
		body["suberror"] = e.SubError
	}
	if e.Claims != "" {
		body["claims"] = e.Claims
	}
	em.countError(e.Code)
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, e.Status, body)
}

// redirectError sends an /authorize error back to a validated redirect URI.
func (em *Emulator) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, responseMode, state string, e *aadError) {
	em.countError(e.Code)
	v := url.Values{}
	v.Set("error", e.Err)
	v.Set("error_description", e.description(newGUID(), correlationID(r), em.now()))
	v.Set("error_uri", fmt.Sprintf("%s/error?code=%d", em.URL(), e.Code))
	if state != "" {
		v.Set("state", state)
	}
	em.respondToClient(w, redirectURI, responseMode, v)
}

// correlationID echoes the client's client-request-id as Entra does, or makes one.
func correlationID(r *http.Request) string {
	if id := r.Header.Get("client-request-id"); isGUID(id) {
		return id
	}
	return newGUID()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
