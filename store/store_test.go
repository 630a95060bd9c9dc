package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/entramcp/entramcp/internal/redistest"
	"github.com/entramcp/entramcp/store"
	"github.com/entramcp/entramcp/store/storetest"
)

func both(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("plain", func(t *testing.T) { storetest.Run(t, open) })
	t.Run("encrypted", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store {
			kr, _ := store.NewRandomKeyring()
			return store.Encrypted(open(t), kr)
		})
	})
}

func TestMemory(t *testing.T) {
	both(t, func(t *testing.T) store.Store { return store.NewMemory() })
}

func TestBolt(t *testing.T) {
	both(t, func(t *testing.T) store.Store {
		s, err := store.OpenBolt(filepath.Join(t.TempDir(), "entramcp.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

var redisDB atomic.Int32

func TestRedis(t *testing.T) {
	srv := redistest.Start(t)
	both(t, func(t *testing.T) store.Store {
		// Each subtest gets its own database so they start empty.
		u := strings.TrimSuffix(srv.URL, "/0") + fmt.Sprintf("/%d", redisDB.Add(1)%16)
		s, err := store.OpenRedis(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		opt, _ := redis.ParseURL(u)
		c := redis.NewClient(opt)
		c.FlushDB(context.Background())
		c.Close()
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// A dump of the store must not reveal what was sealed: the raw bbolt file and the raw Redis
// values hold no plaintext.
func TestEncryptedAtRest(t *testing.T) {
	secret := "eyJhbGciOiJSUzI1NiJ9.a-user-token-that-must-not-leak"
	path := filepath.Join(t.TempDir(), "entramcp.db")
	b, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := store.NewRandomKeyring()
	s := store.Encrypted(b, kr)
	if err := s.Put(context.Background(), "upstream", "sha256-of-token", []byte(secret), 0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(context.Background(), "upstream", "sha256-of-token"); err != nil || string(got) != secret {
		t.Fatalf("round trip: %q %v", got, err)
	}
	b.Close()
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), "a-user-token") {
		t.Fatal("the bbolt file contains the plaintext")
	}

	srv := redistest.Start(t)
	r, err := store.OpenRedis(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rs := store.Encrypted(r, kr)
	rs.Put(context.Background(), "upstream", "sha256-of-token", []byte(secret), 0)
	opt, _ := redis.ParseURL(srv.URL)
	c := redis.NewClient(opt)
	defer c.Close()
	keys, _ := c.Keys(context.Background(), "*").Result()
	for _, k := range keys {
		v, _ := c.Get(context.Background(), k).Result()
		if strings.Contains(k+v, "a-user-token") {
			t.Fatalf("redis key %q holds the plaintext", k)
		}
	}
	// A sealed value moved to another record does not open (associated data binds it).
	sealed, _ := c.Get(context.Background(), "entramcp:upstream:sha256-of-token").Bytes()
	c.Set(context.Background(), "entramcp:upstream:other", sealed, 0)
	if _, err := rs.Get(context.Background(), "upstream", "other"); err == nil {
		t.Fatal("a sealed value opened under another key")
	}
}

func TestRedisOutageIsUnavailableNotNotFound(t *testing.T) {
	srv := redistest.Start(t)
	s, err := store.OpenRedis(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Put(context.Background(), "k", "a", []byte("v"), 0)
	srv.Stop()
	for _, op := range []func() error{
		func() error { _, err := s.Get(context.Background(), "k", "a"); return err },
		func() error { _, err := s.Take(context.Background(), "k", "a"); return err },
		func() error { return s.Create(context.Background(), "k", "b", nil, 0) },
		func() error { return s.Ping(context.Background()) },
	} {
		if err := op(); err == nil || !strings.Contains(err.Error(), "unavailable") {
			t.Fatalf("during an outage: %v, want ErrUnavailable", err)
		}
	}
	srv.Restart(t)
	if err := s.Put(context.Background(), "k", "a", []byte("v"), 0); err != nil {
		t.Fatalf("after Redis returned: %v", err)
	}
}

func TestKeyringRules(t *testing.T) {
	for name, spec := range map[string]string{
		"empty":     "",
		"short":     "k1:" + "AAAA",
		"zeros":     "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"printable": "k1:" + "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=",
		"dup id":    "",
	} {
		if name == "dup id" {
			_, good := store.NewRandomKeyring()
			spec = good + "," + good
		}
		if _, err := store.ParseKeyring(spec); err == nil {
			t.Errorf("%s key accepted", name)
		}
	}
	// Rotation: records sealed with the old key still open when a new key comes first.
	_, old := store.NewRandomKeyring()
	_, newer := store.NewRandomKeyring()
	oldRing, _ := store.ParseKeyring(old)
	sealed := oldRing.Seal("k", "a", []byte("v"))
	rotated, err := store.ParseKeyring(strings.Replace(newer, "k1:", "k2:", 1) + "," + old)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := rotated.Open("k", "a", sealed); err != nil || string(v) != "v" {
		t.Fatalf("old record after rotation: %v", err)
	}
	if s := rotated.Seal("k", "a", []byte("v")); !strings.HasPrefix(string(s), "k2.") {
		t.Fatalf("new records must use the first key: %q", s[:3])
	}
}

func TestOpenURLs(t *testing.T) {
	ctx := context.Background()
	m, err := store.Open(ctx, "memory:")
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	b, err := store.Open(ctx, "bolt://"+filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	for _, bad := range []string{"postgres://db", "bolt:", "redis://:secretpw@127.0.0.1:1/0"} {
		_, err := store.Open(ctx, bad)
		if err == nil {
			t.Errorf("%s accepted", bad)
		} else if strings.Contains(err.Error(), "secretpw") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}
