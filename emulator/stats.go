package emulator

import (
	"strconv"
	"sync"
)

// stats counts requests for tests and scripts (GET /_emulator/stats). Token counters are keyed by
// grant (on_behalf_of for the jwt-bearer grant), Graph counters by route ("GET /v1.0/me").
type stats struct {
	mu     sync.Mutex
	token  map[string]int64
	graph  map[string]int64
	errors map[string]int64
	jwks   int64
}

// Stats is a snapshot of the counters.
type Stats struct {
	Token  map[string]int64 `json:"token"`
	Graph  map[string]int64 `json:"graph"`
	Errors map[string]int64 `json:"errors"`
	JWKS   int64            `json:"jwks"`
}

func (s *stats) init() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = map[string]int64{"authorization_code": 0, "refresh_token": 0, "client_credentials": 0, "password": 0, "on_behalf_of": 0}
	s.graph = map[string]int64{}
	s.errors = map[string]int64{}
	s.jwks = 0
}

func (s *stats) countToken(name string) {
	s.mu.Lock()
	s.token[name]++
	s.mu.Unlock()
}

func (s *stats) countGraph(route string) {
	s.mu.Lock()
	s.graph[route]++
	s.mu.Unlock()
}

func (s *stats) countJWKS() {
	s.mu.Lock()
	s.jwks++
	s.mu.Unlock()
}

func (em *Emulator) countError(code int) {
	em.stats.mu.Lock()
	em.stats.errors["AADSTS"+strconv.Itoa(code)]++
	em.stats.mu.Unlock()
}

// Stats returns the request counters.
func (em *Emulator) Stats() Stats {
	s := &em.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{Token: map[string]int64{}, Graph: map[string]int64{}, Errors: map[string]int64{}, JWKS: s.jwks}
	for k, v := range s.token {
		out.Token[k] = v
	}
	for k, v := range s.graph {
		out.Graph[k] = v
	}
	for k, v := range s.errors {
		out.Errors[k] = v
	}
	return out
}

// ResetStats zeroes the counters.
func (em *Emulator) ResetStats() { em.stats.init() }
