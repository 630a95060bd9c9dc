package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/internal/server"
	"github.com/entramcp/entramcp/internal/testenv"
)

// addPing registers a trivial tool so the benchmark measures the request path, not a tool.
func addPing(s *server.Server) {
	s.MCPServer().AddTool(&mcp.Tool{Name: "ping", InputSchema: map[string]any{"type": "object"}}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "pong"}}}, nil
	})
}

// BenchmarkToolsCall measures tools/call over HTTP with authentication on and off on the same
// server code, in one run; the ratio of the two is the cost of entramcp's auth layer.
func BenchmarkToolsCall(b *testing.B) {
	for _, authOff := range []bool{false, true} {
		b.Run(fmt.Sprintf("auth=%v", !authOff), func(b *testing.B) {
			env := testenv.Start(b, testenv.Options{Server: func(c *server.Config) { c.AuthDisabled = authOff }, Before: addPing})
			headers := map[string]string{"Authorization": "Bearer " + env.UserToken(b, "alice")}
			resp, _ := env.PostMCP(b, testenv.Initialize, headers)
			headers["Mcp-Session-Id"] = resp.Header.Get("Mcp-Session-Id")
			headers["Mcp-Protocol-Version"] = "2025-06-18"
			env.PostMCP(b, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, headers)
			var ids atomic.Int64 // JSON-RPC ids must be unique among in-flight requests of a session
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					body := `{"jsonrpc":"2.0","id":` + strconv.FormatInt(ids.Add(1), 10) + `,"method":"tools/call","params":{"name":"ping","arguments":{}}}`
					resp, out, err := env.PostMCPWith(client, body, headers)
					if err != nil {
						b.Error(err)
						return
					}
					if resp.StatusCode != 200 || !strings.Contains(out, "pong") {
						b.Errorf("%d %s", resp.StatusCode, out)
						return
					}
				}
			})
		})
	}
}
