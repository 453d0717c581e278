package kek

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/hsm"
)

// TestHSMClassReasons: kek, not hsm, decides what a KMIP client is told
// about an HSM failure. Only a tag or MAC that did not verify is a
// Cryptographic Failure (and an integrity failure when unwrapping a pKEK);
// every other class is General Failure with the HSM's own client text.
func TestHSMClassReasons(t *testing.T) {
	for _, c := range []struct {
		class  hsm.Class
		reason kmip14.ResultReason
		msg    string
	}{
		{hsm.ClassOther, kmip14.ResultReasonGeneralFailure, "HSM error"},
		{hsm.ClassBroken, kmip14.ResultReasonGeneralFailure, "HSM error"},
		{hsm.ClassCapacity, kmip14.ResultReasonGeneralFailure, "HSM busy"},
		{hsm.ClassBusy, kmip14.ResultReasonGeneralFailure, "HSM busy"},
		{hsm.ClassDevice, kmip14.ResultReasonGeneralFailure, "HSM unavailable"},
		{hsm.ClassUnavailable, kmip14.ResultReasonGeneralFailure, "HSM unavailable"},
		{hsm.ClassCrypto, kmip14.ResultReasonCryptographicFailure, "cryptographic failure"},
	} {
		he := &hsm.Error{Op: "unwrap", Class: c.class, Err: errors.New("cause")}
		e := passThrough("HSM unwrap pKEK", fmt.Errorf("wrapped: %w", he))
		if e.ResultReason() != c.reason || e.ClientMessage() != c.msg {
			t.Errorf("%s: %v / %q, want %v / %q", c.class, e.ResultReason(), e.ClientMessage(), c.reason, c.msg)
		}
		if !errors.Is(e, he) {
			t.Errorf("%s: the hsm.Error is not in the chain", c.class)
		}
		if got, want := isIntegrityFailure(he), c.class == hsm.ClassCrypto; got != want {
			t.Errorf("%s: isIntegrityFailure = %v", c.class, got)
		}
	}
	// What states no reason is a mismatch, unless it is a cancellation.
	if !isIntegrityFailure(errors.New("MAC mismatch")) || isIntegrityFailure(context.Canceled) {
		t.Error("isIntegrityFailure of a plain error or a cancellation")
	}
	// A lower error that states its own reason keeps it.
	own := &Error{Reason: kmip14.ResultReasonPermissionDenied, Msg: "denied"}
	if e := passThrough("x", own); e.ResultReason() != kmip14.ResultReasonPermissionDenied || e.ClientMessage() != "denied" {
		t.Errorf("own reason: %v / %q", e.ResultReason(), e.ClientMessage())
	}
}
