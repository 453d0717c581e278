package testkit

import (
	"net"
	"strconv"
	"testing"
)

// FreePorts keeps out of the kernel's ephemeral range, where a client's
// connect can take a port before the server binds it, and hands out ports
// a server can then bind, all of them.
func TestFreePortsBelowEphemeral(t *testing.T) {
	low := ephemeralLow()
	if low-8 <= lowestPort {
		t.Skipf("ephemeral range starts at %d: no room below it on this machine", low)
	}
	for range 20 {
		base := FreePorts(t, 8)
		if base < lowestPort || base+8 > low {
			t.Fatalf("ports %d..%d: want them within [%d, %d)", base, base+7, lowestPort, low)
		}
		for p := base; p < base+8; p++ {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				t.Fatalf("port %d of the run: %v", p, err)
			}
			l.Close()
		}
	}
	// A run someone holds is never handed out.
	held, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(lowestPort))
	if err != nil {
		t.Skipf("port %d busy: %v", lowestPort, err)
	}
	defer held.Close()
	if runFree(lowestPort, 2) {
		t.Fatalf("runFree(%d) reports a held port free", lowestPort)
	}
}

func TestFreeAddrsDistinct(t *testing.T) {
	addrs := FreeAddrs(t, 3)
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("%v: %s twice", addrs, a)
		}
		seen[a] = true
	}
}
