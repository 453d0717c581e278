package conformance

import (
	"strings"
	"testing"
)

// A Create Split Key part's Key Material compares by its length; every
// other field of the part, a registered part's material and the key a Join
// rebuilds stay exact.
func TestSplitKeyParts(t *testing.T) {
	const uid1 = `<UniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_1"/>`
	part := func(uid, threshold, prime, km string) string {
		p := ""
		if prime != "" {
			p = `<PrimeFieldSize type="BigInteger" value="` + prime + `"/>`
		}
		return opResponse("Get", `<ObjectType type="Enumeration" value="SplitKey"/>`+uid+`<SplitKey>
  <SplitKeyParts type="Integer" value="4"/><KeyPartIdentifier type="Integer" value="1"/>
  <SplitKeyThreshold type="Integer" value="`+threshold+`"/><SplitKeyMethod type="Enumeration" value="PolynomialSharingPrimeField"/>`+p+`
  <KeyBlock><KeyFormatType type="Enumeration" value="Raw"/><KeyValue><KeyMaterial type="ByteString" value="`+km+`"/></KeyValue>
  <CryptographicAlgorithm type="Enumeration" value="AES"/><CryptographicLength type="Integer" value="128"/></KeyBlock></SplitKey>`)
	}
	const rec, other, short = "66c46a7754f94de420c7b1a7fff5ec56", "1a444af66efac24220fc58959113ddcb", "1a444af66efac24220fc58959113dd"
	split := opResponse("CreateSplitKey", uid1+`<UniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_2"/>`)
	registered := opResponse("Register", uid1)
	joined := opResponse("JoinSplitKey", uid1)
	key := func(uid, km string) string {
		return opResponse("Get", `<ObjectType type="Enumeration" value="SymmetricKey"/>`+uid+`<SymmetricKey><KeyBlock>
  <KeyFormatType type="Enumeration" value="Raw"/><KeyValue><KeyMaterial type="ByteString" value="`+km+`"/></KeyValue></KeyBlock></SymmetricKey>`)
	}
	for _, c := range []struct {
		name, first, exp, got string
		ok                    bool
	}{
		{"random part", split, part(uid1, "2", "", rec), part(uidLit("k1"), "2", "", other), true},
		{"random part, prime field", split, part(uid1, "2", "0x0101", rec), part(uidLit("k1"), "2", "0x0101", other), true},
		{"part of another length", split, part(uid1, "2", "", rec), part(uidLit("k1"), "2", "", short), false},
		{"part with another threshold", split, part(uid1, "2", "", rec), part(uidLit("k1"), "3", "", other), false},
		{"part with another prime field", split, part(uid1, "2", "0x0101", rec), part(uidLit("k1"), "2", "0x0103", rec), false},
		{"registered part", registered, part(uid1, "2", "", rec), part(uidLit("k1"), "2", "", other), false},
		{"joined key", joined, key(uid1, rec), key(uidLit("k1"), other), false},
		{"symmetric key under a part's identifier", split, key(uid1, rec), key(uidLit("k1"), other), false},
	} {
		b := NewBindings()
		first := strings.NewReplacer("$UNIQUE_IDENTIFIER_1", "k1", "$UNIQUE_IDENTIFIER_2", "k2").Replace(c.first)
		if m := compare(t, c.first, first, b); m != nil {
			t.Fatal(m)
		}
		m := compare(t, c.exp, c.got, b)
		if (m == nil) != c.ok {
			t.Errorf("%s: mismatch %v", c.name, m)
		}
	}
}
