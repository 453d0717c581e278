package reason_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"

	"github.com/kmipd/kmipd/reason"
)

type layerErr struct {
	r   kmip14.ResultReason
	msg string
	err error
}

func (e *layerErr) Error() string                     { return e.msg }
func (e *layerErr) Unwrap() error                     { return e.err }
func (e *layerErr) ResultReason() kmip14.ResultReason { return e.r }
func (e *layerErr) ClientMessage() string             { return e.msg }

var (
	_ reason.Reasoner  = (*layerErr)(nil)
	_ reason.Messenger = (*layerErr)(nil)
)

func TestOfFindsTheOutermostStatedReason(t *testing.T) {
	inner := &layerErr{r: kmip14.ResultReasonCryptographicFailure, msg: "inner"}
	outer := &layerErr{r: kmip14.ResultReasonPermissionDenied, msg: "outer", err: inner}
	cases := []struct {
		err    error
		reason kmip14.ResultReason
		msg    string
		ok     bool
	}{
		{nil, 0, "", false},
		{errors.New("plain"), 0, "", false},
		{inner, kmip14.ResultReasonCryptographicFailure, "inner", true},
		{fmt.Errorf("wrapped: %w", inner), kmip14.ResultReasonCryptographicFailure, "inner", true},
		{outer, kmip14.ResultReasonPermissionDenied, "outer", true},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", outer)), kmip14.ResultReasonPermissionDenied, "outer", true},
	}
	for i, c := range cases {
		r, ok := reason.Of(c.err)
		if r != c.reason || ok != c.ok {
			t.Errorf("case %d: Of = %v, %v; want %v, %v", i, r, ok, c.reason, c.ok)
		}
		m, ok := reason.Message(c.err)
		if m != c.msg || ok != c.ok {
			t.Errorf("case %d: Message = %q, %v; want %q, %v", i, m, ok, c.msg, c.ok)
		}
	}
}
