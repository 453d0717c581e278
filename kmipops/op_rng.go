package kmipops

import (
	"fmt"
	"io"
	"os"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/kmipops/tree"
)

// RNG Retrieve and RNG Seed (KMIP 1.4 §4.35, §4.36).

const (
	maxRNGRetrieve = 1 << 20 // bytes per request; a client wanting more asks again
	maxRNGSeed     = 4096    // seed bytes accepted per request
	// seedPath is the kernel pool crypto/rand reads (through getrandom).
	// Data written there is mixed in without being credited as entropy, so
	// a client's seed can add to the pool but can neither weaken nor
	// steer it: the generator stays the kernel's CSPRNG.
	seedPath = "/dev/urandom"
)

func opRNGRetrieve(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	n := payload.Child(kmip14.TagDataLength)
	if n == nil {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing Data Length")
	}
	l, ok := n.IntValue()
	if !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Data Length must be an integer")
	}
	if l <= 0 || l > maxRNGRetrieve {
		return nil, Errorf(kmip14.ResultReasonInvalidField, "Data Length must be between 1 and %d", maxRNGRetrieve)
	}
	b := make([]byte, l)
	if _, err := io.ReadFull(p.opts.Rand, b); err != nil {
		return nil, fmt.Errorf("random bytes: %w", err)
	}
	return tree.Struct(kmip14.TagResponsePayload, tree.Bytes(kmip14.TagData, b)), nil
}

// opRNGSeed answers the amount of seed data accepted (§4.36): what reached
// the kernel pool, up to maxRNGSeed bytes, or 0 when it could not be
// written (the honest answer, rather than a failure the client cannot act
// on).
func opRNGSeed(p *Processor, ic *itemCtx, payload *tree.Node) (*tree.Node, error) {
	data, ok, err := payloadBytes(payload, kmip14.TagData)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, Errorf(kmip14.ResultReasonInvalidMessage, "missing Data")
	}
	if len(data) > maxRNGSeed {
		data = data[:maxRNGSeed]
	}
	n, err := seedKernel(data)
	if err != nil {
		p.log.Warn("RNG seed not accepted", "caller", ic.caller.CommonName, "err", err)
	}
	return tree.Struct(kmip14.TagResponsePayload, tree.Int(kmip14.TagDataLength, int32(n))), nil
}

func seedKernel(data []byte) (int, error) {
	if len(data) == 0 {
		return 0, nil
	}
	f, err := os.OpenFile(seedPath, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	n, err := f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}
