package ovhclient

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"
)

// testRekey: Re-key (KMIP 1.0 §4.4) and Re-key Key Pair (1.1 §4.5) make new
// material, move the Name, and link old and new both ways.
func (s *server) testRekey(t *testing.T) {
	c := s.dial(t, "rekey")
	cr, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).WithName("ovh-rekey").Exec()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	old := cr.UniqueIdentifier
	if _, err := c.Activate(old).Exec(); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	oldKey := getSymmetric(t, c, old, 0)
	rk, err := c.Rekey(old).WithOffset(0).Exec()
	if err != nil {
		t.Fatalf("Re-key: %v", err)
	}
	nu := rk.UniqueIdentifier
	if nu == "" || nu == old {
		t.Fatalf("Re-key answered %q for %q", nu, old)
	}
	if bytes.Equal(getSymmetric(t, c, nu, 0), oldKey) {
		t.Errorf("Re-key kept the old material")
	}
	checkLink(t, c, nu, kmip.LinkTypeReplacedObjectLink, old)
	checkLink(t, c, old, kmip.LinkTypeReplacementObjectLink, nu)
	if s := state(t, c, nu); s != kmip.StateActive {
		t.Errorf("State of the replacement (Offset 0) %v, want Active", s)
	}
	loc, err := c.Locate().WithName("ovh-rekey").Exec()
	if err != nil {
		t.Fatalf("Locate: %v", err)
	}
	if !slices.Equal(loc.UniqueIdentifier, []string{nu}) {
		t.Errorf("after Re-key the Name locates %v, want only the replacement %s", loc.UniqueIdentifier, nu)
	}

	kp, err := c.CreateKeyPair().RSA(2048, kmip.CryptographicUsageSign, kmip.CryptographicUsageVerify).Exec()
	if err != nil {
		t.Fatalf("Create Key Pair: %v", err)
	}
	oldPriv, oldPub := kp.PrivateKeyUniqueIdentifier, kp.PublicKeyUniqueIdentifier
	rkp, err := c.RekeyKeyPair(oldPriv).Exec()
	if err != nil {
		t.Fatalf("Re-key Key Pair: %v", err)
	}
	priv, pub := rkp.PrivateKeyUniqueIdentifier, rkp.PublicKeyUniqueIdentifier
	if priv == oldPriv || pub == oldPub || priv == "" || pub == "" {
		t.Fatalf("Re-key Key Pair answered %q/%q for %q/%q", priv, pub, oldPriv, oldPub)
	}
	checkLink(t, c, priv, kmip.LinkTypePublicKeyLink, pub)
	checkLink(t, c, pub, kmip.LinkTypePrivateKeyLink, priv)
	checkLink(t, c, priv, kmip.LinkTypeReplacedObjectLink, oldPriv)
	checkLink(t, c, oldPriv, kmip.LinkTypeReplacementObjectLink, priv)
	if getPublic(t, c, pub).(pubKey).Equal(getPublic(t, c, oldPub)) {
		t.Errorf("Re-key Key Pair kept the old key")
	}
	if got := attrs(t, c, pub, kmip.AttributeNameCryptographicLength)[kmip.AttributeNameCryptographicLength]; len(got) != 1 || got[0] != int32(2048) {
		t.Errorf("replacement Cryptographic Length %v", got)
	}
}

// testBatch: the client's Batch in one request message. An ID Placeholder
// (empty Unique Identifier, KMIP 1.0 §3.1.1... §6.x) chains Create →
// Activate → Get Attributes; Continue answers every item; Stop ends at the
// failed one.
func (s *server) testBatch(t *testing.T) {
	c := s.dial(t, "batch")
	ctx := context.Background()
	res, err := c.Batch(ctx,
		&payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey, TemplateAttribute: kmip.TemplateAttribute{Attribute: []kmip.Attribute{
			{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
			{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(128)},
			{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: kmip.CryptographicUsageEncrypt},
		}}},
		&payloads.ActivateRequestPayload{},
		&payloads.GetAttributesRequestPayload{AttributeName: []kmip.AttributeName{kmip.AttributeNameState}},
	)
	if err != nil {
		t.Fatalf("Batch: %v", err)
	}
	for i, bi := range res {
		if err := bi.Err(); err != nil {
			t.Fatalf("batch item %d: %v", i, err)
		}
	}
	id := res[0].ResponsePayload.(*payloads.CreateResponsePayload).UniqueIdentifier
	ga := res[2].ResponsePayload.(*payloads.GetAttributesResponsePayload)
	if ga.UniqueIdentifier != id || len(ga.Attribute) != 1 || ga.Attribute[0].AttributeValue != kmip.StateActive {
		t.Errorf("Get Attributes through the ID Placeholder: %+v, want %s Active", ga, id)
	}

	missing := &payloads.GetRequestPayload{UniqueIdentifier: "no-such-object"}
	res, err = c.BatchOpt(ctx, []kmip.OperationPayload{missing, &payloads.QueryRequestPayload{}},
		kmipclient.OnBatchErr(kmip.BatchErrorContinuationOptionContinue))
	if err != nil {
		t.Fatalf("Batch under Continue: %v", err)
	}
	if res[0].ResultReason != kmip.ResultReasonItemNotFound || res[1].ResultStatus != kmip.ResultStatusSuccess {
		t.Errorf("Continue: %v/%v then %v", res[0].ResultStatus, res[0].ResultReason, res[1].ResultStatus)
	}

	// Under Stop kmipd does not run, nor answer, the items after the failed
	// one (KMIP 1.4 §6.13: the server "SHALL NOT continue processing
	// subsequent operations"). kmipclient.BatchOpt insists on one answer per
	// item and reports "Batch count mismatch", so the message goes through
	// RoundTrip to check what kmipd answered.
	msg := kmip.NewRequestMessage(c.Version(), missing, &payloads.QueryRequestPayload{})
	resp, err := c.RoundTrip(ctx, &msg)
	if err != nil {
		t.Fatalf("Batch under Stop: %v", err)
	}
	if resp.Header.BatchCount != 1 || len(resp.BatchItem) != 1 || resp.BatchItem[0].ResultReason != kmip.ResultReasonItemNotFound {
		t.Errorf("Stop: %d items, first %+v", len(resp.BatchItem), resp.BatchItem)
	}
}

// testKMIP2Refused: kmipd speaks KMIP 1.0–1.4. A client pinned to 2.0 or 2.1
// (the ovh client then writes 2.x payloads: Attributes, not Template-
// Attribute) gets a KMIP response refusing the message, promptly; the
// connection stays usable for a 1.x client afterwards.
func (s *server) testKMIP2Refused(t *testing.T) {
	for _, v := range []kmip.ProtocolVersion{kmip.V2_0, kmip.V2_1} {
		c := s.dial(t, "kmip2", kmipclient.EnforceVersion(v))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt).ExecContext(ctx)
		late := ctx.Err()
		cancel()
		if err == nil {
			t.Fatalf("a KMIP %v Create succeeded on a 1.x server", v)
		}
		if late != nil {
			t.Fatalf("KMIP %v request: no answer in time: %v", v, err)
		}
		msg := kmip.NewRequestMessage(v, &payloads.QueryRequestPayload{QueryFunction: []kmip.QueryFunction{kmip.QueryFunctionOperations}})
		resp, err := c.RoundTrip(context.Background(), &msg)
		if err != nil {
			t.Fatalf("KMIP %v Query: no KMIP response: %v", v, err)
		}
		if len(resp.BatchItem) != 1 || resp.BatchItem[0].ResultStatus != kmip.ResultStatusOperationFailed ||
			resp.BatchItem[0].ResultReason == 0 {
			t.Errorf("KMIP %v Query: %+v, want one failed item with a Result Reason", v, resp.BatchItem)
		}
		if resp.Header.ProtocolVersion.ProtocolVersionMajor != 1 {
			t.Errorf("KMIP %v refusal written as %v, want a version kmipd speaks", v, resp.Header.ProtocolVersion)
		}
		t.Logf("KMIP %v: %v %v %q", v, resp.BatchItem[0].ResultStatus, resp.BatchItem[0].ResultReason, resp.BatchItem[0].ResultMessage)
	}
}

// testConcurrent: clones of one client (each its own TLS connection) create,
// read and destroy keys at once; every key reads back as its own.
func (s *server) testConcurrent(t *testing.T) {
	c := s.dial(t, "concurrent")
	const workers, rounds = 4, 8
	errs := make(chan error, workers)
	for w := range workers {
		cl, err := c.Clone()
		if err != nil {
			t.Fatalf("Clone: %v", err)
		}
		t.Cleanup(func() { cl.Close() })
		go func() {
			errs <- func() error {
				for i := range rounds {
					cr, err := cl.Create().AES(256, kmip.CryptographicUsageEncrypt).WithName(fmt.Sprintf("ovh-c-%d-%d", w, i)).Exec()
					if err != nil {
						return err
					}
					loc, err := cl.Locate().WithName(fmt.Sprintf("ovh-c-%d-%d", w, i)).Exec()
					if err != nil {
						return err
					}
					if !slices.Equal(loc.UniqueIdentifier, []string{cr.UniqueIdentifier}) {
						return fmt.Errorf("worker %d round %d: Locate found %v, want [%s]", w, i, loc.UniqueIdentifier, cr.UniqueIdentifier)
					}
					if _, err := cl.Destroy(cr.UniqueIdentifier).Exec(); err != nil {
						return err
					}
				}
				return nil
			}()
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
