// Package redistest gives tests a real redis-server: the one at ENTRAMCP_TEST_REDIS_URL, or one
// started on a free loopback port for the test. Without redis-server the test is skipped, unless
// ENTRAMCP_REQUIRE_ALL=1 (CI), where a missing dependency is a failure.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server.
type Server struct {
	URL  string
	cmd  *exec.Cmd
	addr string
	dir  string
	args []string // persistence flags, reused by Restart
}

// Start returns a redis URL for the test. The server keeps nothing across Restart.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, "--save", "", "--appendonly", "no")
}

// StartDurable is Start with an fsync-always append-only file, so data survives Stop and
// Restart like a production Redis with persistence.
func StartDurable(t testing.TB) *Server {
	t.Helper()
	return start(t, "--save", "", "--appendonly", "yes", "--appendfsync", "always")
}

func start(t testing.TB, persistence ...string) *Server {
	t.Helper()
	if u := os.Getenv("ENTRAMCP_TEST_REDIS_URL"); u != "" {
		return &Server{URL: u}
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("ENTRAMCP_REQUIRE_ALL") == "1" {
			t.Fatal("redis-server is not installed (ENTRAMCP_REQUIRE_ALL=1): apt-get install redis-server")
		}
		t.Skip("redis-server not installed; set ENTRAMCP_TEST_REDIS_URL or install redis-server")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir, "--protected-mode", "yes"}, persistence...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir, args: persistence}
	t.Cleanup(s.Stop)
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c.Ping(context.Background()).Err() == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not answer within 10s")
		}
	}
}

// Stop kills the server (tests of an outage call it directly).
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// Restart starts the server again on the same port after Stop.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.addr == "" {
		t.Skip("cannot restart an external Redis")
	}
	bin, _ := exec.LookPath("redis-server")
	_, port, _ := net.SplitHostPort(s.addr)
	s.cmd = exec.Command(bin, append([]string{"--port", port, "--bind", "127.0.0.1", "--dir", s.dir, "--protected-mode", "yes"}, s.args...)...)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); c.Ping(context.Background()).Err() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not come back")
		}
	}
}
