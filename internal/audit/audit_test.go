package audit

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

func TestRecordsAreJSONLines(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf)
	l.Record(Event{Event: "mcp.request", TenantID: "t", ObjectID: "o", Method: "tools/call", Tool: `we"ird\tool`, Outcome: "ok", Millis: 1.25})
	l.Record(Event{Event: "auth.denied", Outcome: "denied", Reason: "expired", Status: 401, Remote: "127.0.0.1"})
	l.Close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), buf.String())
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil {
		t.Fatalf("not JSON: %v: %s", err, lines[0])
	}
	if e["tool"] != `we"ird\tool` || e["tid"] != "t" || e["ms"] != 1.25 || e["time"] == nil {
		t.Fatalf("event: %v", e)
	}
	json.Unmarshal([]byte(lines[1]), &e)
	if e["status"] != float64(401) || e["reason"] != "expired" {
		t.Fatalf("denial: %v", e)
	}
}

func BenchmarkRecord(b *testing.B) {
	l := New(io.Discard)
	defer l.Close()
	e := Event{Time: time.Now(), Event: "mcp.request", TenantID: "6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34", ObjectID: "b7e1c9a4-5d2f-4e8b-9a3c-6f1d8e2b4a71",
		AppID: "8b6e2d14-93a7-4f5c-b0e8-1d7c4a2f6e95", Method: "tools/call", Tool: "whoami", Outcome: "ok", Millis: 0.42}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		l.Record(e)
	}
}
