package hsm

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/miekg/pkcs11"
)

// module is one loaded PKCS#11 library. C_Initialize/C_Finalize are
// process-wide for a library, so every HSM (and InitToken) using the same
// path shares one module, reference-counted.
type module struct {
	path string
	p11  *pkcs11.Ctx
	refs int // guarded by registry.mu

	// mu is held for reading around every sequence of calls into the module
	// and for writing only by recovery around C_Finalize + C_Initialize, so
	// no goroutine is ever inside the library while it is re-initialised.
	mu sync.RWMutex
	// gen increases with every re-initialisation (written under mu.Lock).
	// Sessions, logins and object handles from an older generation are dead.
	gen atomic.Uint64

	// initTokenMu serialises InitToken: two concurrent C_InitToken calls
	// could otherwise pick the same free slot.
	initTokenMu sync.Mutex
}

var registry = struct {
	mu      sync.Mutex
	modules map[string]*module
}{modules: map[string]*module{}}

// acquireModule loads and initialises the library at path, or takes another
// reference to it.
func acquireModule(path string) (*module, error) {
	key, err := filepath.Abs(path)
	if err != nil {
		key = path
	}
	key = filepath.Clean(key)

	registry.mu.Lock()
	defer registry.mu.Unlock()
	if m, ok := registry.modules[key]; ok {
		m.refs++
		return m, nil
	}
	p := pkcs11.New(key)
	if p == nil {
		return nil, &Error{Op: "load module", Class: ClassOther, Err: fmt.Errorf("cannot load PKCS#11 module %s", key)}
	}
	// Another library in this process may have initialised it already.
	if err := p.Initialize(); err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		p.Destroy()
		return nil, toError("C_Initialize", err)
	}
	m := &module{path: key, p11: p, refs: 1}
	m.gen.Store(1)
	registry.modules[key] = m
	return m, nil
}

// shared reports whether another HSM in this process holds the module too.
// A login belongs to the application (the process) and the token, so C_Logout
// by one would log out the others; closing its own sessions is enough.
func (m *module) shared() bool {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	return m.refs > 1
}

// release drops one reference; the last one finalises and unloads.
func (m *module) release() {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	m.refs--
	if m.refs > 0 {
		return
	}
	delete(registry.modules, m.path)
	m.mu.Lock()
	_ = m.p11.Finalize()
	m.p11.Destroy()
	m.gen.Add(1)
	m.mu.Unlock()
}

// reinitialize runs C_Finalize + C_Initialize unless someone else already
// did since seenGen. The caller must not hold m.mu.
func (m *module) reinitialize(seenGen uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen.Load() != seenGen {
		return nil
	}
	_ = m.p11.Finalize() // the device may be gone; Initialize is what counts
	if err := m.p11.Initialize(); err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		return toError("C_Initialize", err)
	}
	m.gen.Add(1)
	return nil
}

// isCode reports whether err is the PKCS#11 return value code.
func isCode(err error, code uint) bool {
	var pe pkcs11.Error
	return errors.As(err, &pe) && uint(pe) == code
}
