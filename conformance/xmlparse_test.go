package conformance

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/gemalto/kmip-go/kmip14"
	"github.com/gemalto/kmip-go/ttlv"

	"github.com/kmipd/kmipd/kmipops/tree"
)

const suiteDir = "/work/shared/kmip-testcases/v1.4"

func suiteFiles(t *testing.T) []string {
	t.Helper()
	if _, err := os.Stat(suiteDir); err != nil {
		t.Skipf("OASIS test cases not present at %s: %v", suiteDir, err)
	}
	files, err := CollectFiles([]string{suiteDir})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestParseAllSuiteFiles(t *testing.T) {
	files := suiteFiles(t)
	local, err := CollectFiles([]string{"testdata"})
	if err != nil {
		t.Fatal(err)
	}
	steps := 0
	for _, f := range append(files, local...) {
		tc, err := ParseFile(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if tc.Profile == "" || len(tc.Steps) == 0 {
			t.Errorf("%s: profile %q, %d steps", f, tc.Profile, len(tc.Steps))
		}
		steps += len(tc.Steps)
	}
	t.Logf("%d files, %d request/response pairs", len(files)+len(local), steps)
}

// hasPlaceholder reports whether any leaf under n is symbolic.
func hasPlaceholder(n *Node) bool {
	if n.Placeholder != "" {
		return true
	}
	for _, c := range n.Children {
		if hasPlaceholder(c) {
			return true
		}
	}
	return false
}

// TestRoundTrip encodes every placeholder-free request to TTLV and back.
func TestRoundTrip(t *testing.T) {
	n := 0
	for _, f := range suiteFiles(t) {
		tc, err := ParseFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range tc.Steps {
			if hasPlaceholder(st.Request) {
				continue
			}
			req, err := NewBindings().Resolve(st.Request, testNow)
			if err != nil {
				t.Fatal(err)
			}
			b, err := tree.Encode(req)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			back, err := tree.Decode(b, tree.DefaultLimits)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if !bytes.Equal(tree.MustEncode(back), b) {
				t.Fatalf("%s: round trip differs", f)
			}
			if m := Compare(st.Request, back, NewBindings(), testNow, testNow, 0); m != nil {
				t.Fatalf("%s: decoded request differs from the XML: %v", f, m)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no placeholder-free request found")
	}
}

func TestParseValues(t *testing.T) {
	const doc = `<KMIP><RequestMessage>
  <BatchItem>
    <Operation type="Enumeration" value="Create"/>
    <RequestPayload>
      <Attribute>
        <AttributeName type="TextString" value="Cryptographic Usage Mask"/>
        <AttributeValue type="Integer" value="Encrypt Decrypt"/>
      </Attribute>
      <Attribute>
        <AttributeName type="TextString" value="Cryptographic Algorithm"/>
        <AttributeValue type="Enumeration" value="AES"/>
      </Attribute>
      <TTLV tag="0x540001" type="TextString" value="$literal text"/>
      <UniqueIdentifier type="TextString" value="$UNIQUE_IDENTIFIER_3"/>
      <ActivationDate type="DateTime" value="$NOW-3600"/>
      <OpaqueDataType type="Enumeration" value="0x80000001"/>
    </RequestPayload>
  </BatchItem>
</RequestMessage><ResponseMessage/></KMIP>`
	tc, err := Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	p := tc.Steps[0].Request.Children[0].Children[1]
	mask := p.Children[0].Children[1].Lit
	if mask.Int != int64(kmip14.CryptographicUsageMaskEncrypt|kmip14.CryptographicUsageMaskDecrypt) {
		t.Errorf("mask = %d", mask.Int)
	}
	if alg := p.Children[1].Children[1].Lit; alg.Int != int64(kmip14.CryptographicAlgorithmAES) {
		t.Errorf("alg = %d", alg.Int)
	}
	if c := p.Children[2]; c.Tag != ttlv.Tag(0x540001) || c.Placeholder != "" || c.Lit.Text != "$literal text" {
		t.Errorf("custom tag = %+v", c)
	}
	if p.Children[3].Placeholder != "$UNIQUE_IDENTIFIER_3" || p.Children[4].Placeholder != "$NOW-3600" {
		t.Errorf("placeholders = %q %q", p.Children[3].Placeholder, p.Children[4].Placeholder)
	}
	if p.Children[5].Lit.Int != 0x80000001 {
		t.Errorf("hex enum = %#x", p.Children[5].Lit.Int)
	}
	for name, want := range map[string]string{"CS-BC-M-GCM-1-14": "CS-BC", "SUITEB_128-M-1-14": "SUITEB_128", "AKLC-O-1-14": "AKLC", "KMIPD-M-1-aes": "KMIPD"} {
		if got := ProfileOf(name); got != want {
			t.Errorf("ProfileOf(%s) = %s, want %s", name, got, want)
		}
	}
}

// TestSuitePlaceholdersBindBeforeUse checks the replay semantics cover the
// suite: every placeholder a request uses, other than $NOW, is carried by an
// earlier expected response, either as that placeholder or as a value of the
// same field (see Bindings.Seen), so it is bound by the time it is needed.
func TestSuitePlaceholdersBindBeforeUse(t *testing.T) {
	for _, f := range suiteFiles(t) {
		tc, err := ParseFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names, tags := map[string]bool{}, map[ttlv.Tag]bool{}
		var uses, carries func(n *Node, fn func(*Node))
		uses = func(n *Node, fn func(*Node)) {
			if name, _ := placeholder(n.Placeholder); name != "" && !isTime(name) {
				fn(n)
			}
			for _, c := range n.Children {
				uses(c, fn)
			}
		}
		carries = func(n *Node, fn func(*Node)) {
			if n.Type != ttlv.TypeStructure {
				fn(n)
			}
			for _, c := range n.Children {
				carries(c, fn)
			}
		}
		for i, st := range tc.Steps {
			uses(st.Request, func(n *Node) {
				if name, _ := placeholder(n.Placeholder); !names[name] && !tags[n.Tag] {
					t.Errorf("%s step %d: %s used before any response carries it", tc.Name, i+1, n.Placeholder)
				}
			})
			carries(st.Response, func(n *Node) {
				name, _ := placeholder(n.Placeholder)
				names[name], tags[n.Tag] = true, true
			})
		}
	}
}
