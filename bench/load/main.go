// Command load drives a bounded load at a local entramcp component and reports throughput and
// latency. It only ever targets loopback addresses: the emulator it starts itself, or one named
// by a dev.json written by `entramcp emulator` or `entramcp dev`.
//
//	go run ./bench/load -scenario token-cc -c 32 -d 10s
//	go run ./bench/load -scenario token-obo -dev-json .entramcp/dev.json
//	go run ./bench/load -scenario proxy-refresh -c 8 -dev-json .entramcp/dev.json   (entramcp dev --mode proxy)
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/entramcp/entramcp/emulator"
)

func main() {
	scenario := flag.String("scenario", "token-cc", "token-cc (client credentials), token-password, token-obo, graph-me, mcp-ratio (tools/call with auth on vs off, in child processes), or, against 'entramcp dev --mode proxy' (-dev-json), proxy-refresh and proxy-flow")
	conc := flag.Int("c", 32, "concurrent clients")
	dur := flag.Duration("d", 10*time.Second, "duration of the measured run (after a 1s warm-up)")
	devJSON := flag.String("dev-json", "", "target the emulator described by this dev.json instead of starting one in-process")
	rounds := flag.Int("rounds", 5, "mcp-ratio: alternating measured rounds per mode")
	rate := flag.Int("rate", 0, "mcp-ratio: total requests per second across all clients (0: as fast as possible)")
	serve := flag.Bool("serve-mcp", false, "internal: run a benchmark MCP server for mcp-ratio and print its address")
	auth := flag.Bool("auth", true, "internal, with -serve-mcp: authentication on or off")
	profileDir := flag.String("profile-dir", "", "mcp-ratio: write each benchmark server's CPU profile (auth-on.prof, auth-off.prof) here")
	flag.Parse()
	if *serve {
		if *profileDir != "" {
			f, err := os.Create(filepath.Join(*profileDir, map[bool]string{true: "auth-on.prof", false: "auth-off.prof"}[*auth]))
			if err == nil {
				pprof.StartCPUProfile(f)
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
		if err := serveMCP(*auth); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		return
	}
	if *scenario == "mcp-ratio" {
		if err := mcpRatio(*conc, *dur, *rounds, *rate, *profileDir); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		return
	}
	if *conc < 1 || *conc > 1000 || *dur <= 0 || *dur > 10*time.Minute {
		fmt.Fprintln(os.Stderr, "load: -c must be 1..1000 and -d at most 10m")
		os.Exit(2)
	}
	info, client, stop, err := target(*devJSON)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	defer stop()
	if isProxyScenario(*scenario) {
		if err := proxyScenario(*scenario, info, client, *conc, *dur); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		return
	}
	req, err := scenarioRequest(*scenario, info, client)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
	run(client, req, *conc, time.Second) // warm-up: connections and caches
	res := run(client, req, *conc, *dur)
	fmt.Printf("scenario=%s c=%d d=%s requests=%d errors=%d rps=%.0f p50=%s p90=%s p99=%s\n",
		*scenario, *conc, *dur, res.n, res.errors, float64(res.n)/dur.Seconds(), res.pct(50), res.pct(90), res.pct(99))
	if res.errors > 0 {
		os.Exit(1)
	}
}

func target(devJSON string) (emulator.Info, *http.Client, func(), error) {
	tr := &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 1024, ForceAttemptHTTP2: false, TLSClientConfig: &tls.Config{}}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	if devJSON == "" {
		em, err := emulator.Start(emulator.Options{})
		if err != nil {
			return emulator.Info{}, nil, nil, err
		}
		tr.TLSClientConfig.RootCAs = em.CertPool()
		return em.Info(), client, func() { em.Close() }, nil
	}
	data, err := os.ReadFile(devJSON)
	if err != nil {
		return emulator.Info{}, nil, nil, err
	}
	var info emulator.Info
	if err := json.Unmarshal(data, &info); err != nil {
		return info, nil, nil, err
	}
	u, err := url.Parse(info.EmulatorURL)
	if err != nil {
		return info, nil, nil, err
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return info, nil, nil, fmt.Errorf("refusing to load %s: only loopback targets", u.Host)
	}
	pem, err := os.ReadFile(info.CAFile)
	if err != nil {
		return info, nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr.TLSClientConfig.RootCAs = pool
	return info, client, func() {}, nil
}

// scenarioRequest returns a function that builds one request of the scenario.
func scenarioRequest(name string, info emulator.Info, client *http.Client) (func() *http.Request, error) {
	tokenURL := info.Authority + "/oauth2/v2.0/token"
	s := info.Apps.Server
	form := func(v url.Values) func() *http.Request {
		body := v.Encode()
		return func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}
	}
	userTok := func(scope string) (string, error) {
		resp, err := client.PostForm(tokenURL, url.Values{"grant_type": {"password"}, "client_id": {info.Apps.Client.ClientID},
			"username": {info.Users[0].Name}, "password": {info.Users[0].Password}, "scope": {scope}})
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var b map[string]any
		json.NewDecoder(resp.Body).Decode(&b)
		t, _ := b["access_token"].(string)
		if t == "" {
			return "", fmt.Errorf("password grant: %v", b["error_description"])
		}
		return t, nil
	}
	apiScope := s.IdentifierURI + "/" + s.Scopes[0]
	switch name {
	case "token-cc":
		return form(url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret}, "scope": {"https://graph.microsoft.com/.default"}}), nil
	case "token-password":
		return form(url.Values{"grant_type": {"password"}, "client_id": {info.Apps.Client.ClientID}, "username": {info.Users[0].Name}, "password": {info.Users[0].Password}, "scope": {apiScope}}), nil
	case "token-obo":
		t, err := userTok(apiScope)
		if err != nil {
			return nil, err
		}
		return form(url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret},
			"assertion": {t}, "scope": {"https://graph.microsoft.com/.default"}, "requested_token_use": {"on_behalf_of"}}), nil
	case "graph-me":
		t, err := userTok("https://graph.microsoft.com/User.Read")
		if err != nil {
			return nil, err
		}
		return func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, info.GraphURL+"/v1.0/me", nil)
			r.Header.Set("Authorization", "Bearer "+t)
			return r
		}, nil
	}
	return nil, fmt.Errorf("unknown scenario %q", name)
}

type result struct {
	n, errors int64
	lat       []time.Duration
}

func (r result) pct(p int) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[(len(r.lat)-1)*p/100].Round(10 * time.Microsecond)
}

// run drives conc clients for d. With rate > 0 the clients together send at most rate requests
// per second (paced, not saturating), which measures latency rather than queueing.
func run(client *http.Client, mk func() *http.Request, conc int, d time.Duration, rate ...int) result {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var tickets chan struct{}
	if len(rate) > 0 && rate[0] > 0 {
		tickets = make(chan struct{}, conc)
		go func() {
			t := time.NewTicker(time.Second / time.Duration(rate[0]))
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					select {
					case tickets <- struct{}{}:
					default: // all clients busy: the ticket is dropped, as an open-loop client would be late
					}
				}
			}
		}()
	}
	res, _ := runOps(func(opCtx context.Context, _ int) (time.Duration, error) {
		if tickets != nil {
			select {
			case <-tickets:
			case <-ctx.Done():
				return 0, errSkipped
			}
		}
		start := time.Now()
		resp, err := client.Do(mk())
		if err != nil {
			if ctx.Err() != nil {
				return 0, errSkipped // cut short by the end of the run
			}
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return time.Since(start), nil
	}, conc, d)
	return res
}
