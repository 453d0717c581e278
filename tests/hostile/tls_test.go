package hostile

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/certs"
)

// TestTLSRefusals: every client the mutual-TLS rule must keep out is refused
// during the handshake — before a single KMIP byte is processed — and the
// server goes on serving. In TLS 1.3 the client's handshake can complete
// before the server has judged its certificate, so the refusal may only
// show on the first read; either way no response may come back.
func TestTLSRefusals(t *testing.T) {
	e := StartServer(t, Options{})
	otherCA, err := certs.NewCA(certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *certs.CA, cn string, opts ...certs.LeafOption) *certs.Issued {
		c, err := ca.IssueClient(cn, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name string
		cfg  *tls.Config
		log  string // what the server's log must say about it
	}{
		{"no client certificate", e.TLSWith(nil), "didn't provide a certificate"},
		{"certificate from another CA", e.TLSWith(issue(otherCA, "intruder")), "unknown authority"},
		{"expired certificate", e.TLSWith(issue(e.CA, "expired", certs.Expired())), "is after"},
		{"not yet valid certificate", e.TLSWith(issue(e.CA, "early", certs.NotYetValid())), "is before"},
		{"ServerAuth-only certificate", e.TLSWith(issue(e.CA, "server-eku", certs.ExtKeyUsage(x509.ExtKeyUsageServerAuth))), "incompatible key usage"},
		{"certificate without any EKU", e.TLSWith(issue(e.CA, "no-eku", certs.ExtKeyUsage())), "lacks the clientAuth extended key usage"},
		{"TLS 1.1", tls11(e.ClientTLS(0)), "unsupported versions"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := e.Metrics()
			handshakes := Metric(m, "kmipd_messages_rejected_total", "reason", "handshake")
			ops := Metric(m, "kmipd_requests_total")
			mark := len(e.Logs())
			c, err := e.DialTLS(tc.cfg)
			if err == nil {
				_, err = c.RoundTrip(Request(Item(kmip14.OperationDiscoverVersions)))
				c.Close()
			}
			if err == nil {
				t.Fatal("the server answered a KMIP request over this connection")
			}
			WaitMetric(t, m, "kmipd_messages_rejected_total", func(v float64) bool { return v == handshakes+1 }, 5*time.Second, "reason", "handshake")
			if got := Metric(m, "kmipd_requests_total"); got != ops {
				t.Fatalf("%v KMIP operations processed for a refused client", got-ops)
			}
			waitLog(t, e, mark, tc.log)
			alive(t, e)
		})
	}
	t.Run("plain TCP KMIP without TLS", func(t *testing.T) {
		raw, err := net.DialTimeout("tcp", e.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		raw.Write(enc(Request(Item(kmip14.OperationDiscoverVersions))))
		raw.SetReadDeadline(time.Now().Add(10 * time.Second))
		// The server may send a TLS alert record (type 0x15), never a
		// TTLV response (0x42).
		var b [512]byte
		n, _ := raw.Read(b[:])
		if n > 0 && b[0] != 0x15 {
			t.Fatalf("server answered plain TCP with %x", b[:n])
		}
		alive(t, e)
	})
}

func tls11(c *tls.Config) *tls.Config {
	c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	return c
}

// waitLog waits for a line of the server's log after byte offset mark to
// mention every one of subs: the reason a client was refused must reach the
// operator even though the client only sees an alert or a close.
func waitLog(t *testing.T, e *Env, mark int, subs ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, line := range strings.Split(e.Logs()[mark:], "\n") {
			n := 0
			for _, s := range subs {
				if strings.Contains(line, s) {
					n++
				}
			}
			if n == len(subs) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line mentions all of %q", subs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestResumptionAfterExpiry: a TLS session ticket must not outlive the
// certificate it was issued for: resuming with it once the certificate has
// expired is refused, as a full handshake with that certificate would be.
func TestResumptionAfterExpiry(t *testing.T) {
	e := StartServer(t, Options{})
	short, err := e.CA.IssueClient("short-lived", certs.Validity(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.TLSWith(short)
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	c, err := e.DialTLS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	WantOK(t, c.One(t, Item(kmip14.OperationDiscoverVersions)))
	c.Close() // the ticket arrives with the first response in TLS 1.3
	c, err = e.DialTLS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !c.ConnectionState().DidResume {
		t.Fatal("second connection did not resume: the test proves nothing")
	}
	c.Close()
	time.Sleep(time.Until(short.Cert.NotAfter) + 500*time.Millisecond)
	c, err = e.DialTLS(cfg)
	if err == nil {
		_, err = c.RoundTrip(Request(Item(kmip14.OperationDiscoverVersions)))
		c.Close()
	}
	if err == nil {
		t.Fatal("a session of an expired certificate was resumed and served")
	}
	alive(t, e)
}
