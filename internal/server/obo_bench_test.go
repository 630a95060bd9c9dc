package server_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/entramcp/entramcp/graph"
	"github.com/entramcp/entramcp/internal/emutest"
	"github.com/entramcp/entramcp/internal/testenv"
)

// BenchmarkGraphToolOBO compares the same Graph call (GET /me through the emulator) made by a
// tool that gets its token through the warm OBO cache with one that is handed the Graph token
// directly: the difference is the cost of the OBO layer when warm.
func BenchmarkGraphToolOBO(b *testing.B) {
	var direct string
	env := testenv.Start(b, testenv.Options{})
	em := env.Emulator
	status, body := emutest.OBO(b, em, env.UserToken(b, "alice"), "https://graph.microsoft.com/.default")
	if status != 200 {
		b.Fatal(body)
	}
	direct = body["access_token"].(string)
	gc, _ := graph.New(graph.Options{BaseURL: em.GraphURL(), HTTPClient: em.HTTPClient()})
	env.Server.MCPServer().AddTool(&mcp.Tool{Name: "me_direct", InputSchema: map[string]any{"type": "object"}}, func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		me, err := gc.Me(ctx, direct)
		if err != nil {
			return nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: me.DisplayName}}}, nil
	})
	obo := env.Server.OBO()
	env.Server.MCPServer().AddTool(&mcp.Tool{Name: "me_obo", InputSchema: map[string]any{"type": "object"}}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		id := identityOf(req)
		tok, err := obo.Token(ctx, id.Token(), id.Expiry, []string{"https://graph.microsoft.com/.default"})
		if err != nil {
			return nil, err
		}
		me, err := gc.Me(ctx, tok.AccessToken)
		if err != nil {
			return nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: me.DisplayName}}}, nil
	})
	headers := map[string]string{"Authorization": "Bearer " + env.UserToken(b, "alice")}
	resp, _ := env.PostMCP(b, testenv.Initialize, headers)
	headers["Mcp-Session-Id"], headers["Mcp-Protocol-Version"] = resp.Header.Get("Mcp-Session-Id"), "2025-06-18"
	var ids atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for _, tool := range []string{"me_direct", "me_obo", "me_direct", "me_obo"} {
		b.Run(fmt.Sprintf("tool=%s", tool), func(b *testing.B) {
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				var local []time.Duration
				defer func() { mu.Lock(); lat = append(lat, local...); mu.Unlock() }()
				for pb.Next() {
					start := time.Now()
					body := `{"jsonrpc":"2.0","id":` + strconv.FormatInt(ids.Add(1), 10) + `,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`
					_, out, err := env.PostMCPWith(client, body, headers)
					if err != nil {
						b.Error(err)
						return
					}
					if !strings.Contains(out, "Alice Example") {
						b.Errorf("%s: %s", tool, out)
						return
					}
					local = append(local, time.Since(start))
				}
			})
			slices.Sort(lat)
			if n := len(lat); n > 0 {
				b.ReportMetric(float64(lat[n/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[n*99/100].Microseconds()), "p99-µs")
			}
		})
	}
	if n := em.Stats().Token["on_behalf_of"]; n != 2 {
		b.Errorf("OBO requests %d, want 2 (one by the test, one warm-up for the tool)", n)
	}
}
