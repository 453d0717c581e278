package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// A cluster of kmipd replicas is benchmarked as one server: -addr and
// -metrics take comma-separated lists, worker i connects to the
// (i mod n)-th address, and each metric is summed over the replicas.

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// scrapeAll scrapes every URL in the comma-separated urls and sums each
// metric: HSM calls add up across replicas, and the sum of their session
// high-water marks bounds the cluster's. The HSM series must be there; the
// Badger write path's are 0 on a PostgreSQL replica.
func scrapeAll(ctx context.Context, urls string, want ...string) (map[string]float64, error) {
	sum := map[string]float64{}
	for _, u := range splitList(urls) {
		m, err := scrapeFound(ctx, u, want...)
		if err != nil {
			return nil, err
		}
		for _, name := range []string{metricCalls, metricPeak} {
			if _, ok := m[name]; !ok && slices.Contains(want, name) {
				return nil, fmt.Errorf("%s: no %s series (is this kmipd's /metrics?)", u, name)
			}
		}
		for k, v := range m {
			sum[k] += v
		}
	}
	return sum, nil
}

// firstAddr is the first of a comma-separated -addr list ("" if none).
func firstAddr(s string) string {
	if l := splitList(s); len(l) > 0 {
		return l[0]
	}
	return ""
}
