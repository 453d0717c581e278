package storage

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Memory is a Store held in memory (in the style of vault's physical/inmem):
// nothing survives Close or the process. It is for tests of what lies above
// storage, KMIP semantics above all, which then need no disk; the Badger
// store runs the same Exercise suite.
//
// Values are copied on the way in and on the way out (View excepted, as
// Viewer allows), and a stored slice is never changed in place, only
// replaced, so no caller can alias the store's state.
type Memory struct {
	mu     sync.RWMutex
	m      map[string][]byte
	closed bool
}

var (
	_ Store     = (*Memory)(nil)
	_ Viewer    = (*Memory)(nil)
	_ Exclusive = (*Memory)(nil)
)

// ExclusiveToProcess marks Memory Exclusive: no other process sees it.
func (*Memory) ExclusiveToProcess() {}

// NewMemory returns an empty in-memory Store.
func NewMemory() *Memory {
	return &Memory{m: make(map[string][]byte)}
}

// check refuses the empty key and a done ctx, as Badger does, before any
// lock is taken.
func check(ctx context.Context, key string) error {
	if key == "" {
		return ErrInvalidKey
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}

// lookup returns the stored slice itself: callers copy it or only read it.
func (s *Memory) lookup(ctx context.Context, key string) ([]byte, error) {
	if err := check(ctx, key); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	v, ok := s.m[key]
	if !ok {
		return nil, ErrNotFound
	}
	return v, nil
}

// Get returns a copy of the value at key, or ErrNotFound.
func (s *Memory) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := s.lookup(ctx, key)
	if err != nil {
		return nil, err
	}
	return append([]byte{}, v...), nil
}

// View calls fn with the stored value itself, outside the lock: fn must not
// modify it (Viewer), and a concurrent write replaces the slice rather than
// changing it, so fn always sees one whole value, and may keep it.
func (s *Memory) View(ctx context.Context, key string, fn func(value []byte) error) error {
	v, err := s.lookup(ctx, key)
	if err != nil {
		return err
	}
	return fn(v)
}

// write runs op under the write lock after the checks every write shares.
func (s *Memory) write(ctx context.Context, key string, op func() error) error {
	if err := check(ctx, key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return op()
}

// Put stores a copy of value at key.
func (s *Memory) Put(ctx context.Context, key string, value []byte) error {
	v := bytes.Clone(value)
	return s.write(ctx, key, func() error {
		s.m[key] = v
		return nil
	})
}

// Create stores a copy of value at key unless it exists (ErrExists).
func (s *Memory) Create(ctx context.Context, key string, value []byte) error {
	v := bytes.Clone(value)
	return s.write(ctx, key, func() error {
		if _, ok := s.m[key]; ok {
			return ErrExists
		}
		s.m[key] = v
		return nil
	})
}

// Delete removes key, or returns ErrNotFound.
func (s *Memory) Delete(ctx context.Context, key string) error {
	return s.write(ctx, key, func() error {
		if _, ok := s.m[key]; !ok {
			return ErrNotFound
		}
		delete(s.m, key)
		return nil
	})
}

// List calls fn for each key under prefix in ascending byte order, with a
// copy of its value, from a snapshot taken when List starts: fn may use the
// store.
func (s *Memory) List(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	var keys []string
	snap := make(map[string][]byte)
	for k, v := range s.m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
			snap[k] = v // stored slices are never changed in place
		}
	}
	s.mu.RUnlock()
	slices.Sort(keys)
	for _, k := range keys {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		if err := fn(k, append([]byte{}, snap[k]...)); err != nil {
			return err
		}
	}
	return nil
}

// Close drops every value; later calls return ErrClosed. It is idempotent.
func (s *Memory) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.m = nil
	return nil
}
