package testkit

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Ports for servers a test starts as separate processes, which must be told
// their port before they bind it. A port found free by listening on :0 lies
// in the kernel's ephemeral range, where any socket of any test running
// alongside (a client's connect, a listener on :0) may take it before the
// server binds it: `kmipd dev -cluster` once lost a replica's port that way
// while tests/hostile held 2,000 connections. Below that range the kernel
// hands out no port by itself, so only an explicit bind can collide.
const lowestPort = 15000 // above the registered ports local services tend to use

// FreePorts returns base such that the n ports base..base+n-1 of 127.0.0.1
// are free now, chosen at random below the kernel's ephemeral range (in it
// only when that range leaves no room below).
func FreePorts(t testing.TB, n int) int {
	t.Helper()
	ephemeral := ephemeralLow()
	if ephemeral-n <= lowestPort {
		return freeEphemeralRun(t, n)
	}
	for try := 0; try < 200; try++ {
		base := lowestPort + rand.IntN(ephemeral-n-lowestPort)
		if runFree(base, n) {
			return base
		}
	}
	t.Fatalf("testkit: no %d free consecutive ports below %d", n, ephemeral)
	return 0
}

// FreeAddrs is n loopback addresses on distinct free ports (FreePorts).
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	base := FreePorts(t, n)
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i))
	}
	return addrs
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768 // Linux's default
	}
	low, err := strconv.Atoi(strings.Fields(string(b) + " x")[0])
	if err != nil {
		return 32768
	}
	return low
}

// runFree holds every port of base..base+n-1 open at once, then lets them go.
func runFree(base, n int) bool {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for p := base; p < base+n; p++ {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		held = append(held, l)
	}
	return true
}

// freeEphemeralRun is FreePorts inside the ephemeral range, the fallback.
func freeEphemeralRun(t testing.TB, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testkit: no free port: %v", err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if base+n <= 65536 && runFree(base, n) {
			return base
		}
	}
	t.Fatalf("testkit: no run of %d free ports", n)
	return 0
}
