package kek

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Stored pKEK record, at storage key "pkek/<owner>":
//
//	version (1 byte, recordV1) | len(wrapped) (uint16 BE) | wrapped | mac
//
// wrapped is the HSM's AES-GCM wrap of the 32-byte pKEK under the MKEK with
// AAD pkekAAD(owner); mac is the HSM's HMAC of macData(owner, wrapped). Both
// bind the owner, so a record copied to another owner's key is refused.
const (
	recordV1     byte = 1
	recordHdr         = 3
	pkekLen           = 32
	recordPrefix      = "pkek/"
)

func storageKey(owner string) string { return recordPrefix + owner }

func pkekAAD(owner string) []byte {
	return append([]byte("kmipd/pkek/v1\x00"), owner...)
}

func macData(owner string, wrapped []byte) []byte {
	b := make([]byte, 0, 20+len(owner)+len(wrapped))
	b = append(b, "kmipd/pkek-mac/v1\x00"...)
	b = append(b, owner...)
	b = append(b, 0)
	return append(b, wrapped...)
}

func encodeRecord(wrapped, mac []byte) ([]byte, error) {
	if len(wrapped) == 0 || len(wrapped) > 0xffff || len(mac) == 0 {
		return nil, fmt.Errorf("pKEK record: bad sizes (wrapped %d, mac %d)", len(wrapped), len(mac))
	}
	b := make([]byte, recordHdr, recordHdr+len(wrapped)+len(mac))
	b[0] = recordV1
	binary.BigEndian.PutUint16(b[1:], uint16(len(wrapped)))
	b = append(b, wrapped...)
	return append(b, mac...), nil
}

var errMalformed = errors.New("malformed pKEK record")

func decodeRecord(b []byte) (wrapped, mac []byte, err error) {
	if len(b) < recordHdr {
		return nil, nil, errMalformed
	}
	if b[0] != recordV1 {
		return nil, nil, fmt.Errorf("%w: unknown version %d", errMalformed, b[0])
	}
	n := int(binary.BigEndian.Uint16(b[1:]))
	if n == 0 || len(b) <= recordHdr+n {
		return nil, nil, fmt.Errorf("%w: length %d of %d bytes", errMalformed, n, len(b))
	}
	return b[recordHdr : recordHdr+n], b[recordHdr+n:], nil
}
