package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/emulator"
	"github.com/entramcp/entramcp/internal/server"
)

// benchServer is what a child started with -serve-mcp prints on its first stdout line.
type benchServer struct {
	URL   string `json:"url"`
	Token string `json:"token"`
	PID   int    `json:"pid"`
}

// serveMCP runs an emulator and an entramcp server (auth on or off) in this process for the
// mcp-ratio scenario, prints its address and a user token, and serves until stdin closes.
func serveMCP(auth bool) error {
	em, err := emulator.Start(emulator.Options{})
	if err != nil {
		return err
	}
	defer em.Close()
	info := em.Info()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv, err := server.New(server.Config{
		Listen: ln.Addr().String(), BaseURL: "http://" + ln.Addr().String(), TenantID: info.TenantID, ClientID: info.Apps.Server.ClientID,
		RequiredScopes: info.Apps.Server.Scopes[:1], AuthorityHost: strings.TrimPrefix(info.EmulatorURL, "https://"), CAFile: info.CAFile,
		AuthDisabled: !auth,
	}, nil, io.Discard)
	if err != nil {
		return err
	}
	srv.MCPServer().AddTool(&mcp.Tool{Name: "ping", InputSchema: map[string]any{"type": "object"}}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "pong"}}}, nil
	})
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	srv.Start(ctx)
	_, client, stop, err := target("")
	if err != nil {
		return err
	}
	stop()
	client.Transport.(*http.Transport).TLSClientConfig.RootCAs = em.CertPool()
	req, err := scenarioRequest("token-password", info, client)
	if err != nil {
		return err
	}
	resp, err := client.Do(req())
	if err != nil {
		return err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	out, _ := json.Marshal(benchServer{URL: srv.MCPURL(), Token: tok.AccessToken, PID: os.Getpid()})
	fmt.Println(string(out))
	return srv.Serve(ctx, ln)
}

type child struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	benchServer
	session string
}

func startChild(auth bool, profileDir string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve-mcp", "-auth="+strconv.FormatBool(auth), "-profile-dir="+profileDir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("benchmark server: %w", err)
	}
	c := &child{name: map[bool]string{true: "auth on", false: "auth off"}[auth], cmd: cmd, stdin: stdin}
	if err := json.Unmarshal([]byte(line), &c.benchServer); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *child) stop() { c.stdin.Close(); c.cmd.Wait() }

// cpu returns the child's user+system CPU time so far, from /proc.
func (c *child) cpu() time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.PID))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond // CLK_TCK is 100 on Linux
}

func (c *child) post(client *http.Client, body string) (*http.Response, []byte, error) {
	return postMCP(context.Background(), client, c.URL, c.Token, c.session, body)
}

// initializeRequest is the JSON-RPC initialize an MCP client opens a session with.
const initializeRequest = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"load","version":"1"}}}`

// postMCP posts one JSON-RPC message to an MCP endpoint with a bearer token (and the session,
// once there is one) and returns the response with its body read.
func postMCP(ctx context.Context, client *http.Client, mcpURL, token, session, body string) (*http.Response, []byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, mcpURL, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b, nil
}

type roundResult struct {
	rps      float64
	cpuPerOp time.Duration
	p50, p99 time.Duration
	errors   int64
}

// mcpRatio measures tools/call through the same server with authentication on and off, in
// alternating rounds so drift on the machine hits both alike.
func mcpRatio(conc int, d time.Duration, rounds, rate int, profileDir string) error {
	on, err := startChild(true, profileDir)
	if err != nil {
		return err
	}
	defer on.stop()
	off, err := startChild(false, profileDir)
	if err != nil {
		return err
	}
	defer off.stop()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 1024}, Timeout: 30 * time.Second}
	for _, c := range []*child{on, off} {
		resp, body, err := c.post(client, initializeRequest)
		if err != nil || resp.StatusCode != 200 {
			return fmt.Errorf("%s initialize: %v %s", c.name, err, body)
		}
		c.session = resp.Header.Get("Mcp-Session-Id")
		c.post(client, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	}
	var ids atomic.Int64
	round := func(c *child, dur time.Duration) roundResult {
		mk := func() *http.Request {
			body := `{"jsonrpc":"2.0","id":` + strconv.FormatInt(ids.Add(1), 10) + `,"method":"tools/call","params":{"name":"ping","arguments":{}}}`
			req, _ := http.NewRequest(http.MethodPost, c.URL, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+c.Token)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Mcp-Session-Id", c.session)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
			return req
		}
		cpu0 := c.cpu()
		res := run(client, mk, conc, dur, rate)
		cpu := c.cpu() - cpu0
		rr := roundResult{rps: float64(res.n) / dur.Seconds(), p50: res.pct(50), p99: res.pct(99), errors: res.errors}
		if res.n > 0 {
			rr.cpuPerOp = cpu / time.Duration(res.n)
		}
		return rr
	}
	round(on, time.Second)
	round(off, time.Second)
	var results = map[string][]roundResult{}
	for i := 0; i < rounds; i++ {
		for _, c := range []*child{on, off} {
			r := round(c, d)
			if r.errors > 0 {
				return fmt.Errorf("%s: %d errors", c.name, r.errors)
			}
			results[c.name] = append(results[c.name], r)
			fmt.Printf("round %d %-8s rps=%.0f cpu/op=%s p50=%s p99=%s\n", i+1, c.name, r.rps, r.cpuPerOp, r.p50, r.p99)
		}
	}
	med := func(name string, f func(roundResult) float64) float64 {
		var v []float64
		for _, r := range results[name] {
			v = append(v, f(r))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	rpsOn, rpsOff := med("auth on", func(r roundResult) float64 { return r.rps }), med("auth off", func(r roundResult) float64 { return r.rps })
	cpuOn, cpuOff := med("auth on", func(r roundResult) float64 { return float64(r.cpuPerOp) }), med("auth off", func(r roundResult) float64 { return float64(r.cpuPerOp) })
	p99On, p99Off := med("auth on", func(r roundResult) float64 { return float64(r.p99) }), med("auth off", func(r roundResult) float64 { return float64(r.p99) })
	fmt.Printf("median: auth on %.0f rps (%s CPU/op, p99 %s); auth off %.0f rps (%s CPU/op, p99 %s)\n",
		rpsOn, time.Duration(cpuOn), time.Duration(p99On), rpsOff, time.Duration(cpuOff), time.Duration(p99Off))
	p50On, p50Off := med("auth on", func(r roundResult) float64 { return float64(r.p50) }), med("auth off", func(r roundResult) float64 { return float64(r.p50) })
	fmt.Printf("throughput ratio on/off=%.3f  server CPU ratio off/on=%.3f  added p50=%s  added p99=%s  (c=%d, rate=%d/s, %d rounds of %s)\n",
		rpsOn/rpsOff, cpuOff/cpuOn, time.Duration(p50On-p50Off), time.Duration(p99On-p99Off), conc, rate, rounds, d)
	return nil
}
