package daemon

import (
	"strings"
	"testing"

	"github.com/kmipd/kmipd/kmipops"
	"github.com/kmipd/kmipd/kmipops/credential"
)

// The kmip block's credential and object group keys: defaults, values,
// and positioned refusals.
func TestCredentialAndGroupConfig(t *testing.T) {
	c, err := ParseConfig([]byte(minimal), "kmipd.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if k := c.KMIP; k.Credentials != "bind" || k.CredentialHashIterations != credential.DefaultIterations ||
		k.DefaultObjectGroup != kmipops.DefaultObjectGroup || k.AssignDefaultGroup {
		t.Fatalf("defaults: %+v", k)
	}
	c, err = ParseConfig([]byte(minimal+"kmip {\n  credentials = \"ignore\"\n  credential_hash_iterations = 5000\n  default_object_group = \"\"\n  assign_default_group = true\n}\n"), "kmipd.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if k := c.KMIP; k.Credentials != "ignore" || k.CredentialHashIterations != 5000 || k.DefaultObjectGroup != "" || !k.AssignDefaultGroup {
		t.Fatalf("values: %+v", k)
	}
	for src, want := range map[string]string{
		`credentials = "trust"`:                                     `kmip.credentials must be one of ["bind" "ignore"]`,
		"credential_hash_iterations = 999":                          "kmip.credential_hash_iterations must be between 1000 and 100000000",
		`default_object_group = "` + strings.Repeat("g", 256) + `"`: "kmip.default_object_group is longer than 255 bytes",
		`assign_default_group = "yes"`:                              "kmip.assign_default_group",
	} {
		_, err := ParseConfig([]byte(minimal+"kmip {\n  "+src+"\n}\n"), "kmipd.hcl")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "kmipd.hcl:") {
			t.Errorf("%s: err = %v, want %q", src, err, want)
		}
	}
}
