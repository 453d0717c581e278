package hsm_test

import (
	"context"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kmipd/kmipd/hsm/hsmtest"
)

// The pool's own cost: take and return a session around a call that does
// nothing ("noop") or one cheap PKCS#11 call ("session-info").
func benchFns() map[string]func(*pkcs11.Ctx, pkcs11.SessionHandle) error {
	return map[string]func(*pkcs11.Ctx, pkcs11.SessionHandle) error{
		"noop": func(*pkcs11.Ctx, pkcs11.SessionHandle) error { return nil },
		"session-info": func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
			_, err := p.GetSessionInfo(sh)
			return err
		},
	}
}

func BenchmarkPoolUncontended(b *testing.B) {
	h := open(b, hsmtest.SoftHSM(b))
	ctx := context.Background()
	for _, name := range []string{"noop", "session-info"} {
		fn := benchFns()[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := h.DoForTest(ctx, fn); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	if st := h.Stats(); st.PeakOpen > 2 {
		b.Fatalf("uncontended use grew the pool: %+v", st)
	}
}

func BenchmarkPoolContended(b *testing.B) {
	cfg := hsmtest.SoftHSM(b)
	cfg.MaxSessions = 4
	h := open(b, cfg)
	ctx := context.Background()
	for _, name := range []string{"noop", "session-info"} {
		fn := benchFns()[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(8) // 8×GOMAXPROCS goroutines on 4 sessions
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := h.DoForTest(ctx, fn); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	if st := h.Stats(); st.PeakOpen > 4 {
		b.Fatalf("cap exceeded: %+v", st)
	}
}

func BenchmarkWrap(b *testing.B) {
	h := open(b, hsmtest.SoftHSM(b))
	ctx := context.Background()
	pt := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Wrap(ctx, pt, []byte("aad")); err != nil {
			b.Fatal(err)
		}
	}
}
