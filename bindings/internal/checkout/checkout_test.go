//go:build linux || darwin

package checkout

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// These tests need no llama.cpp runtime and fetch nothing.

// depsScriptModelNames returns the labels of the case statement in build/scripts/deps.sh's model_spec.
func depsScriptModelNames(t *testing.T, script string) []string {
	t.Helper()
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(b), "\nmodel_spec() {\n")
	if !ok {
		t.Fatal("build/scripts/deps.sh has no model_spec() function")
	}
	body, _, _ = strings.Cut(body, "\n}\n")
	label := regexp.MustCompile(`(?m)^\s*([a-z0-9][a-z0-9.|-]*)\)`)
	var names []string
	for _, m := range label.FindAllStringSubmatch(body, -1) {
		names = append(names, strings.Split(m[1], "|")...)
	}
	if len(names) == 0 {
		t.Fatal("build/scripts/deps.sh's model_spec has no case labels")
	}
	return names
}

// TestModelNamesMatchDepsScript fails when knownModels and build/scripts/deps.sh's list drift apart: the
// script's model_spec has the same names, its option parser takes every Go name (and refuses a
// made-up one), and its --help mentions every name.
func TestModelNamesMatchDepsScript(t *testing.T) {
	script := filepath.Join(Root(), "build", "scripts", "deps.sh")
	var goNames []string
	for _, m := range KnownModels() {
		goNames = append(goNames, m.Name)
	}
	shNames := depsScriptModelNames(t, script)
	slices.Sort(goNames)
	slices.Sort(shNames)
	if !slices.Equal(goNames, shNames) {
		t.Errorf("knownModels in checkout.go has %v, build/scripts/deps.sh's model_spec has %v", goNames, shNames)
	}

	help, err := exec.Command("bash", script, "--help").Output()
	if err != nil {
		t.Fatalf("build/scripts/deps.sh --help: %v", err)
	}
	// --print touches nothing and fetches nothing; the names are checked before it runs
	run := func(args ...string) string {
		var stderr bytes.Buffer
		cmd := exec.Command("bash", append([]string{script, "--print"}, args...)...)
		cmd.Stderr = &stderr
		_ = cmd.Run() // fails where nothing was fetched yet; only the name check matters here
		return stderr.String()
	}
	for _, m := range KnownModels() {
		if !bytes.Contains(help, []byte(m.Name)) {
			t.Errorf("build/scripts/deps.sh --help does not mention %s", m.Name)
		}
		for _, args := range [][]string{{"--model", m.Name}, {"--model=" + m.Name}} {
			if out := run(args...); strings.Contains(out, "unknown model") {
				t.Errorf("build/scripts/deps.sh %s: %s", strings.Join(args, " "), out)
			}
		}
		if m.Name != "smollm2" && !slices.Equal(m.DepsArgs, []string{"--model", m.Name}) {
			t.Errorf("%s: DepsArgs %q", m.Name, m.DepsArgs)
		}
	}
	out := run("--model", "no-such-model")
	if !strings.Contains(out, "unknown model 'no-such-model'") {
		t.Errorf("build/scripts/deps.sh --model no-such-model said %q", out)
	}
	for _, name := range goNames {
		if !strings.Contains(out, name) {
			t.Errorf("build/scripts/deps.sh's error for an unknown model does not list %s: %q", name, out)
		}
	}
}

func TestResolveModel(t *testing.T) {
	// a fake checkout whose build/scripts/deps.sh records its arguments and creates the model's link
	root := t.TempDir()
	t.Chdir(root)
	if err := os.WriteFile("go.mod", []byte("module fake\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"build/deps/models", "build/scripts"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fake := `cd "$(dirname "$0")/../deps/models"
echo "fake deps.sh $*" >&2
printf '%s\n' "$*" >>args
if [[ $1 == --model ]]; then touch "$2.gguf"; else touch smollm2.gguf; fi
`
	if err := os.WriteFile("build/scripts/deps.sh", []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	models := filepath.Join(root, "build", "deps", "models")
	args := func() string { b, _ := os.ReadFile(filepath.Join(models, "args")); return string(b) }

	// an existing file, as it is
	if err := os.WriteFile("my.gguf", []byte("GGUF"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := ResolveModel("my.gguf"); err != nil || got != "my.gguf" {
		t.Errorf(`ResolveModel("my.gguf") = %q, %v`, got, err)
	}

	// a name whose file is missing runs build/scripts/deps.sh once; then it is there
	for _, tc := range []struct{ name, args string }{
		{"qwen2.5-coder-1.5b", "--model qwen2.5-coder-1.5b\n"},
		{"qwen2.5-coder-0.5b", "--model qwen2.5-coder-0.5b\n"},
		{"smollm2", "\n"},
	} {
		_ = os.Remove(filepath.Join(models, "args"))
		want := filepath.Join(models, tc.name+".gguf")
		for range 2 {
			got, err := ResolveModel(tc.name)
			if err != nil || got != want {
				t.Errorf("ResolveModel(%q) = %q, %v; want %q", tc.name, got, err, want)
			}
		}
		if got := args(); got != tc.args {
			t.Errorf("ResolveModel(%q) ran build/scripts/deps.sh with %q, want %q (once)", tc.name, got, tc.args)
		}
	}

	// a path that is not there: the stat error, nothing run
	_ = os.Remove(filepath.Join(models, "args"))
	if _, err := ResolveModel("missing/model.gguf"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf(`ResolveModel("missing/model.gguf"): %v, want fs.ErrNotExist`, err)
	}
	if _, err := ResolveModel(models); err == nil {
		t.Error("ResolveModel(a directory): no error")
	}
	// an unknown name: an error naming the known models
	_, err := ResolveModel("llama-70b")
	if err == nil || !strings.Contains(err.Error(), "llama-70b") {
		t.Fatalf(`ResolveModel("llama-70b"): %v`, err)
	}
	for _, m := range KnownModels() {
		if !strings.Contains(err.Error(), m.Name) {
			t.Errorf("the error %q does not name %s", err, m.Name)
		}
	}
	if got := args(); got != "" {
		t.Errorf("build/scripts/deps.sh ran for a path or an unknown name (%q)", got)
	}

	// a failing build/scripts/deps.sh is an error
	if err := os.WriteFile("build/scripts/deps.sh", []byte("echo 'keyformer deps: error: no network' >&2; exit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(models, "qwen2.5-coder-1.5b.gguf"))
	if _, err := ResolveModel("qwen2.5-coder-1.5b"); err == nil || !strings.Contains(err.Error(), "build/scripts/deps.sh --model qwen2.5-coder-1.5b failed") {
		t.Errorf("ResolveModel with a failing build/scripts/deps.sh: %v", err)
	}
}
