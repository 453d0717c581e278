package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// netns is a network namespace the test creates, joined to this machine by
// two veth pairs on addresses the test picked from 10.0.0.0/8 after making
// sure no interface here uses them: the database link (PostgreSQL listens
// on its host end) and the client link (clients reach the replica in the
// namespace through it). cut takes the namespace's end of the database link
// down, so the replica's packets to PostgreSQL are dropped and PostgreSQL's
// to it too (the host end has no carrier), as in a partition; nothing
// routes off this machine, and the client link stays up.
type netns struct {
	t                *testing.T
	name             string
	dbHost, dbNS     netip.Prefix // 10.a.b.1/30, 10.a.b.2/30
	cliHost, cliNS   netip.Prefix // 10.a.b.5/30, 10.a.b.6/30
	dbLinkNS, dbLink string       // veth names: namespace end, host end
}

// newNetns creates the namespace, or skips the test when this machine
// cannot (not root, no iproute2, no namespaces).
func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root: this test cuts a replica off from PostgreSQL with one")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command (iproute2) to create a network namespace")
	}
	tag := make([]byte, 3)
	if _, err := rand.Read(tag); err != nil {
		t.Fatal(err)
	}
	h := hex.EncodeToString(tag)
	n := &netns{t: t, name: "kmipd-cut-" + h, dbLink: "kd" + h + "h", dbLinkNS: "kd" + h + "n"}
	addrs, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		t.Skipf("ip addr show: %v", err)
	}
	for try := 0; ; try++ {
		if try == 50 {
			t.Fatal("no free 10.x.y.0/29 for the namespace's links")
		}
		a, b := 200+int(tag[0]+byte(try))%50, int(tag[1]+byte(try*7))
		prefix := fmt.Sprintf("10.%d.%d.", a, b)
		if strings.Contains(string(addrs), " "+prefix) {
			continue
		}
		p := func(last int) netip.Prefix { return netip.MustParsePrefix(fmt.Sprintf("%s%d/30", prefix, last)) }
		n.dbHost, n.dbNS, n.cliHost, n.cliNS = p(1), p(2), p(5), p(6)
		break
	}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: ip netns add: %v: %s", err, out)
	}
	cliLink, cliLinkNS := "kc"+h+"h", "kc"+h+"n"
	t.Cleanup(func() {
		// Deleting the namespace deletes its veth ends, and with them the
		// host ends; the explicit deletes catch a half-made setup.
		n.ip("netns", "del", n.name)
		n.ip("link", "del", n.dbLink)
		n.ip("link", "del", cliLink)
	})
	for _, args := range [][]string{
		{"link", "add", n.dbLink, "type", "veth", "peer", "name", n.dbLinkNS, "netns", n.name},
		{"link", "add", cliLink, "type", "veth", "peer", "name", cliLinkNS, "netns", n.name},
		{"addr", "add", n.dbHost.String(), "dev", n.dbLink},
		{"addr", "add", n.cliHost.String(), "dev", cliLink},
		{"link", "set", n.dbLink, "up"},
		{"link", "set", cliLink, "up"},
		{"-n", n.name, "addr", "add", n.dbNS.String(), "dev", n.dbLinkNS},
		{"-n", n.name, "addr", "add", n.cliNS.String(), "dev", cliLinkNS},
		{"-n", n.name, "link", "set", "lo", "up"},
		{"-n", n.name, "link", "set", n.dbLinkNS, "up"},
		{"-n", n.name, "link", "set", cliLinkNS, "up"},
	} {
		if err := n.ip(args...); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (n *netns) ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// command runs name in the namespace.
func (n *netns) command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// cut partitions the namespace from PostgreSQL; heal ends it.
func (n *netns) cut() error  { return n.ip("-n", n.name, "link", "set", n.dbLinkNS, "down") }
func (n *netns) heal() error { return n.ip("-n", n.name, "link", "set", n.dbLinkNS, "up") }

// hostRoute is how this machine routes to the namespace's database
// address: the test checks it stays on the (carrier-less) host end while
// cut, so nothing leaves the machine.
func (n *netns) hostRoute() string {
	out, _ := exec.Command("ip", "route", "get", n.dbNS.Addr().String()).CombinedOutput()
	return strings.TrimSpace(string(out))
}
