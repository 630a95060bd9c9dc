// Package storetest is the conformance suite every store backend passes: the same tests against
// memory, bbolt and Redis, and against each of them wrapped with encryption. A new backend's
// test file is a few lines that call Run.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entramcp/entramcp/store"
)

// Run runs the suite. newStore returns a fresh, empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	t.Run("crud", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "client", "a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get missing: %v", err)
		}
		val := []byte{0, 1, 2, 255, 'x'}
		if err := s.Create(ctx, "client", "a", val, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, "client", "a", []byte("other"), 0); !errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("create twice: %v", err)
		}
		if got, err := s.Get(ctx, "client", "a"); err != nil || !bytes.Equal(got, val) {
			t.Fatalf("get: %q %v", got, err)
		}
		if _, err := s.Get(ctx, "code", "a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("kinds must be separate: %v", err)
		}
		if err := s.Put(ctx, "client", "a", []byte("v2"), 0); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, "client", "a"); string(got) != "v2" {
			t.Fatalf("put did not replace: %q", got)
		}
		if err := s.Delete(ctx, "client", "a"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "client", "a"); err != nil {
			t.Fatalf("delete missing: %v", err)
		}
		if _, err := s.Get(ctx, "client", "a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get deleted: %v", err)
		}
		if err := s.Put(ctx, "", "x", nil, 0); err == nil {
			t.Fatal("empty kind accepted")
		}
		if err := s.Put(ctx, "a:b", "x", nil, 0); err == nil {
			t.Fatal("kind with ':' accepted")
		}
	})
	t.Run("ttl", func(t *testing.T) {
		s := newStore(t)
		if err := s.Put(ctx, "state", "s", []byte("x"), 150*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "state", "forever", []byte("y"), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, "state", "s"); err != nil {
			t.Fatalf("fresh record: %v", err)
		}
		waitGone(t, s, "state", "s")
		if err := s.Create(ctx, "state", "s", []byte("again"), time.Minute); err != nil {
			t.Fatalf("create over an expired record: %v", err)
		}
		if _, err := s.Get(ctx, "state", "forever"); err != nil {
			t.Fatalf("record without ttl: %v", err)
		}
		if err := s.Update(ctx, "state", "s", func(old []byte) ([]byte, time.Duration, error) { return old, 150 * time.Millisecond, nil }); err != nil {
			t.Fatal(err)
		}
		waitGone(t, s, "state", "s")
	})
	t.Run("take is single use", func(t *testing.T) {
		s := newStore(t)
		s.Put(ctx, "code", "c", []byte("grant"), time.Minute)
		if v, err := s.Take(ctx, "code", "c"); err != nil || string(v) != "grant" {
			t.Fatalf("take: %q %v", v, err)
		}
		if _, err := s.Take(ctx, "code", "c"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second take: %v", err)
		}
		for round := 0; round < 5; round++ {
			key := "race" + strconv.Itoa(round)
			s.Put(ctx, "code", key, []byte("once"), time.Minute)
			var winners atomic.Int32
			var wg sync.WaitGroup
			for i := 0; i < 50; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := s.Take(ctx, "code", key); err == nil {
						winners.Add(1)
					} else if !errors.Is(err, store.ErrNotFound) {
						t.Errorf("take: %v", err)
					}
				}()
			}
			wg.Wait()
			if winners.Load() != 1 {
				t.Fatalf("round %d: %d concurrent takers got the record, want exactly 1", round, winners.Load())
			}
		}
	})
	t.Run("create race", func(t *testing.T) {
		s := newStore(t)
		var winners atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if s.Create(ctx, "client", "same", []byte(strconv.Itoa(i)), 0) == nil {
					winners.Add(1)
				}
			}(i)
		}
		wg.Wait()
		if winners.Load() != 1 {
			t.Fatalf("%d concurrent creates succeeded, want 1", winners.Load())
		}
	})
	t.Run("update is atomic", func(t *testing.T) {
		s := newStore(t)
		if err := s.Update(ctx, "rt", "missing", func(o []byte) ([]byte, time.Duration, error) { return o, 0, nil }); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update missing: %v", err)
		}
		s.Put(ctx, "rt", "n", []byte("0"), 0)
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.Update(ctx, "rt", "n", func(old []byte) ([]byte, time.Duration, error) {
					n, _ := strconv.Atoi(string(old))
					return []byte(strconv.Itoa(n + 1)), 0, nil
				})
				if err != nil {
					t.Errorf("update: %v", err)
				}
			}()
		}
		wg.Wait()
		if got, _ := s.Get(ctx, "rt", "n"); string(got) != "50" {
			t.Fatalf("50 concurrent increments gave %s", got)
		}
		abort := errors.New("refused")
		if err := s.Update(ctx, "rt", "n", func([]byte) ([]byte, time.Duration, error) { return []byte("x"), 0, abort }); !errors.Is(err, abort) {
			t.Fatalf("update error not returned: %v", err)
		}
		if got, _ := s.Get(ctx, "rt", "n"); string(got) != "50" {
			t.Fatalf("a failed update changed the record: %s", got)
		}
	})
	t.Run("ping", func(t *testing.T) {
		if err := newStore(t).Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func waitGone(t *testing.T, s store.Store, kind, key string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Get(context.Background(), kind, key)
		if errors.Is(err, store.ErrNotFound) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/%s still there 5s after its ttl", kind, key)
		}
		time.Sleep(25 * time.Millisecond) // waiting for time to pass is what is tested
	}
}
