// Package storage is kmipd's key-value persistence layer: the Store interface
// every backend implements, a Badger implementation (one kmipd), a PostgreSQL
// one (several kmipd replicas sharing a database), an in-memory one for tests
// (NewMemory), and Exercise, the exported suite every Store must pass.
//
// Values are opaque to this layer. kmipd seals everything it stores (pKEK
// records are HSM-wrapped and MACed, objects are AES-GCM sealed by kek), so the
// store itself is deliberately unencrypted.
package storage

import (
	"context"
	"errors"
)

// The sentinels are the contract; test for them with errors.Is.
var (
	// ErrNotFound is returned by Get and Delete when the key is absent.
	ErrNotFound = errors.New("storage: key not found")
	// ErrExists is returned by Create when the key is already present.
	ErrExists = errors.New("storage: key already exists")
	// ErrClosed is returned by any operation after Close.
	ErrClosed = errors.New("storage: store is closed")
	// ErrInvalidKey is returned for the empty key, which no backend need support.
	ErrInvalidKey = errors.New("storage: invalid key")
)

// Store is a durable, ordered key-value store. Keys are arbitrary non-empty
// byte strings; values are arbitrary byte slices (possibly empty). All methods
// are safe for concurrent use. Every method checks ctx before doing work and
// returns ctx.Err() (wrapped) if it is already done.
//
// Slices passed in may be reused by the caller once a method returns; slices
// returned belong to the caller.
type Store interface {
	// Get returns the value stored at key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)

	// Put stores value at key, replacing any previous value. A nil error means
	// the write is durable (synced) unless the backend was configured otherwise.
	Put(ctx context.Context, key string, value []byte) error

	// Create stores value at key only if key is absent, atomically: of any
	// number of concurrent Creates of one key exactly one succeeds and the
	// others return ErrExists. Durable like Put.
	Create(ctx context.Context, key string, value []byte) error

	// Delete removes key, or returns ErrNotFound if it is absent.
	Delete(ctx context.Context, key string) error

	// List calls fn for every key that starts with prefix, in ascending byte
	// order, with a copy of its value. It stops at the first error from fn and
	// returns it unchanged; it checks ctx between keys and returns ctx.Err()
	// (wrapped) if the context ends. Badger's view is one consistent
	// snapshot; a backend may instead read in pages (Postgres), each a
	// snapshot, so that every key is seen at most once, in order, with a
	// value it held during the List.
	List(ctx context.Context, prefix string, fn func(key string, value []byte) error) error

	// Close releases the store. Later calls return ErrClosed; Close itself is
	// idempotent.
	Close() error
}

// Exclusive is implemented by a Store that no other process writes while
// this one has it open: Badger locks its directory, Memory lives in the
// process. A reader may then keep what it read of the store for as long as
// its own process's writes leave it true (kmipops remembers index markers).
// A store replicas share (PostgreSQL) is not Exclusive.
type Exclusive interface {
	// ExclusiveToProcess does nothing: it marks the Store.
	ExclusiveToProcess()
}

// Viewer is implemented by a Store that can show a value without copying
// it, for readers that only compare, copy or keep it (kmipops checks a
// record against the one it has already opened, and keeps the record it
// opens). Exercise covers it when s implements it.
type Viewer interface {
	// View calls fn with the value at key, or returns ErrNotFound without
	// calling it. fn must not modify value, which may be shared with the
	// store's cache and other readers; it may keep it, since the store never
	// changes a value it has shown (a write replaces it). View returns fn's
	// error unchanged.
	View(ctx context.Context, key string, fn func(value []byte) error) error
}
