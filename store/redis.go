package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the store for several replicas: native TTLs, GETDEL for Take, SET NX for Create and
// WATCH/MULTI for Update. Connection failures are ErrUnavailable, never ErrNotFound.
type Redis struct {
	c      *redis.Client
	prefix string
}

// OpenRedis connects to a redis:// or rediss:// URL and checks the server answers.
func OpenRedis(ctx context.Context, rawURL string) (*Redis, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("ENTRAMCP_STORE %s: %w", redactURL(rawURL), err)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	opt.MaxRetries = 1
	r := &Redis{c: redis.NewClient(opt), prefix: "entramcp:"}
	if err := r.Ping(ctx); err != nil {
		r.c.Close()
		return nil, fmt.Errorf("ENTRAMCP_STORE %s: %w", redactURL(rawURL), err)
	}
	return r, nil
}

func (r *Redis) k(kind, key string) string { return r.prefix + kind + ":" + key }

func unavailable(err error) error {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrAlreadyExists) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// Get implements Store.
func (r *Redis) Get(ctx context.Context, kind, key string) ([]byte, error) {
	if err := checkKindKey(kind, key); err != nil {
		return nil, err
	}
	v, err := r.c.Get(ctx, r.k(kind, key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	return v, unavailable(err)
}

// Create implements Store.
func (r *Redis) Create(ctx context.Context, kind, key string, value []byte, ttl time.Duration) error {
	if err := checkKindKey(kind, key); err != nil {
		return err
	}
	ok, err := r.c.SetNX(ctx, r.k(kind, key), value, ttl).Result()
	if err != nil {
		return unavailable(err)
	}
	if !ok {
		return ErrAlreadyExists
	}
	return nil
}

// Put implements Store.
func (r *Redis) Put(ctx context.Context, kind, key string, value []byte, ttl time.Duration) error {
	if err := checkKindKey(kind, key); err != nil {
		return err
	}
	return unavailable(r.c.Set(ctx, r.k(kind, key), value, ttl).Err())
}

// Update implements Store with optimistic concurrency: WATCH the key, compute, MULTI/EXEC, and
// retry when another writer got there first.
func (r *Redis) Update(ctx context.Context, kind, key string, fn UpdateFunc) error {
	if err := checkKindKey(kind, key); err != nil {
		return err
	}
	k := r.k(kind, key)
	for attempt := 0; attempt < 100; attempt++ {
		err := r.c.Watch(ctx, func(tx *redis.Tx) error {
			old, err := tx.Get(ctx, k).Bytes()
			if errors.Is(err, redis.Nil) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			v, ttl, err := fn(old)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, k, v, ttl)
				return nil
			})
			return err
		}, k)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil && !errors.Is(err, ErrNotFound) && !isRedisError(err) {
			return err // the caller's own error from fn
		}
		return unavailable(err)
	}
	return fmt.Errorf("%w: too much contention updating %s", ErrUnavailable, kind)
}

// isRedisError tells the backend's failures from errors fn returned.
func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re) || isNetErr(err)
}

// Take implements Store with GETDEL (Redis 6.2+).
func (r *Redis) Take(ctx context.Context, kind, key string) ([]byte, error) {
	if err := checkKindKey(kind, key); err != nil {
		return nil, err
	}
	v, err := r.c.GetDel(ctx, r.k(kind, key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	return v, unavailable(err)
}

// Delete implements Store.
func (r *Redis) Delete(ctx context.Context, kind, key string) error {
	if err := checkKindKey(kind, key); err != nil {
		return err
	}
	return unavailable(r.c.Del(ctx, r.k(kind, key)).Err())
}

// Ping implements Store.
func (r *Redis) Ping(ctx context.Context) error { return unavailable(r.c.Ping(ctx).Err()) }

// Close implements Store.
func (r *Redis) Close() error { return r.c.Close() }
