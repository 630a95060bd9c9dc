package store

import (
	"context"
	"sync"
	"time"
)

// Memory is an in-process Store for tests and single-process use. Nothing survives a restart.
type Memory struct {
	mu   sync.Mutex
	data map[string]memRecord
	now  func() time.Time
}

type memRecord struct {
	value   []byte
	expires time.Time
}

// NewMemory makes an empty in-memory store.
func NewMemory() *Memory { return &Memory{data: map[string]memRecord{}, now: time.Now} }

func (m *Memory) live(k string) (memRecord, bool) {
	r, ok := m.data[k]
	if ok && !r.expires.IsZero() && !m.now().Before(r.expires) {
		delete(m.data, k)
		return memRecord{}, false
	}
	return r, ok
}

func (m *Memory) expiry(ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return m.now().Add(ttl)
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// Get implements Store.
func (m *Memory) Get(_ context.Context, kind, key string) ([]byte, error) {
	if err := checkKindKey(kind, key); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.live(kind + ":" + key)
	if !ok {
		return nil, ErrNotFound
	}
	return clone(r.value), nil
}

// Create implements Store.
func (m *Memory) Create(_ context.Context, kind, key string, value []byte, ttl time.Duration) error {
	if err := checkKindKey(kind, key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.live(kind + ":" + key); ok {
		return ErrAlreadyExists
	}
	m.data[kind+":"+key] = memRecord{clone(value), m.expiry(ttl)}
	return nil
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, kind, key string, value []byte, ttl time.Duration) error {
	if err := checkKindKey(kind, key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data[kind+":"+key] = memRecord{clone(value), m.expiry(ttl)}
	return nil
}

// Update implements Store.
func (m *Memory) Update(_ context.Context, kind, key string, fn UpdateFunc) error {
	if err := checkKindKey(kind, key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.live(kind + ":" + key)
	if !ok {
		return ErrNotFound
	}
	v, ttl, err := fn(clone(r.value))
	if err != nil {
		return err
	}
	m.data[kind+":"+key] = memRecord{clone(v), m.expiry(ttl)}
	return nil
}

// Take implements Store.
func (m *Memory) Take(_ context.Context, kind, key string) ([]byte, error) {
	if err := checkKindKey(kind, key); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.live(kind + ":" + key)
	if !ok {
		return nil, ErrNotFound
	}
	delete(m.data, kind+":"+key)
	return r.value, nil
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, kind, key string) error {
	if err := checkKindKey(kind, key); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.data, kind+":"+key)
	m.mu.Unlock()
	return nil
}

// Ping implements Store.
func (m *Memory) Ping(context.Context) error { return nil }

// Close implements Store.
func (m *Memory) Close() error { return nil }
