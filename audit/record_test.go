package audit

import (
	"math/rand/v2"
	"testing"
	"time"
)

// appendTimeField writes what time.RFC3339Nano does in UTC, whatever the
// fraction, zone and year.
func TestAppendTimeFieldMatchesRFC3339Nano(t *testing.T) {
	zone := time.FixedZone("x", -7*3600-30*60)
	times := []time.Time{
		time.Date(2026, 12, 7, 17, 4, 5, 0, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 100, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 120000000, zone),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 5, time.UTC),
		time.Date(-3, 1, 1, 0, 0, 0, 5, time.UTC),
		time.Now(),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		times = append(times, time.Unix(r.Int64N(300000000000)-10000000000, r.Int64N(1e9)).In(zone))
	}
	for _, tm := range times {
		got := string(appendTimeField(nil, tm))
		want := `,"time":"` + tm.UTC().Format(time.RFC3339Nano) + `"`
		if got != want {
			t.Fatalf("%v: %s, want %s", tm, got, want)
		}
	}
}

// BenchmarkLogParallel is Log's cost on the request goroutines, many at once.
func BenchmarkLogParallel(b *testing.B) {
	s := NewStream(discard{}, Options{}, nil)
	defer s.Close()
	e := testEvent(7)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = s.Log(b.Context(), e)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
