package daemon

import (
	"fmt"
	"math"
	"math/big"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/kmipd/kmipd/certs"
)

// decoder turns attributes into typed values, collecting one diagnostic per
// bad key. Each method leaves *dst (the default) alone when the key is absent
// and reports whether it stored a value.
type decoder struct {
	base  string
	diags hcl.Diagnostics
}

func (d *decoder) errf(rng hcl.Range, summary, detail string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(detail, args...), Subject: rng.Ptr(),
	})
}

// value evaluates a as a constant of type ty (with HCL's usual conversions,
// so 1048576 and "1048576" are both fine for a size).
func (d *decoder) value(a *hcl.Attribute, key string, ty cty.Type) (cty.Value, bool) {
	if a == nil {
		return cty.NilVal, false
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		d.errf(a.Range, key+" must be a constant value", "%s", firstError(diags))
		return cty.NilVal, false
	}
	if v.IsNull() || !v.IsWhollyKnown() {
		d.errf(a.Range, key+" must be set to a value", "")
		return cty.NilVal, false
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		d.errf(a.Range, fmt.Sprintf("%s must be a %s", key, ty.FriendlyName()), "")
		return cty.NilVal, false
	}
	return cv, true
}

func (d *decoder) str(a *hcl.Attribute, key string, dst *string, check func(string) error) bool {
	v, ok := d.value(a, key, cty.String)
	if !ok {
		return false
	}
	s := v.AsString()
	if err := check(s); err != nil {
		d.errf(a.Range, key+" "+err.Error(), "")
		return false
	}
	*dst = s
	return true
}

func (d *decoder) resolve(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(d.base, p)
}

func (d *decoder) path(a *hcl.Attribute, key string, dst *string) {
	if d.str(a, key, dst, nonEmpty) {
		*dst = d.resolve(*dst)
	}
}

func (d *decoder) duration(a *hcl.Attribute, key string, dst *time.Duration) {
	v, ok := d.value(a, key, cty.String)
	if !ok {
		return
	}
	t, err := time.ParseDuration(v.AsString())
	switch {
	case err != nil:
		d.errf(a.Range, key+" does not parse as a duration", "%v (use e.g. \"30s\", \"2m\")", err)
	case t <= 0:
		d.errf(a.Range, key+" must be a positive duration", "")
	default:
		*dst = t
	}
}

func (d *decoder) integer(a *hcl.Attribute, key string, dst *int, lo, hi int64) bool {
	v, ok := d.value(a, key, cty.Number)
	if !ok {
		return false
	}
	bf := v.AsBigFloat()
	n, acc := bf.Int64()
	switch {
	case !bf.IsInt():
		d.errf(a.Range, key+" must be a whole number", "")
	case acc != big.Exact || n < lo || n > hi:
		d.errf(a.Range, fmt.Sprintf("%s must be between %d and %d", key, lo, hi), "")
	default:
		*dst = int(n)
		return true
	}
	return false
}

func (d *decoder) boolean(a *hcl.Attribute, key string, dst *bool) {
	if v, ok := d.value(a, key, cty.Bool); ok {
		*dst = v.True()
	}
}

// extKeyUsage decodes a list of extended key usage names (certs.ParseExtKeyUsage),
// each at most once; an empty list stores nil (none).
func (d *decoder) extKeyUsage(a *hcl.Attribute, key string, dst *[]string) {
	v, ok := d.value(a, key, cty.List(cty.String))
	if !ok {
		return
	}
	var out []string
	seen := map[string]bool{}
	for _, e := range v.AsValueSlice() {
		if e.IsNull() {
			d.errf(a.Range, key+" must not hold null", "")
			return
		}
		n := e.AsString()
		if _, known := certs.ParseExtKeyUsage(n); !known {
			d.errf(a.Range, fmt.Sprintf("%s has an unknown extended key usage %q", key, n), "use %s", strings.Join(certs.ExtKeyUsageNames(), ", "))
			return
		}
		if seen[n] {
			d.errf(a.Range, fmt.Sprintf("%s names %q twice", key, n), "")
			return
		}
		seen[n] = true
		out = append(out, n)
	}
	*dst = out
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}

// size decodes a byte count between min (0 or 1) and max.
func (d *decoder) size(a *hcl.Attribute, key string, dst *int64, min, max int64) {
	v, ok := d.value(a, key, cty.String) // a number converts to its decimal string
	if !ok {
		return
	}
	n, err := parseSize(v.AsString())
	switch {
	case err != nil:
		d.errf(a.Range, key+" does not parse as a size", "%v (use bytes, or e.g. \"512KiB\", \"1MiB\")", err)
	case n < min || n > max:
		lo := "0"
		if min > 0 {
			lo = "1 byte"
		}
		d.errf(a.Range, fmt.Sprintf("%s must be between %s and %s", key, lo, formatSize(max)), "")
	default:
		*dst = n
	}
}

func parseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number of bytes, KiB, MiB or GiB", s)
	}
	if n > math.MaxInt64/mult || n < 0 {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return n * mult, nil
}

func nonEmpty(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	return nil
}

func oneOf(allowed ...string) func(string) error {
	return func(s string) error {
		for _, a := range allowed {
			if s == a {
				return nil
			}
		}
		return fmt.Errorf("must be one of %q, not %q", allowed, s)
	}
}

func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("must be host:port: %v", err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
		return fmt.Errorf("has an invalid port %q", port)
	}
	return nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkPIN validates the form only; its messages never quote the value.
func checkPIN(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("must not be empty")
	case strings.HasPrefix(s, "env:") && !envName.MatchString(s[len("env:"):]):
		return fmt.Errorf("env: needs an environment variable name")
	case s == "file:":
		return fmt.Errorf("file: needs a path")
	}
	return nil
}
