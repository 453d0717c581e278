package bench

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestHistExactSmallValues(t *testing.T) {
	// Values below 128 ns have a bucket each, so nearest-rank percentiles
	// of 1..100 are exact.
	var h Hist
	for v := 100; v >= 1; v-- { // order must not matter
		h.Record(time.Duration(v))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{50, 50}, {90, 90}, {99, 99}, {99.5, 100}, {100, 100}, {1, 1}, {0.1, 1}} {
		if got := h.Percentile(c.q); got != c.want {
			t.Errorf("p%v = %d, want %d", c.q, got, c.want)
		}
	}
	if h.Count() != 100 || h.Min() != 1 || h.Max() != 100 {
		t.Errorf("count/min/max = %d/%d/%d", h.Count(), h.Min(), h.Max())
	}
	if h.Mean() != 50 { // 5050/100 = 50.5, truncated
		t.Errorf("mean = %d", h.Mean())
	}
}

func TestHistPercentilesWithinPrecision(t *testing.T) {
	// 1..10000 µs, shuffled: the nearest-rank p-th value is p% of 10000 µs.
	var h Hist
	vals := rand.Perm(10000)
	for _, v := range vals {
		h.Record(time.Duration(v+1) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{50, 5000 * time.Microsecond}, {90, 9000 * time.Microsecond}, {99, 9900 * time.Microsecond}, {99.9, 9990 * time.Microsecond}} {
		got := h.Percentile(c.q)
		// The answer is the top of the value's bucket: never below the
		// true value, and at most 1/64 above it.
		if got < c.want || float64(got-c.want) > float64(c.want)/64 {
			t.Errorf("p%v = %v, want %v (+1/64)", c.q, got, c.want)
		}
	}
	if h.Percentile(100) != 10*time.Millisecond || h.Max() != 10*time.Millisecond {
		t.Errorf("p100 = %v, max = %v, want 10ms exactly", h.Percentile(100), h.Max())
	}
	if h.Mean() != 5000500*time.Nanosecond {
		t.Errorf("mean = %v, want 5.0005ms", h.Mean())
	}
}

func TestHistSkewedDistribution(t *testing.T) {
	// 98 fast requests and 2 slow ones: p50 and p98 are fast, p99 slow.
	var h Hist
	for i := 0; i < 98; i++ {
		h.Record(time.Millisecond)
	}
	h.Record(2 * time.Second)
	h.Record(3 * time.Second)
	if p := h.Percentile(50); p < time.Millisecond || p > time.Millisecond+time.Millisecond/64 {
		t.Errorf("p50 = %v", p)
	}
	if p := h.Percentile(98); p > time.Millisecond+time.Millisecond/64 {
		t.Errorf("p98 = %v", p)
	}
	if p := h.Percentile(99); p < 2*time.Second || p > 2*time.Second+2*time.Second/64 {
		t.Errorf("p99 = %v", p)
	}
	if h.Max() != 3*time.Second {
		t.Errorf("max = %v", h.Max())
	}
}

func TestHistMergeEqualsSingle(t *testing.T) {
	var a, b, all Hist
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		d := time.Duration(r.ExpFloat64() * float64(time.Millisecond))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Hist
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(nil)
	m.Merge(&Hist{})
	if m != all {
		t.Fatal("merged histogram differs from the one fed every value")
	}
}

func TestHistBuckets(t *testing.T) {
	// Every value lands in a bucket whose top is ≥ it and within 1/64, and
	// bucket indexes grow with the value.
	r := rand.New(rand.NewPCG(3, 4))
	prev := -1
	for v := uint64(0); v < 1<<16; v++ {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucketOf(%d) = %d < bucketOf(%d) = %d", v, i, v-1, prev)
		}
		prev = i
	}
	for n := 0; n < 100000; n++ {
		v := r.Uint64N(maxValue + 1)
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", v, i)
		}
		hi := bucketHigh(i)
		if hi < v || float64(hi-v) > float64(v)/64 {
			t.Fatalf("value %d: bucket %d top %d", v, i, hi)
		}
	}
	if bucketOf(maxValue) != histBuckets-1 {
		t.Fatalf("largest value in bucket %d, want %d", bucketOf(maxValue), histBuckets-1)
	}
	// Beyond the range: clamped, still counted, Max exact.
	var h Hist
	h.Record(time.Duration(1) << 50)
	h.Record(-time.Second)
	if h.Count() != 2 || h.Max() != time.Duration(1)<<50 || h.Percentile(100) != time.Duration(1)<<50 {
		t.Fatalf("out-of-range values: count %d max %v", h.Count(), h.Max())
	}
}

func TestHistEmpty(t *testing.T) {
	var h Hist
	if h.Percentile(50) != 0 || h.Mean() != 0 || h.Max() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
}
