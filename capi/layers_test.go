package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The C ABI is written in layers: include/keyformer.h declares it, the C shim (*.c here) defines
// each function, and the Go exports (//export kfgo_*) do the work. The ctypes table is checked
// against the header by tests/python/test_keyformer_abi.py; this test checks the layers here.

// matches returns the first submatch of re in every file of the glob, sorted, without duplicates.
func matches(t *testing.T, glob string, re *regexp.Regexp) []string {
	t.Helper()
	files, err := filepath.Glob(glob)
	require.NoError(t, err)
	require.NotEmpty(t, files, glob)
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestEveryHeaderFunctionIsDefined: the shim defines exactly the functions the header declares
// (the compiler checks their prototypes against it, the linker that each is defined once).
func TestEveryHeaderFunctionIsDefined(t *testing.T) {
	declared := matches(t, "../include/keyformer.h", regexp.MustCompile(`KEYFORMER_API\s[^;]*?\b(keyformer_\w+)\s*\(`))
	require.Greater(t, len(declared), 20)
	defined := matches(t, "*.c", regexp.MustCompile(`(?m)^[a-z0-9_ *]*?\b(keyformer_\w+)\([^;]*?\)\s*\{`))
	assert.Equal(t, declared, defined, "functions declared in keyformer.h and defined in capi/*.c")
}

// TestEveryGoExportIsCalledFromTheShim: each //export kfgo_* is what some shim function calls,
// and the shim calls no kfgo_* that is not exported.
func TestEveryGoExportIsCalledFromTheShim(t *testing.T) {
	exported := matches(t, "*.go", regexp.MustCompile(`(?m)^//export (kfgo_\w+)$`))
	require.Greater(t, len(exported), 20)
	called := matches(t, "*.c", regexp.MustCompile(`\b(kfgo_\w+)\(`))
	assert.Equal(t, exported, called)
}

// TestEveryStatusIsNamed: each status code of the header has a name in
// keyformer_status_string and a Go constant.
func TestEveryStatusIsNamed(t *testing.T) {
	statuses := matches(t, "../include/keyformer.h", regexp.MustCompile(`(?m)^#define (KEYFORMER_(?:OK|ERR_\w+)) -?\d+`))
	require.Contains(t, statuses, "KEYFORMER_OK")
	require.Greater(t, len(statuses), 5)
	cases := matches(t, "shim.c", regexp.MustCompile(`case (KEYFORMER_\w+):`))
	assert.Equal(t, statuses, cases, "keyformer_status_string's cases")
	goNames := matches(t, "handles.go", regexp.MustCompile(`C\.keyformer_status = C\.(KEYFORMER_\w+)`))
	assert.Equal(t, statuses, goNames, "the status constants of handles.go")
}
