package abitest

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readPins returns the NAME=value lines of build/scripts/pins.env.
func readPins(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../../build/scripts/pins.env")
	require.NoError(t, err)
	defer f.Close()
	pins := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && !strings.HasPrefix(k, "#") {
			pins[k] = v
		}
	}
	require.NoError(t, sc.Err())
	for _, k := range []string{"LLAMA_CPP", "NODE_LLAMA_CPP", "LLAMA_CPP_PYTHON", "LLAMA_CPP_PYTHON_SHA256", "LLAMA_CPP_PYTHON_LLAMA_CPP"} {
		require.NotEmpty(t, pins[k], "build/scripts/pins.env sets %s", k)
	}
	return pins
}

// TestPinsAreWrittenOnce keeps build/scripts/pins.env the one place the pinned versions are written: the
// files that must repeat one (npm's package.json, the Go constant, the Python package's lower
// bound, the tested-versions line of docs/porting.md) agree with it, and no other tracked file
// (measurement records apart, which say what they ran on) writes any of them.
func TestPinsAreWrittenOnce(t *testing.T) {
	pins := readPins(t)
	assert.Equal(t, pins["LLAMA_CPP"], llama.PinnedLlamaCpp, "bindings/llama's PinnedLlamaCpp")
	for _, name := range []string{"llama", "cuda"} {
		b, err := os.ReadFile("../../build/scripts/npm/" + name + "/package.json")
		require.NoError(t, err)
		var pkg struct{ Dependencies map[string]string }
		require.NoError(t, json.Unmarshal(b, &pkg))
		require.NotEmpty(t, pkg.Dependencies)
		for dep, v := range pkg.Dependencies {
			assert.Equal(t, pins["NODE_LLAMA_CPP"], v, "build/scripts/npm/%s/package.json: %s", name, dep)
		}
	}
	pyproject, err := os.ReadFile("../../bindings/python/pyproject.toml")
	require.NoError(t, err)
	assert.Contains(t, string(pyproject), `"llama-cpp-python>=`+pins["LLAMA_CPP_PYTHON"]+`"`)
	porting, err := os.ReadFile("../../docs/porting.md")
	require.NoError(t, err)
	tested := regexp.MustCompile(`(?s)\*\*Tested llama\.cpp versions\.\*\*.*?(\n\n|$)`).Find(porting)
	require.NotNil(t, tested, "docs/porting.md has its tested-versions paragraph")
	for _, k := range []string{"LLAMA_CPP", "NODE_LLAMA_CPP", "LLAMA_CPP_PYTHON", "LLAMA_CPP_PYTHON_LLAMA_CPP"} {
		assert.Contains(t, string(tested), pins[k], "docs/porting.md's tested versions name %s", k)
	}

	out, err := exec.Command("git", "-C", "../..", "ls-files").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): the search for other copies needs git ls-files", err)
	}
	allowed := regexp.MustCompile(`^(build/scripts/pins\.env|build/scripts/npm/[^/]+/package(-lock)?\.json|bindings/llama/internals\.go|` +
		`bindings/python/pyproject\.toml|docs/porting\.md|docs/RESULTS(-archive)?\.md|docs/results/.*)$`)
	var copies []string
	for _, file := range strings.Fields(string(out)) {
		if allowed.MatchString(file) || !regexp.MustCompile(`\.(go|c|h|py|sh|md|txt|toml|json|cmake|env)$|Makefile$`).MatchString(file) {
			continue
		}
		b, err := os.ReadFile(filepath.Join("../..", file))
		if err != nil {
			continue // listed but deleted in the working tree
		}
		for k, v := range pins {
			if strings.Contains(string(b), v) {
				copies = append(copies, file+" writes "+k+" "+v)
			}
		}
	}
	assert.Empty(t, copies, "pinned versions written outside build/scripts/pins.env: read them from there")
}
