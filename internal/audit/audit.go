// Package audit writes the audit log: one JSON line per authenticated MCP request and per
// denial, keyed by tenant and object id. It never receives a token or secret, so it cannot
// write one. Lines are buffered and flushed every 200 ms (and on Close) so auditing stays off
// the request path's critical cost.
package audit

import (
	"bufio"
	"io"
	"strconv"
	"sync"
	"time"
)

// Event is one audit record.
type Event struct {
	Time     time.Time `json:"time"`
	Event    string    `json:"event"` // "mcp.request", "auth.denied" or "proxy.*" (oauthproxy.Event names)
	TenantID string    `json:"tid,omitempty"`
	ObjectID string    `json:"oid,omitempty"`
	AppID    string    `json:"app,omitempty"`
	AppOnly  bool      `json:"app_only,omitempty"`
	Method   string    `json:"method,omitempty"`
	Tool     string    `json:"tool,omitempty"`
	Outcome  string    `json:"outcome"`
	Reason   string    `json:"reason,omitempty"`
	Status   int       `json:"status,omitempty"`
	Remote   string    `json:"remote,omitempty"`
	Millis   float64   `json:"ms,omitempty"`
}

// Log is a buffered JSON-lines audit writer, safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

// New starts a Log writing to w.
func New(w io.Writer) *Log {
	l := &Log{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go l.flusher()
	return l
}

// Record writes one event.
func (l *Log) Record(e Event) {
	if l == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	// Encode outside the lock; hold it only to copy the line into the buffer, so concurrent
	// requests do not queue behind each other's formatting.
	bp := bufPool.Get().(*[]byte)
	*bp = e.appendJSON((*bp)[:0])
	l.mu.Lock()
	_, _ = l.w.Write(*bp)
	l.mu.Unlock()
	bufPool.Put(bp)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// appendJSON encodes the event by hand: it runs for every request, and reflection-based
// encoding was the largest cost entramcp added to a tools/call (measured; docs/benchmarks.md).
func (e *Event) appendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = append(b, `,"event":`...)
	b = strconv.AppendQuote(b, e.Event)
	b = field(b, "tid", e.TenantID)
	b = field(b, "oid", e.ObjectID)
	b = field(b, "app", e.AppID)
	if e.AppOnly {
		b = append(b, `,"app_only":true`...)
	}
	b = field(b, "method", e.Method)
	b = field(b, "tool", e.Tool)
	b = append(b, `,"outcome":`...)
	b = strconv.AppendQuote(b, e.Outcome)
	b = field(b, "reason", e.Reason)
	if e.Status != 0 {
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(e.Status), 10)
	}
	b = field(b, "remote", e.Remote)
	if e.Millis != 0 {
		b = append(b, `,"ms":`...)
		b = strconv.AppendFloat(b, e.Millis, 'f', 3, 64)
	}
	return append(b, "}\n"...)
}

func field(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendQuote(b, v)
}

func (l *Log) flusher() {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	defer close(l.done)
	for {
		select {
		case <-t.C:
			l.Flush()
		case <-l.stop:
			l.Flush()
			return
		}
	}
}

// Flush writes buffered lines now.
func (l *Log) Flush() {
	l.mu.Lock()
	_ = l.w.Flush()
	l.mu.Unlock()
}

// Close flushes and stops the background flusher.
func (l *Log) Close() {
	if l == nil {
		return
	}
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}
