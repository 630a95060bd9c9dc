package emulator

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/entramcp/entramcp/internal/httpx"
)

// Target names one of the emulator's two services for fault injection.
type Target string

const (
	// Login is the identity endpoint: discovery, /authorize, /token, managed identity.
	Login Target = "login"
	// Graph is the Microsoft Graph stand-in.
	Graph Target = "graph"
)

// OutageMode says how an outage looks to clients.
type OutageMode string

const (
	// OutageRefuse closes the listening socket: connection refused.
	OutageRefuse OutageMode = "refuse"
	// Outage503 answers every request with HTTP 503.
	Outage503 OutageMode = "503"
)

// Failure is a forced error response for FailNext. Zero fields take defaults: 500,
// "server_error" / AADSTS90033 on login, "generalException" on Graph.
type Failure struct {
	Status  int    `json:"status,omitempty"`
	Error   string `json:"error,omitempty"`
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

type faults struct {
	latency      time.Duration
	outage       OutageMode
	failNext     int
	failure      Failure
	throttleNext int
	retryAfter   string
}

func (em *Emulator) endpoint(t Target) (*endpoint, error) {
	switch t {
	case Login:
		return em.login, nil
	case Graph:
		return em.graph, nil
	}
	return nil, fmt.Errorf("unknown target %q (want login or graph)", t)
}

// SetLatency delays every request to t by d (0 removes the delay).
func (em *Emulator) SetLatency(t Target, d time.Duration) error {
	ep, err := em.endpoint(t)
	if err != nil {
		return err
	}
	ep.mu.Lock()
	ep.faults.latency = d
	ep.mu.Unlock()
	return nil
}

// SetOutage takes t down in the given mode. With d > 0 it comes back by itself after d;
// otherwise it stays down until ClearOutage.
func (em *Emulator) SetOutage(t Target, mode OutageMode, d time.Duration) error {
	ep, err := em.endpoint(t)
	if err != nil {
		return err
	}
	if mode != OutageRefuse && mode != Outage503 {
		return fmt.Errorf("unknown outage mode %q (want refuse or 503)", mode)
	}
	ep.mu.Lock()
	ep.faults.outage = mode
	if ep.timer != nil {
		ep.timer.Stop()
	}
	if d > 0 {
		ep.timer = time.AfterFunc(d, func() { _ = em.ClearOutage(t) })
	}
	ep.mu.Unlock()
	if mode == OutageRefuse {
		ep.refuse()
	}
	return nil
}

// ClearOutage brings t back.
func (em *Emulator) ClearOutage(t Target) error {
	ep, err := em.endpoint(t)
	if err != nil {
		return err
	}
	ep.mu.Lock()
	ep.faults.outage = ""
	ep.mu.Unlock()
	return ep.reopen()
}

// FailNext makes the next n requests to t fail with f.
func (em *Emulator) FailNext(t Target, n int, f Failure) error {
	ep, err := em.endpoint(t)
	if err != nil {
		return err
	}
	ep.mu.Lock()
	ep.faults.failNext, ep.faults.failure = n, f
	ep.mu.Unlock()
	return nil
}

// ThrottleNext answers the next n requests to t with HTTP 429 and the given Retry-After value
// (seconds; fractions allowed, as Graph sends them).
func (em *Emulator) ThrottleNext(t Target, n int, retryAfter string) error {
	ep, err := em.endpoint(t)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseFloat(retryAfter, 64); err != nil || strings.HasPrefix(retryAfter, "-") {
		return fmt.Errorf("retry_after %q is not a non-negative number of seconds", retryAfter)
	}
	ep.mu.Lock()
	ep.faults.throttleNext, ep.faults.retryAfter = n, retryAfter
	ep.mu.Unlock()
	return nil
}

// ResetFaults removes every fault from both services.
func (em *Emulator) ResetFaults() {
	for _, t := range []Target{Login, Graph} {
		ep, _ := em.endpoint(t)
		ep.mu.Lock()
		ep.faults = faults{}
		ep.mu.Unlock()
		_ = ep.reopen()
	}
}

// middleware applies faults (never to the test controls) and logs one line per request.
func (ep *endpoint) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := httpx.NewStatusWriter(w)
		if !strings.HasPrefix(r.URL.Path, "/_emulator/") {
			if ep.applyFaults(sw, r) {
				ep.logRequest(r, sw.Status, start)
				return
			}
		}
		next.ServeHTTP(sw, r)
		ep.logRequest(r, sw.Status, start)
	})
}

func (ep *endpoint) logRequest(r *http.Request, status int, start time.Time) {
	// Only the method and path: query strings can carry codes and tokens.
	ep.em.log.Debug("emulator request", "endpoint", ep.name, "method", r.Method, "path", r.URL.Path, "status", status, "ms", time.Since(start).Milliseconds())
}

// applyFaults reports whether it answered the request.
func (ep *endpoint) applyFaults(w http.ResponseWriter, r *http.Request) bool {
	ep.mu.Lock()
	f := ep.faults
	switch {
	case f.outage == Outage503:
	case f.throttleNext > 0:
		ep.faults.throttleNext--
	case f.failNext > 0:
		ep.faults.failNext--
	}
	ep.mu.Unlock()
	if f.latency > 0 {
		select {
		case <-time.After(f.latency):
		case <-r.Context().Done():
			return true
		}
	}
	switch {
	case f.outage == Outage503:
		w.Header().Set("Retry-After", "5")
		ep.writeFault(w, r, http.StatusServiceUnavailable, "temporarily_unavailable", 90033, "serviceNotAvailable", "The service is temporarily unavailable (emulated outage).")
	case f.throttleNext > 0:
		w.Header().Set("Retry-After", f.retryAfter)
		ep.writeFault(w, r, http.StatusTooManyRequests, "temporarily_unavailable", 50196, "TooManyRequests", "Too many requests; please retry after "+f.retryAfter+" seconds.")
	case f.failNext > 0:
		x := f.failure
		if x.Status == 0 {
			x.Status = http.StatusInternalServerError
		}
		if x.Error == "" {
			x.Error = map[string]string{"login": "server_error", "graph": "generalException"}[ep.name]
		}
		if x.Code == 0 {
			x.Code = 90033
		}
		if x.Message == "" {
			x.Message = "Forced failure (emulator fault injection)."
		}
		ep.writeFault(w, r, x.Status, x.Error, x.Code, x.Error, x.Message)
	default:
		return false
	}
	return true
}

func (ep *endpoint) writeFault(w http.ResponseWriter, r *http.Request, status int, oauthErr string, code int, graphCode, msg string) {
	if ep.name == "graph" {
		writeGraphError(w, r, status, graphCode, msg)
		return
	}
	e := aad(oauthErr, code, "%s", msg)
	e.Status = status
	ep.em.writeTokenError(w, r, e)
}
