package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/signin"
)

// The OAuth proxy scenarios run against `entramcp dev --mode proxy` (its dev.json), so the
// proxy, the emulator and this tool are separate processes:
//
//	proxy-refresh  each client signed in once and rotates its refresh token in a loop
//	proxy-flow     each operation is a whole sign-in: /authorize, consent, the emulator's
//	               sign-in, callback, code exchange, and one MCP initialize with the new token
//
// All clients share one registration (DCR is rate-limited per address).

func isProxyScenario(name string) bool { return name == "proxy-refresh" || name == "proxy-flow" }

func proxyScenario(name string, info emulator.Info, client *http.Client, conc int, d time.Duration) error {
	if info.MCPURL == "" {
		return errors.New("the proxy scenarios need a dev.json with mcp_url: run `entramcp dev --mode proxy` and pass -dev-json")
	}
	u, err := url.Parse(info.MCPURL)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("refusing to load %s: only loopback targets", u.Host)
	}
	base := strings.TrimSuffix(info.MCPURL, "/mcp")
	ctx := context.Background()
	clientID, err := signin.Register(ctx, client, base, "entramcp load tool", signin.RedirectURI)
	if err != nil {
		return err
	}
	user := info.Users[0].Name
	flow := func(ctx context.Context) (map[string]any, error) {
		verifier := signin.Challenge(fmt.Sprint(time.Now().UnixNano())) + "-verifier"
		q, err := signin.SignIn(ctx, client, signin.AuthorizeURL(base, clientID, verifier, nil), user)
		if err != nil {
			return nil, err
		}
		status, tok, err := signin.Token(ctx, client, base, clientID, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
			"redirect_uri": {signin.RedirectURI}, "code_verifier": {verifier}})
		if err != nil || status != http.StatusOK {
			return nil, fmt.Errorf("code exchange: %d %v %v", status, tok, err)
		}
		return tok, nil
	}
	var op func(ctx context.Context, worker int) (time.Duration, error)
	switch name {
	case "proxy-refresh":
		rts := make([]string, conc)
		for i := range rts {
			tok, err := flow(ctx)
			if err != nil {
				return err
			}
			rts[i] = tok["refresh_token"].(string)
		}
		op = func(ctx context.Context, worker int) (time.Duration, error) {
			start := time.Now()
			status, next, err := signin.Token(ctx, client, base, clientID, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rts[worker]}})
			if err != nil || status != http.StatusOK {
				return 0, fmt.Errorf("refresh: %d %v %v", status, next, err)
			}
			rts[worker] = next["refresh_token"].(string)
			return time.Since(start), nil
		}
	case "proxy-flow":
		op = func(ctx context.Context, _ int) (time.Duration, error) {
			start := time.Now()
			tok, err := flow(ctx)
			if err != nil {
				return 0, err
			}
			return time.Since(start), mcpInitialize(ctx, client, info.MCPURL, tok["access_token"].(string))
		}
	}
	runOps(op, conc, time.Second) // warm-up
	res, firstErr := runOps(op, conc, d)
	fmt.Printf("scenario=%s c=%d d=%s ops=%d errors=%d ops/s=%.1f p50=%s p90=%s p99=%s\n",
		name, conc, d, res.n, res.errors, float64(res.n)/d.Seconds(), res.pct(50), res.pct(90), res.pct(99))
	if res.errors > 0 {
		return fmt.Errorf("%d operations failed, the first: %v", res.errors, firstErr)
	}
	return nil
}

// errSkipped marks an operation that did not run (the measured run ended while it waited).
var errSkipped = errors.New("skipped")

// runOps runs op from conc workers for d. Each op measures itself (so waiting for a rate
// ticket is not latency) and is never cut short; failures are counted, and the first kept.
func runOps(op func(ctx context.Context, worker int) (time.Duration, error), conc int, d time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var n, errs atomic.Int64
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for ctx.Err() == nil {
				took, err := op(context.Background(), w)
				switch {
				case errors.Is(err, errSkipped):
				case err != nil:
					errs.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				default:
					local = append(local, took)
					n.Add(1)
				}
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(all)
	return result{n: n.Load(), errors: errs.Load(), lat: all}, firstErr
}

func mcpInitialize(ctx context.Context, client *http.Client, mcpURL, token string) error {
	resp, _, err := postMCP(ctx, client, mcpURL, token, "", initializeRequest)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("MCP initialize: %d", resp.StatusCode)
	}
	return nil
}
