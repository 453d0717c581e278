package derive

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// kbkdfVector is one known answer of testdata/sp800-108.txt.
type kbkdfVector struct {
	name                 string
	mode, prf            string
	spec                 CounterSpec
	key, iv, fixed, want []byte
	hasIV                bool
}

func TestSP800108KnownAnswers(t *testing.T) {
	vs := readKBKDFVectors(t, "testdata/sp800-108.txt")
	seen := map[string]bool{}
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			seen[v.mode] = true
			prf := prfByName(t, v.prf)
			var got []byte
			var err error
			switch v.mode {
			case "counter":
				got, err = Counter(prf, v.key, v.fixed, len(v.want), v.spec)
			case "feedback":
				iv := v.iv
				if !v.hasIV {
					iv = nil
				}
				got, err = Feedback(prf, v.key, iv, v.fixed, len(v.want), v.spec)
			case "pipeline":
				got, err = DoublePipeline(prf, v.key, v.fixed, len(v.want), v.spec)
			default:
				t.Fatalf("unknown mode %q", v.mode)
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, v.want) {
				t.Fatalf("got  %x\nwant %x", got, v.want)
			}
		})
	}
	for _, m := range []string{"counter", "feedback", "pipeline"} {
		if !seen[m] {
			t.Errorf("no %s-mode vector ran", m)
		}
	}
	if len(vs) < 15 {
		t.Errorf("only %d vectors read; the file has more", len(vs))
	}
}

// TestDeriveSP800108 runs the KMIP-default vectors through Derive, the way
// kmipops calls it: Derivation Data is the fixed input, Length in bytes.
func TestDeriveSP800108(t *testing.T) {
	for _, v := range readKBKDFVectors(t, "testdata/sp800-108.txt") {
		if v.spec != KMIPCounter {
			continue
		}
		m := map[string]Method{"counter": NIST800108C, "feedback": NIST800108F, "pipeline": NIST800108DPI}[v.mode]
		p := Params{Method: m, Key: v.key, Data: v.fixed, PRF: prfByName(t, v.prf), Length: len(v.want)}
		if v.mode == "feedback" {
			p.IV = v.iv
		}
		got, err := Derive(p)
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		if !bytes.Equal(got, v.want) {
			t.Errorf("%s: got %x, want %x", v.name, got, v.want)
		}
	}
}

func prfByName(t testing.TB, name string) PRF {
	switch name {
	case "CMAC_AES128":
		return cmacAESPRF
	case "HMAC_SHA1":
		return HMACPRF(sha1.New)
	case "HMAC_SHA256":
		return HMACPRF(sha256.New)
	case "HMAC_SHA512":
		return HMACPRF(sha512.New)
	}
	t.Fatalf("unknown PRF %q", name)
	return nil
}

// readKBKDFVectors parses the vector file (its header says the format).
func readKBKDFVectors(t testing.TB, path string) []kbkdfVector {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out  []kbkdfVector
		kind string
		sec  map[string]string
		cur  map[string]string
		line int
	)
	flush := func() {
		if len(cur) == 0 {
			return
		}
		out = append(out, buildVector(t, kind, sec, cur, fmt.Sprintf("%s/%s/%s/line%d", sec["mode"], sec["prf"], kind, line)))
		cur = nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "":
			flush()
		case strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "["):
			flush()
			fields := strings.Fields(strings.Trim(l, "[]"))
			kind, sec = fields[0], map[string]string{}
			for _, kv := range fields[1:] {
				k, v, _ := strings.Cut(kv, "=")
				sec[k] = v
			}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				t.Fatalf("%s:%d: no '='", path, line)
			}
			if cur == nil {
				cur = map[string]string{}
			}
			cur[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func buildVector(t testing.TB, kind string, sec, kv map[string]string, name string) kbkdfVector {
	v := kbkdfVector{name: name, mode: sec["mode"], prf: sec["prf"]}
	switch kind {
	case "cavp", "raw":
		r, err := strconv.Atoi(sec["rlen"])
		if err != nil {
			t.Fatalf("%s: rlen: %v", name, err)
		}
		v.spec.Bits = r
		switch sec["ctr"] {
		case "BEFORE_FIXED", "AFTER_ITER", "NONE":
			v.spec.Location = BeforeFixed
		case "AFTER_FIXED":
			v.spec.Location = AfterFixed
		case "BEFORE_ITER":
			v.spec.Location = BeforeIter
		default:
			t.Fatalf("%s: counter location %q", name, sec["ctr"])
		}
		v.key, v.fixed, v.want = unhex(t, kv["KI"]), unhex(t, kv["FixedInputData"]), unhex(t, kv["KO"])
		ivHex, hasIV := kv["IV"]
		v.iv, v.hasIV = unhex(t, ivHex), hasIV
		if l, _ := strconv.Atoi(kv["L"]); l != 8*len(v.want) {
			t.Fatalf("%s: L = %d but KO has %d bytes", name, l, len(v.want))
		}
	case "botan":
		v.spec = KMIPCounter
		v.key, v.want = unhex(t, kv["Secret"]), unhex(t, kv["Output"])
		salt, label := unhex(t, kv["Salt"]), unhex(t, kv["Label"])
		ctx := salt
		if v.mode == "feedback" {
			h := prfSize(t, v.prf)
			v.iv, v.hasIV = []byte{}, true
			if len(salt) >= h {
				v.iv, ctx = salt[:h], salt[h:]
			}
		}
		v.fixed = append(append(append(label, 0), ctx...), binary.BigEndian.AppendUint32(nil, uint32(8*len(v.want)))...)
	default:
		t.Fatalf("%s: unknown section kind %q", name, kind)
	}
	return v
}

func prfSize(t testing.TB, name string) int {
	h, err := prfByName(t, name)(make([]byte, 16))
	if err != nil {
		t.Fatal(err)
	}
	return h.Size()
}

// TestSP800108Bounds: what the KDFs must refuse rather than compute.
func TestSP800108Bounds(t *testing.T) {
	prf := HMACPRF(sha256.New)
	key, fixed := make([]byte, 32), []byte("fixed")
	cases := []struct {
		name string
		run  func() ([]byte, error)
		want error
	}{
		{"no PRF", func() ([]byte, error) { return Counter(nil, key, fixed, 16, KMIPCounter) }, ErrParameter},
		{"no fixed input", func() ([]byte, error) { return Counter(prf, key, nil, 16, KMIPCounter) }, ErrParameter},
		{"counter mode without counter", func() ([]byte, error) { return Counter(prf, key, fixed, 16, CounterSpec{}) }, ErrParameter},
		{"counter mode before iteration", func() ([]byte, error) {
			return Counter(prf, key, fixed, 16, CounterSpec{Bits: 32, Location: BeforeIter})
		}, ErrParameter},
		{"odd counter length", func() ([]byte, error) { return Counter(prf, key, fixed, 16, CounterSpec{Bits: 12}) }, ErrParameter},
		{"unknown location", func() ([]byte, error) {
			return Feedback(prf, key, nil, fixed, 16, CounterSpec{Bits: 8, Location: 9})
		}, ErrParameter},
		{"zero length", func() ([]byte, error) { return DoublePipeline(prf, key, fixed, 0, KMIPCounter) }, ErrLength},
		// An 8-bit counter numbers at most 255 blocks of 32 bytes.
		{"8-bit counter overflow", func() ([]byte, error) {
			return Counter(prf, key, fixed, 256*32, CounterSpec{Bits: 8})
		}, ErrLength},
		{"PRF refuses the key", func() ([]byte, error) { return Counter(cmacAESPRF, make([]byte, 7), fixed, 16, KMIPCounter) }, ErrParameter},
	}
	for _, c := range cases {
		out, err := c.run()
		if !errors.Is(err, c.want) || out != nil {
			t.Errorf("%s: got (%x, %v), want %v", c.name, out, err, c.want)
		}
	}
	// 255 blocks still fit an 8-bit counter.
	if out, err := Counter(prf, key, fixed, 255*32, CounterSpec{Bits: 8}); err != nil || len(out) != 255*32 {
		t.Errorf("255 blocks with an 8-bit counter: %d bytes, %v", len(out), err)
	}
}

// TestSP800108Prefix: a shorter output is a prefix of a longer one, and the
// counter really enters the PRF input (two blocks differ).
func TestSP800108Prefix(t *testing.T) {
	prf := HMACPRF(sha256.New)
	key, fixed := []byte("k"), []byte("f")
	for _, run := range []func(n int) ([]byte, error){
		func(n int) ([]byte, error) { return Counter(prf, key, fixed, n, KMIPCounter) },
		func(n int) ([]byte, error) { return Feedback(prf, key, nil, fixed, n, KMIPCounter) },
		func(n int) ([]byte, error) { return DoublePipeline(prf, key, fixed, n, KMIPCounter) },
	} {
		long, err := run(80)
		if err != nil {
			t.Fatal(err)
		}
		short, _ := run(33)
		if !bytes.Equal(short, long[:33]) {
			t.Errorf("33-byte output is not a prefix of the 80-byte one")
		}
		if bytes.Equal(long[:32], long[32:64]) {
			t.Errorf("first two blocks are equal")
		}
	}
}
