package testmodule

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Offsets into the shared state file; they mirror struct capped_state in
// capped_state.h, which static-asserts the same numbers.
const (
	offMagic        = 0x00
	offVersion      = 0x04
	offCap          = 0x08
	offRefuseCode   = 0x0C
	offOpen         = 0x10
	offPeak         = 0x14
	offFailEveryK   = 0x18
	offTokenPresent = 0x1C
	offEpoch        = 0x20
	offCryptoSeq    = 0x28
	offCalls        = 0x30
	offClass        = 0x38 // [4]uint64: general, session, object, crypto
	offRefusals     = 0x58
	offFaults       = 0x60
	offInvalidated  = 0x68
	offReclaimed    = 0x70
	offDelayUS      = 0x78
	offProcs        = 0x80 // [64]{pid, count uint32}

	stateMagic    = 0x50414343
	stateVersion  = 1
	stateProcs    = 64
	stateFileSize = 4096
)

// Refusal codes the module can be told to return beyond the cap.
const (
	RefuseDeviceMemory uint = 0x31 // CKR_DEVICE_MEMORY, what a Proteccio returns
	RefuseSessionCount uint = 0xB1 // CKR_SESSION_COUNT, what the standard suggests
)

// Control reads and changes the shared state of the capped module while other
// processes use it. All accessors are atomic and safe for concurrent use.
type Control struct {
	path string
	mem  []byte
}

// Stats is a snapshot of the module's counters.
type Stats struct {
	Cap, Open, Peak, FailEveryK int
	RefuseCode                  uint
	TokenPresent                bool
	Epoch                       uint64
	Calls                       uint64 // every C_* call, all processes
	General, Session            uint64 // calls by class
	Object, Crypto              uint64
	Refusals                    uint64        // C_OpenSession refused by the cap
	Faults                      uint64        // injected CKR_DEVICE_ERRORs
	Invalidated                 uint64        // sessions killed by InvalidateAll / token removal
	Reclaimed                   uint64        // sessions taken back from dead processes
	Delay                       time.Duration // slept by every call
	Procs                       map[int]int
}

// OpenControl maps the state file at path, creating and initialising it (from
// the same env defaults the C module uses) if it does not exist yet, so a test
// can configure the HSM before any process loads the module.
func OpenControl(path string) (*Control, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the mapping outlives the descriptor
	fd := int(f.Fd())
	// The same lock the C side takes, so only one process initialises.
	if err := syscall.Flock(fd, syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	defer syscall.Flock(fd, syscall.LOCK_UN)
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() < stateFileSize {
		if err := f.Truncate(stateFileSize); err != nil {
			return nil, err
		}
	}
	mem, err := syscall.Mmap(fd, 0, stateFileSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	c := &Control{path: path, mem: mem}
	if c.u32(offMagic).Load() != stateMagic || c.u32(offVersion).Load() != stateVersion {
		clear(mem[:offProcs+8*stateProcs])
		c.u32(offCap).Store(uint32(envUint("CAPPED_MAX_SESSIONS", 0)))
		c.u32(offRefuseCode).Store(uint32(envRefuse()))
		c.u32(offFailEveryK).Store(uint32(envUint("CAPPED_FAIL_EVERY_K", 0)))
		present := uint32(0)
		if envUint("CAPPED_TOKEN_PRESENT", 1) != 0 {
			present = 1
		}
		c.u32(offTokenPresent).Store(present)
		c.u32(offDelayUS).Store(uint32(envUint("CAPPED_DELAY_US", 0)))
		c.u32(offVersion).Store(stateVersion)
		c.u32(offMagic).Store(stateMagic)
	}
	return c, nil
}

func envUint(name string, def uint64) uint64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return def
	}
	return n
}

func envRefuse() uint {
	switch v := os.Getenv("CAPPED_REFUSE"); v {
	case "", "CKR_DEVICE_MEMORY":
		return RefuseDeviceMemory
	case "CKR_SESSION_COUNT":
		return RefuseSessionCount
	}
	return uint(envUint("CAPPED_REFUSE", uint64(RefuseDeviceMemory)))
}

// Path is the state file this Control maps.
func (c *Control) Path() string { return c.path }

// Close unmaps the state; the file and the module's state stay.
func (c *Control) Close() error {
	if c.mem == nil {
		return nil
	}
	err := syscall.Munmap(c.mem)
	c.mem = nil
	return err
}

func (c *Control) u32(off int) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&c.mem[off]))
}

func (c *Control) u64(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&c.mem[off]))
}

// SetCap sets how many sessions may be open at once across all processes
// (0 = no cap). Sessions already open above a lowered cap stay open.
func (c *Control) SetCap(n int) { c.u32(offCap).Store(uint32(n)) }

// Cap is the current cap (0 = none).
func (c *Control) Cap() int { return int(c.u32(offCap).Load()) }

// SetRefuse sets the CK_RV returned by C_OpenSession beyond the cap.
func (c *Control) SetRefuse(code uint) { c.u32(offRefuseCode).Store(uint32(code)) }

// Open is the number of sessions open now, all processes. A process notices
// InvalidateAll or token removal (and gives those sessions back) on its next
// call into the module.
func (c *Control) Open() int { return int(c.u32(offOpen).Load()) }

// Peak is the highest number of sessions that were open at once.
func (c *Control) Peak() int { return int(c.u32(offPeak).Load()) }

// ResetPeak makes the peak the current open count.
func (c *Control) ResetPeak() { c.u32(offPeak).Store(c.u32(offOpen).Load()) }

// SetFailEveryK makes every k-th counted crypto call from now on fail with
// CKR_DEVICE_ERROR (0 = off). Counted: C_{Encrypt,Decrypt,Sign,Verify}Init,
// C_Encrypt, C_Decrypt, C_Sign, C_Verify, C_GenerateRandom, C_WrapKey,
// C_UnwrapKey, C_GenerateKey; length queries (NULL output) are not counted.
func (c *Control) SetFailEveryK(k int) {
	c.u32(offFailEveryK).Store(0)
	c.u64(offCryptoSeq).Store(0)
	c.u32(offFailEveryK).Store(uint32(k))
}

// InvalidateAll voids every session open now in every process: later calls on
// those handles return CKR_SESSION_HANDLE_INVALID. New sessions work.
func (c *Control) InvalidateAll() { c.u64(offEpoch).Add(1) }

// SetTokenPresent removes (false) or reinserts (true) the token. Removal also
// voids every open session, as pulling a token or rebooting an HSM does.
func (c *Control) SetTokenPresent(present bool) {
	if present {
		c.u32(offTokenPresent).Store(1)
		return
	}
	c.u32(offTokenPresent).Store(0)
	c.u64(offEpoch).Add(1)
}

// SetDelay makes every call from now on sleep d (whole microseconds, at most
// about 71 minutes; negative is 0) before it runs, outside the module's lock, as a round trip
// to a network HSM would: calls of different threads overlap. 0 = none.
func (c *Control) SetDelay(d time.Duration) {
	c.u32(offDelayUS).Store(uint32(min(max(d.Microseconds(), 0), 1<<32-1)))
}

// Delay is what every call sleeps.
func (c *Control) Delay() time.Duration {
	return time.Duration(c.u32(offDelayUS).Load()) * time.Microsecond
}

// Calls is the number of C_* calls made through the module by all processes.
func (c *Control) Calls() uint64 { return c.u64(offCalls).Load() }

// Stats returns a snapshot of every field (not one atomic snapshot).
func (c *Control) Stats() Stats {
	s := Stats{
		Cap:          c.Cap(),
		Open:         c.Open(),
		Peak:         c.Peak(),
		FailEveryK:   int(c.u32(offFailEveryK).Load()),
		RefuseCode:   uint(c.u32(offRefuseCode).Load()),
		TokenPresent: c.u32(offTokenPresent).Load() != 0,
		Epoch:        c.u64(offEpoch).Load(),
		Calls:        c.Calls(),
		General:      c.u64(offClass).Load(),
		Session:      c.u64(offClass + 8).Load(),
		Object:       c.u64(offClass + 16).Load(),
		Crypto:       c.u64(offClass + 24).Load(),
		Refusals:     c.u64(offRefusals).Load(),
		Faults:       c.u64(offFaults).Load(),
		Invalidated:  c.u64(offInvalidated).Load(),
		Reclaimed:    c.u64(offReclaimed).Load(),
		Delay:        c.Delay(),
		Procs:        map[int]int{},
	}
	for i := 0; i < stateProcs; i++ {
		off := offProcs + 8*i
		if pid := c.u32(off).Load(); pid != 0 && pid != 0xFFFFFFFF {
			s.Procs[int(pid)] = int(c.u32(off + 4).Load())
		}
	}
	return s
}
