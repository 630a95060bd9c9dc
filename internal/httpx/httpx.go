// Package httpx holds small net/http helpers shared by entramcp's servers.
package httpx

import "net/http"

// StatusWriter records the status a handler wrote and passes flushes through, so streamed
// (SSE) responses keep working behind it.
type StatusWriter struct {
	http.ResponseWriter
	Status int
}

// NewStatusWriter wraps w; the status is 200 until a handler writes another.
func NewStatusWriter(w http.ResponseWriter) *StatusWriter {
	return &StatusWriter{ResponseWriter: w, Status: http.StatusOK}
}

// WriteHeader records and forwards the status.
func (s *StatusWriter) WriteHeader(code int) {
	s.Status = code
	s.ResponseWriter.WriteHeader(code)
}

// Flush forwards to the underlying writer when it can flush.
func (s *StatusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *StatusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
