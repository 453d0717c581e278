package splitkey

import (
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
)

// splitPrime shares secret, read as a big-endian integer, in GF(q): share
// i is f(i) for a random f of degree k-1 with f(0) = secret, written
// big-endian in as many bytes as q takes.
func splitPrime(r io.Reader, q *big.Int, n, k int, secret []byte) ([][]byte, error) {
	s := new(big.Int).SetBytes(secret)
	coef := make([]*big.Int, k-1)
	for i := range coef {
		c, err := rand.Int(r, q)
		if err != nil {
			return nil, fmt.Errorf("splitkey: random source: %w", err)
		}
		coef[i] = c
	}
	width := (q.BitLen() + 7) / 8
	keys := make([][]byte, n)
	acc := new(big.Int)
	for i := range keys {
		x := big.NewInt(int64(i + 1))
		acc.SetInt64(0)
		for j := k - 2; j >= 0; j-- {
			acc.Mul(acc, x).Add(acc, coef[j]).Mod(acc, q)
		}
		acc.Mul(acc, x).Add(acc, s).Mod(acc, q)
		keys[i] = acc.FillBytes(make([]byte, width))
	}
	for _, c := range coef {
		c.SetInt64(0)
	}
	s.SetInt64(0)
	return keys, nil
}

// joinPrime interpolates at 0 in GF(q) and writes the secret in secretLen
// bytes; a value that does not fit means the parts were not a split of a
// secretLen-byte secret.
func joinPrime(q *big.Int, parts []Part, secretLen int) ([]byte, error) {
	if width := (q.BitLen() + 7) / 8; len(parts[0].Key) != width {
		return nil, fmt.Errorf("%w: %d-byte parts for a %d-byte Prime Field Size", ErrParameter, len(parts[0].Key), width)
	}
	ys := make([]*big.Int, len(parts))
	for i, p := range parts {
		ys[i] = new(big.Int).SetBytes(p.Key)
		if ys[i].Cmp(q) >= 0 {
			return nil, fmt.Errorf("%w: Key Part %d is not below the Prime Field Size", ErrParameter, p.ID)
		}
	}
	sum, num, den, t := new(big.Int), new(big.Int), new(big.Int), new(big.Int)
	for j, pj := range parts {
		num.SetInt64(1)
		den.SetInt64(1)
		for m, pm := range parts {
			if m == j {
				continue
			}
			num.Mul(num, big.NewInt(int64(pm.ID))).Mod(num, q)
			den.Mul(den, t.SetInt64(int64(pm.ID-pj.ID))).Mod(den, q)
		}
		den.ModInverse(den, q)
		t.Mul(num, den).Mod(t, q)
		sum.Add(sum, t.Mul(t, ys[j])).Mod(sum, q)
	}
	if sum.BitLen() > 8*secretLen {
		return nil, fmt.Errorf("%w: the parts do not interpolate to a %d-byte secret", ErrParameter, secretLen)
	}
	out := sum.FillBytes(make([]byte, secretLen))
	sum.SetInt64(0)
	return out, nil
}
