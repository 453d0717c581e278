package bench

import (
	"math/bits"
	"time"
)

// Hist is an HDR-style latency histogram: log-linear buckets with 64
// sub-buckets per power of two, so any recorded value is reported within
// 1/64 (~1.6%) of itself while memory stays fixed (~18 KiB) however long a
// run lasts. Values below 128 ns are exact. It is not safe for concurrent
// use: each worker owns one and they are merged at the end.
type Hist struct {
	counts     [histBuckets]uint64
	n          uint64
	sum        time.Duration
	minV, maxV time.Duration
	hasMin     bool
}

const (
	subBits     = 7              // 128 exact values, then 64 sub-buckets per octave
	subCount    = 1 << subBits   // 128
	subHalf     = subCount / 2   // 64
	maxBits     = 40             // 2^40 ns ≈ 18 min: anything longer is clamped
	maxValue    = 1<<maxBits - 1 // largest value kept in its own bucket
	histBuckets = subCount + (maxBits-subBits)*subHalf
)

// bucketOf maps a non-negative value to its bucket index.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits // ≥ 1; v>>shift is in [64, 128)
	return subCount + (shift-1)*subHalf + int(v>>uint(shift)) - subHalf
}

// bucketHigh is the largest value that falls in bucket i.
func bucketHigh(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	j := i - subCount
	shift := j/subHalf + 1
	top := uint64(j%subHalf + subHalf)
	return (top+1)<<uint(shift) - 1
}

// Record adds one latency. Negative values count as zero.
func (h *Hist) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	v := uint64(d)
	if v > maxValue {
		v = maxValue // still counted; Max keeps the exact value
	}
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += d
	if !h.hasMin || d < h.minV {
		h.minV, h.hasMin = d, true
	}
	if d > h.maxV {
		h.maxV = d
	}
}

// Merge adds o's values into h.
func (h *Hist) Merge(o *Hist) {
	if o == nil || o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	if !h.hasMin || o.minV < h.minV {
		h.minV, h.hasMin = o.minV, true
	}
	if o.maxV > h.maxV {
		h.maxV = o.maxV
	}
}

// Count is the number of values recorded.
func (h *Hist) Count() uint64 { return h.n }

// Max is the exact largest value recorded.
func (h *Hist) Max() time.Duration { return h.maxV }

// Min is the exact smallest value recorded.
func (h *Hist) Min() time.Duration { return h.minV }

// Mean is the exact arithmetic mean.
func (h *Hist) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Percentile returns the value at or below which q percent (0 < q ≤ 100) of
// the recorded values lie, using the nearest-rank definition. The answer is
// the top of the bucket holding that rank, clamped to [Min, Max], so p100 is
// the exact maximum and small exact values are returned exactly.
func (h *Hist) Percentile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return h.minV
	}
	if q >= 100 {
		return h.maxV
	}
	// Nearest rank: the smallest rank r with r ≥ q% of n (1-based).
	rank := uint64(q / 100 * float64(h.n))
	if float64(rank) < q/100*float64(h.n) {
		rank++
	}
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := time.Duration(bucketHigh(i))
			if v > h.maxV {
				v = h.maxV
			}
			if v < h.minV {
				v = h.minV
			}
			return v
		}
	}
	return h.maxV
}
