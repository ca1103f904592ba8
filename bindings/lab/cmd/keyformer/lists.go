package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/keyformer/keyformer/bindings/lab/generate"
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

// defaultPolicy returns the name of the library's default policy.
func defaultPolicy() string { return keyformer.DefaultConfig(keyformer.Shape{}).Policy.String() }

// evictingPolicies returns the names of the policies that evict (every one but full), in
// keyformer's order.
func evictingPolicies() []string {
	return slices.DeleteFunc(keyformer.PolicyNames(), func(n string) bool { return n == keyformer.PolicyFull.String() })
}

// policySpec is a policy as the command line names it, with its ranking options and the cache
// type under it.
type policySpec struct {
	policy  keyformer.Policy
	ranking keyformer.Ranking
	kv      generate.KVCache // llama.cpp's cache type (f16 but for a policy that reads no attention)
	repeat  bool             // score by a reconstruction pass (generate.Options.Repeat)
	oracle  bool             // score by the question and the full cache's answer (generate.Options.Probe)
}

// parsePolicy reads a policy with its options, written
// name[+mean][+span<N>][+sinks][+repeat|+oracle][+kv-<type>] (e.g. "h2o+mean+span3",
// "peak+repeat", "keydiff+kv-q8_0"): keyformer.Ranking's MeanAttention, Span and KeepSinks, on a
// scoring policy; for a policy that reads attention, a reconstruction pass over each prompt chunk
// (generate.Options.Repeat) or the oracle (the document read whole, scored by the question and the
// full cache's answer, generate.Options.Probe, then evicted once); and a quantized cache (flash
// attention on) under a policy that reads no attention.
func parsePolicy(spec string) (policySpec, error) {
	name, opts, _ := strings.Cut(spec, "+")
	p, err := keyformer.ParsePolicy(name)
	out := policySpec{policy: p}
	if err != nil || opts == "" {
		return out, err
	}
	for opt := range strings.SplitSeq(opts, "+") {
		span, isSpan := strings.CutPrefix(opt, "span")
		kv, isKV := parsePeer(opt)
		switch {
		case isKV:
			if p.ReadsAttention() {
				return out, fmt.Errorf("policy %q: %s reads attention, which a %s cache (flash attention on) does not show", spec, p, kv)
			}
			out.kv = kv
			continue
		case !p.ReadsAttention() && !p.ReadsKeys():
			return out, fmt.Errorf("policy %q: %s ranks no scores, it takes no %q", spec, p, opt)
		case opt == "mean" && !p.ReadsAttention():
			return out, fmt.Errorf("policy %q: %s reads no attention to average", spec, p)
		case opt == "mean":
			out.ranking.MeanAttention = true
		case (opt == "repeat" || opt == "oracle") && !p.ReadsAttention():
			return out, fmt.Errorf("policy %q: %s reads no attention to score a pass by", spec, p)
		case opt == "repeat":
			out.repeat = true
		case opt == "oracle":
			out.oracle = true
		case opt == "sinks":
			out.ranking.KeepSinks = true
		case isSpan:
			n, err := strconv.Atoi(span)
			if err != nil || n < 1 {
				return out, fmt.Errorf("policy %q: %q: want span<N>, N >= 1", spec, opt)
			}
			out.ranking.Span = n
		default:
			return out, fmt.Errorf("policy %q: unknown option %q (want mean, span<N>, sinks, repeat, oracle, %s)", spec, opt, strings.Join(peerNames(), ", "))
		}
	}
	if out.repeat && out.oracle {
		return out, fmt.Errorf("policy %q: +repeat and +oracle are two ways of scoring: give one", spec)
	}
	return out, nil
}
