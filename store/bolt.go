package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Bolt is the embedded store: one bbolt file, one process (bbolt locks the file). Each kind is
// a bucket; a value is 8 bytes of expiry (unix nanoseconds, 0 = none) and the payload. A
// background sweep removes expired records every minute; reads ignore them before that.
type Bolt struct {
	db   *bolt.DB
	stop chan struct{}
	wg   sync.WaitGroup
	now  func() time.Time
}

// OpenBolt opens (creating, mode 0600) the database file.
func OpenBolt(path string) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ENTRAMCP_STORE: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("ENTRAMCP_STORE: %s is locked by another process (bbolt is single-process; use Redis for several replicas)", path)
		}
		return nil, fmt.Errorf("ENTRAMCP_STORE: %w", err)
	}
	b := &Bolt{db: db, stop: make(chan struct{}), now: time.Now}
	b.wg.Add(1)
	go b.sweepLoop()
	return b, nil
}

func (b *Bolt) encode(value []byte, ttl time.Duration) []byte {
	out := make([]byte, 8+len(value))
	if ttl > 0 {
		binary.BigEndian.PutUint64(out, uint64(b.now().Add(ttl).UnixNano()))
	}
	copy(out[8:], value)
	return out
}

// decode returns the payload of a stored value, or false when it is expired or corrupt.
func (b *Bolt) decode(raw []byte) ([]byte, bool) {
	if len(raw) < 8 {
		return nil, false
	}
	if exp := int64(binary.BigEndian.Uint64(raw)); exp != 0 && b.now().UnixNano() >= exp {
		return nil, false
	}
	return clone(raw[8:]), true
}

func (b *Bolt) view(kind, key string, fn func(v []byte, ok bool) error) error {
	if err := checkKindKey(kind, key); err != nil {
		return err
	}
	return b.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(kind))
		if bk == nil {
			return fn(nil, false)
		}
		v, ok := b.decode(bk.Get([]byte(key)))
		return fn(v, ok)
	})
}

func (b *Bolt) update(kind, key string, fn func(bk *bolt.Bucket, v []byte, ok bool) error) error {
	if err := checkKindKey(kind, key); err != nil {
		return err
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(kind))
		if err != nil {
			return err
		}
		v, ok := b.decode(bk.Get([]byte(key)))
		return fn(bk, v, ok)
	})
}

// Get implements Store.
func (b *Bolt) Get(_ context.Context, kind, key string) ([]byte, error) {
	var out []byte
	err := b.view(kind, key, func(v []byte, ok bool) error {
		if !ok {
			return ErrNotFound
		}
		out = v
		return nil
	})
	return out, err
}

// Create implements Store.
func (b *Bolt) Create(_ context.Context, kind, key string, value []byte, ttl time.Duration) error {
	return b.update(kind, key, func(bk *bolt.Bucket, _ []byte, ok bool) error {
		if ok {
			return ErrAlreadyExists
		}
		return bk.Put([]byte(key), b.encode(value, ttl))
	})
}

// Put implements Store.
func (b *Bolt) Put(_ context.Context, kind, key string, value []byte, ttl time.Duration) error {
	return b.update(kind, key, func(bk *bolt.Bucket, _ []byte, _ bool) error {
		return bk.Put([]byte(key), b.encode(value, ttl))
	})
}

// Update implements Store.
func (b *Bolt) Update(_ context.Context, kind, key string, fn UpdateFunc) error {
	return b.update(kind, key, func(bk *bolt.Bucket, v []byte, ok bool) error {
		if !ok {
			return ErrNotFound
		}
		nv, ttl, err := fn(v)
		if err != nil {
			return err
		}
		return bk.Put([]byte(key), b.encode(nv, ttl))
	})
}

// Take implements Store.
func (b *Bolt) Take(_ context.Context, kind, key string) ([]byte, error) {
	var out []byte
	err := b.update(kind, key, func(bk *bolt.Bucket, v []byte, ok bool) error {
		if !ok {
			return ErrNotFound
		}
		out = v
		return bk.Delete([]byte(key))
	})
	return out, err
}

// Delete implements Store.
func (b *Bolt) Delete(_ context.Context, kind, key string) error {
	return b.update(kind, key, func(bk *bolt.Bucket, _ []byte, _ bool) error {
		return bk.Delete([]byte(key))
	})
}

// Ping implements Store.
func (b *Bolt) Ping(context.Context) error { return nil }

// Close stops the sweeper and closes the file.
func (b *Bolt) Close() error {
	close(b.stop)
	b.wg.Wait()
	return b.db.Close()
}

func (b *Bolt) sweepLoop() {
	defer b.wg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.Sweep()
		}
	}
}

// Sweep deletes expired records now (the background loop does it every minute).
func (b *Bolt) Sweep() int {
	n := 0
	_ = b.db.Update(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, bk *bolt.Bucket) error {
			c := bk.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if _, ok := b.decode(v); !ok {
					if err := c.Delete(); err != nil {
						return err
					}
					n++
				}
			}
			return nil
		})
	})
	return n
}
