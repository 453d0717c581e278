package kek

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Stored pKEK record, at storage key "pkek/<owner>". Version 1 holds one
// pKEK, generation 0:
//
//	1 | len(wrapped) (uint16 BE) | wrapped | mac
//
// Version 2 holds one or two generations, the current (sealing) one first;
// two only while a rotation moves the owner's objects to the new one:
//
//	2 | n (1 byte) | n × ( generation (uint32 BE) | len(wrapped) (uint16 BE) | wrapped | len(mac) (uint16 BE) | mac )
//
// Version 3 is version 2 with, per entry, the labels of the MKEK that
// wrapped it and the HMAC key that MACed it (after a master-key rotation);
// an empty label is the configured key, as in versions 1 and 2:
//
//	3 | n | n × ( generation (uint32 BE) | len(mkek) (1 byte) | mkek | len(hmac) (1 byte) | hmac | len(wrapped) (uint16 BE) | wrapped | len(mac) (uint16 BE) | mac )
//
// wrapped is the HSM's AES-GCM wrap of the 32-byte pKEK under the MKEK with
// AAD pkekAAD(owner, gen); mac is the HSM's HMAC of macData(owner, gen,
// wrapped). Both bind the owner and the generation, so a record copied to
// another owner's key, or a pKEK relabelled, is refused. Generation 0 keeps
// version 1's inputs, so a version 1 record reads as a one-entry version 2.
const (
	recordV1     byte = 1
	recordV2     byte = 2
	recordV3     byte = 3
	recordHdr         = 3
	pkekLen           = 32
	recordPrefix      = "pkek/"
	maxEntries        = 2
)

func storageKey(owner string) string { return recordPrefix + owner }

func genBytes(gen uint32) []byte { return binary.BigEndian.AppendUint32(nil, gen) }

func pkekAAD(owner string, gen uint32) []byte {
	if gen == 0 {
		return append([]byte("kmipd/pkek/v1\x00"), owner...)
	}
	b := append([]byte("kmipd/pkek/v2\x00"), owner...)
	return append(append(b, 0), genBytes(gen)...)
}

func macData(owner string, gen uint32, wrapped []byte) []byte {
	b := make([]byte, 0, 26+len(owner)+len(wrapped))
	if gen == 0 {
		b = append(b, "kmipd/pkek-mac/v1\x00"...)
		b = append(b, owner...)
	} else {
		b = append(b, "kmipd/pkek-mac/v2\x00"...)
		b = append(b, owner...)
		b = append(b, 0)
		b = append(b, genBytes(gen)...)
	}
	b = append(b, 0)
	return append(b, wrapped...)
}

// pkekEntry is one generation of an owner's pKEK as stored.
type pkekEntry struct {
	gen          uint32
	wrapped, mac []byte
	// mkek and hmac label the master keys that wrapped and MACed it; ""
	// is the keyring's base (configured) key.
	mkek, hmac string
}

func (e pkekEntry) labelled() bool { return e.mkek != "" || e.hmac != "" }

// encodeRecord writes entries (current first): version 1 when it is the
// lone generation 0, so records of owners never rotated keep their form.
func encodeRecord(entries []pkekEntry) ([]byte, error) {
	if len(entries) == 0 || len(entries) > maxEntries {
		return nil, fmt.Errorf("pKEK record: %d generations", len(entries))
	}
	for _, e := range entries {
		if len(e.wrapped) == 0 || len(e.wrapped) > 0xffff || len(e.mac) == 0 || len(e.mac) > 0xffff {
			return nil, fmt.Errorf("pKEK record: bad sizes (wrapped %d, mac %d)", len(e.wrapped), len(e.mac))
		}
		if len(e.mkek) > 0xff || len(e.hmac) > 0xff {
			return nil, fmt.Errorf("pKEK record: master-key label longer than 255 bytes")
		}
	}
	ver := recordV2
	for _, e := range entries {
		if e.labelled() {
			ver = recordV3
		}
	}
	if ver == recordV2 && len(entries) == 1 && entries[0].gen == 0 {
		e := entries[0]
		b := make([]byte, recordHdr, recordHdr+len(e.wrapped)+len(e.mac))
		b[0] = recordV1
		binary.BigEndian.PutUint16(b[1:], uint16(len(e.wrapped)))
		b = append(b, e.wrapped...)
		return append(b, e.mac...), nil
	}
	b := []byte{ver, byte(len(entries))}
	for _, e := range entries {
		b = binary.BigEndian.AppendUint32(b, e.gen)
		if ver == recordV3 {
			b = append(append(b, byte(len(e.mkek))), e.mkek...)
			b = append(append(b, byte(len(e.hmac))), e.hmac...)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.wrapped)))
		b = append(b, e.wrapped...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(e.mac)))
		b = append(b, e.mac...)
	}
	return b, nil
}

var errMalformed = errors.New("malformed pKEK record")

func decodeRecord(b []byte) ([]pkekEntry, error) {
	if len(b) < recordHdr {
		return nil, errMalformed
	}
	switch b[0] {
	case recordV1:
		n := int(binary.BigEndian.Uint16(b[1:]))
		if n == 0 || len(b) <= recordHdr+n {
			return nil, fmt.Errorf("%w: length %d of %d bytes", errMalformed, n, len(b))
		}
		return []pkekEntry{{gen: 0, wrapped: b[recordHdr : recordHdr+n], mac: b[recordHdr+n:]}}, nil
	case recordV2, recordV3:
	default:
		return nil, fmt.Errorf("%w: unknown version %d", errMalformed, b[0])
	}
	n := int(b[1])
	if n == 0 || n > maxEntries {
		return nil, fmt.Errorf("%w: %d generations", errMalformed, n)
	}
	rest := b[2:]
	field := func() ([]byte, bool) {
		if len(rest) < 2 {
			return nil, false
		}
		l := int(binary.BigEndian.Uint16(rest))
		if l == 0 || len(rest) < 2+l {
			return nil, false
		}
		f := rest[2 : 2+l]
		rest = rest[2+l:]
		return f, true
	}
	label := func() (string, bool) {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return "", false
		}
		l := string(rest[1 : 1+int(rest[0])])
		rest = rest[1+int(rest[0]):]
		return l, true
	}
	out := make([]pkekEntry, 0, n)
	for i := 0; i < n; i++ {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: truncated", errMalformed)
		}
		e := pkekEntry{gen: binary.BigEndian.Uint32(rest)}
		rest = rest[4:]
		if b[0] == recordV3 {
			var ok bool
			if e.mkek, ok = label(); !ok {
				return nil, fmt.Errorf("%w: truncated", errMalformed)
			}
			if e.hmac, ok = label(); !ok {
				return nil, fmt.Errorf("%w: truncated", errMalformed)
			}
		}
		var ok1, ok2 bool
		e.wrapped, ok1 = field()
		e.mac, ok2 = field()
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: truncated", errMalformed)
		}
		for _, prev := range out {
			if prev.gen == e.gen {
				return nil, fmt.Errorf("%w: generation %d twice", errMalformed, e.gen)
			}
		}
		out = append(out, e)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(rest))
	}
	return out, nil
}

// RecordInfo describes a stored pKEK record without the HSM: the current
// generation, and whether a rotation left an older one beside it.
func RecordInfo(rec []byte) (gen uint32, pending bool, err error) {
	es, err := decodeRecord(rec)
	if err != nil {
		return 0, false, err
	}
	return es[0].gen, len(es) > 1, nil
}

// IsRecordKey reports whether a storage key holds a pKEK record, and whose.
func IsRecordKey(key string) (owner string, ok bool) {
	if len(key) <= len(recordPrefix) || key[:len(recordPrefix)] != recordPrefix {
		return "", false
	}
	return key[len(recordPrefix):], true
}

// RecordPrefix is the storage prefix of every pKEK record.
const RecordPrefix = recordPrefix
