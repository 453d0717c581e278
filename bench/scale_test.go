package bench

import (
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipclient"
)

// TestScaleMixes: the mixes `kmipd bench scale` runs over objects already
// in the store: Get of given uids, Locate by one of given Names, Locate
// with Maximum Items. Each request is checked (a Locate must find
// something), so a server that found nothing would count errors.
func TestScaleMixes(t *testing.T) {
	env := startInProcess(t)
	cl, err := kmipclient.New(kmipclient.Config{Addr: env.addr, TLS: env.tls, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var uids, names []string
	for i := range 12 {
		name := fmt.Sprintf("scale-test-%d", i)
		uid, err := cl.Create(t.Context(), kmipclient.KeySpec{Algorithm: kmip14.CryptographicAlgorithmAES, Attributes: []kmipclient.Attribute{kmipclient.Name(name)}})
		if err != nil {
			t.Fatal(err)
		}
		uids, names = append(uids, uid), append(names, name)
	}
	for _, c := range []struct {
		mix string
		cfg func(*Config)
		op  string
	}{
		{MixGet, func(c *Config) { c.UIDs = uids }, "Get"},
		{MixLocateName, func(c *Config) { c.Names, c.UIDs = names, uids }, "Locate"},
		{MixLocatePage, nil, "Locate"},
	} {
		cfg := Config{Addr: env.addr, TLS: []*tls.Config{env.tls}, Mode: Persistent, Mix: c.mix,
			Workers: 2, MaxOps: 30, Timeout: 30 * time.Second}
		if c.cfg != nil {
			c.cfg(&cfg)
		}
		res, err := Run(t.Context(), cfg)
		if err != nil {
			t.Fatalf("%s: %v", c.mix, err)
		}
		if res.Ops != 30 || res.Errors != 0 || res.ByOp[c.op].Ops != 30 {
			t.Fatalf("%s: %d ops, %d errors (%v), %d %s", c.mix, res.Ops, res.Errors, res.ErrorSamples, res.ByOp[c.op].Ops, c.op)
		}
		// Given the store's uids, the read-only mixes write nothing:
		// their owner is introduced by a Get, not a Create.
		if c.mix != MixLocatePage {
			if all, err := cl.Locate(t.Context(), 0); err != nil || len(all) != len(uids) {
				t.Fatalf("after %s: the owner holds %d objects (%v), want %d", c.mix, len(all), err, len(uids))
			}
		}
	}
	// A name nobody holds is an error, not a success.
	res, err := Run(t.Context(), Config{Addr: env.addr, TLS: []*tls.Config{env.tls}, Mode: Persistent, Mix: MixLocateName,
		Names: []string{"no-such-name"}, Workers: 1, MaxOps: 3, Timeout: 30 * time.Second})
	if err != nil || res.Errors != 3 {
		t.Fatalf("Locate of an absent name: %v, %d errors", err, res.Errors)
	}
	if _, err := Run(t.Context(), Config{Addr: env.addr, TLS: []*tls.Config{env.tls}, Mix: MixLocateName, MaxOps: 1}); err == nil {
		t.Fatal("locate-name without names accepted")
	}
}
