package abitest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/keyformer/keyformer/"

// productPackages are what libkeyformer.so is built from (CMake's Go sources): the algorithm, the
// kernels, the C ABI and the llama.cpp engine.
var productPackages = []string{"./capi", "./keyformer/...", "./simd/...", "./bindings/llama/...", "./bindings/adapter/..."}

// TestProductNeverImportsTheLab keeps the product and the lab apart: no package the library is
// built from depends (outside its tests) on bindings/lab or on the checkout's paths, and no module
// of the Python package the wheel ships imports the lab's evaluation package.
func TestProductNeverImportsTheLab(t *testing.T) {
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}}"}, productPackages...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	require.NoError(t, err, "go list -deps")
	deps := strings.Fields(string(out))
	require.Contains(t, deps, module+"capi")
	require.Contains(t, deps, module+"bindings/adapter")
	for _, d := range deps {
		for _, lab := range []string{module + "bindings/lab", module + "bindings/internal/checkout"} {
			assert.False(t, d == lab || strings.HasPrefix(d, lab+"/"), "the product depends on %s", d)
		}
	}

	pyFiles, err := filepath.Glob("../../bindings/python/keyformer/*.py")
	require.NoError(t, err)
	require.NotEmpty(t, pyFiles)
	for _, f := range pyFiles {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.NotContains(t, string(b), "keyformer_eval", "%s imports the lab", f)
	}
	entries, err := os.ReadDir("../../bindings/python/keyformer")
	require.NoError(t, err)
	for _, e := range entries {
		assert.False(t, e.IsDir() && e.Name() != "__pycache__", "bindings/python/keyformer/%s: a sub-package in the wheel (the evaluation package is the lab's, in bindings/lab/python)", e.Name())
	}
}
