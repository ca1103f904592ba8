//go:build cgo

package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/keyformer/keyformer/keyformer"
)

// TestHeaderPolicies checks every KEYFORMER_POLICY_<NAME> of include/keyformer.h against
// keyformer.Policy: the value is the policy's, NAME its name, and every policy has one.
func TestHeaderPolicies(t *testing.T) {
	h, err := os.ReadFile("../include/keyformer.h")
	if err != nil {
		t.Fatal(err)
	}
	defines := regexp.MustCompile(`(?m)^#define KEYFORMER_POLICY_(\w+) (\d+)\b`).FindAllStringSubmatch(string(h), -1)
	names := keyformer.PolicyNames()
	if len(defines) != len(names) {
		t.Fatalf("keyformer.h defines %d policies, keyformer has %d (%s)", len(defines), len(names), strings.Join(names, ", "))
	}
	for _, d := range defines {
		v, err := strconv.Atoi(d[2])
		if err != nil {
			t.Fatalf("KEYFORMER_POLICY_%s: %v", d[1], err)
		}
		p, err := keyformer.ParsePolicy(d[1])
		if err != nil {
			t.Errorf("KEYFORMER_POLICY_%s: %v", d[1], err)
			continue
		}
		if int(p) != v || p.String() != strings.ToLower(d[1]) {
			t.Errorf("KEYFORMER_POLICY_%s is %d; keyformer's policy %s is %d", d[1], v, p, int(p))
		}
	}
}
