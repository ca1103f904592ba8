package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/keyformer/keyformer/keyformer"
)

// parseFractions reads flag --name: a comma-separated list of distinct fractions in (0, 1], each
// written "0.5" or "50%".
func parseFractions(list, name string) ([]float64, error) {
	var out []float64
	for s := range strings.SplitSeq(list, ",") {
		s = strings.TrimSpace(s)
		num, pct := strings.CutSuffix(s, "%")
		v, err := strconv.ParseFloat(num, 64)
		if pct {
			v /= 100
		}
		if err != nil || !(v > 0 && v <= 1) {
			return nil, fmt.Errorf("--%s %q: %q is not a fraction in (0, 1]", name, list, s)
		}
		if slices.Contains(out, v) {
			return nil, fmt.Errorf("--%s %q: %g twice", name, list, v)
		}
		out = append(out, v)
	}
	return out, nil
}

// parseCounts reads flag --name: a comma-separated list of distinct whole numbers of at least lo.
func parseCounts(list, name string, lo int) ([]int, error) {
	var out []int
	for s := range strings.SplitSeq(list, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v < lo {
			return nil, fmt.Errorf("--%s %q: %q is not a whole number of at least %d", name, list, s, lo)
		}
		if slices.Contains(out, v) {
			return nil, fmt.Errorf("--%s %q: %d twice", name, list, v)
		}
		out = append(out, v)
	}
	return out, nil
}

// evictingPolicies returns the names of the policies that evict (every one but full), in
// keyformer's order.
func evictingPolicies() []string {
	return slices.DeleteFunc(keyformer.PolicyNames(), func(n string) bool { return n == keyformer.PolicyFull.String() })
}
