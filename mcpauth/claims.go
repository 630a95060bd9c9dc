package mcpauth

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A tool that learns from Entra that the user must sign in again with more claims (MFA via
// conditional access, AADSTS50076/50079) cannot change the HTTP status itself: the go-sdk writes
// the response. RequestClaimsChallenge records the challenge for the request, and Require's
// response writer turns the response into HTTP 401 with
// `WWW-Authenticate: Bearer error="insufficient_claims", claims="<base64>"` before anything is
// sent, so MCP clients that understand claims challenges can re-authenticate.

// requestIDHeader carries a per-request slot id from Require to tools (the go-sdk hands tools
// the request headers). Require always overwrites it, so a client cannot aim at another slot.
const requestIDHeader = "Entramcp-Request"

var (
	slots   sync.Map // id -> *challengeSlot
	slotSeq atomic.Uint64
)

type challengeSlot struct {
	mu     sync.Mutex
	claims string
}

// RequestClaimsChallenge asks for the current request to be answered with an
// insufficient_claims challenge carrying claims (the JSON claims string from Entra). It reports
// whether the transport can carry it; when false the tool's own error result is all the client
// gets.
func RequestClaimsChallenge(req mcp.Request, claims string) bool {
	if req == nil || req.GetExtra() == nil || req.GetExtra().Header == nil || claims == "" {
		return false
	}
	v, ok := slots.Load(req.GetExtra().Header.Get(requestIDHeader))
	if !ok {
		return false
	}
	s := v.(*challengeSlot)
	s.mu.Lock()
	s.claims = claims
	s.mu.Unlock()
	return true
}

// withChallengeSlot registers a slot for r and returns the writer that honours it.
func (a *Auth) withChallengeSlot(w http.ResponseWriter, r *http.Request) (*challengeWriter, func()) {
	id := strconv.FormatUint(slotSeq.Add(1), 36)
	slot := &challengeSlot{}
	slots.Store(id, slot)
	r.Header[requestIDHeader] = []string{id}
	return &challengeWriter{ResponseWriter: w, slot: slot, a: a, r: r}, func() { slots.Delete(id) }
}

type challengeWriter struct {
	http.ResponseWriter
	slot       *challengeSlot
	a          *Auth
	r          *http.Request
	decided    bool
	suppressed bool
}

func (c *challengeWriter) decide(status int) {
	if c.decided {
		return
	}
	c.decided = true
	c.slot.mu.Lock()
	claims := c.slot.claims
	c.slot.mu.Unlock()
	if claims == "" || status != http.StatusOK {
		return
	}
	c.suppressed = true
	h := c.ResponseWriter.Header()
	for _, k := range []string{"Content-Type", "Cache-Control", "Connection", "Mcp-Session-Id"} {
		h.Del(k)
	}
	if c.a.opts.OnDenied != nil {
		c.a.opts.OnDenied(c.r, "insufficient_claims", http.StatusUnauthorized)
	}
	desc := "additional authentication (for example multi-factor authentication) is required; sign in again with the claims in this challenge"
	h.Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_claims", error_description="%s", claims="%s", %s`,
		desc, base64.StdEncoding.EncodeToString([]byte(claims)), c.a.challenge))
	writeError(c.ResponseWriter, http.StatusUnauthorized, "insufficient_claims", desc)
}

func (c *challengeWriter) WriteHeader(code int) {
	c.decide(code)
	if !c.suppressed {
		c.ResponseWriter.WriteHeader(code)
	}
}

func (c *challengeWriter) Write(b []byte) (int, error) {
	c.decide(http.StatusOK)
	if c.suppressed {
		return len(b), nil
	}
	return c.ResponseWriter.Write(b)
}

func (c *challengeWriter) Flush() {
	if c.suppressed {
		return
	}
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (c *challengeWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
