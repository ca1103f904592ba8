//go:build linux || darwin

// Package checkout finds what build/scripts/deps.sh fetched into a keyformer checkout (the llama.cpp
// runtime, the models) and fetches a known model on first use. The tests and the lab's command
// line use it; the library does not.
package checkout

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// LibDir returns where the llama.cpp runtime is expected: $KEYFORMER_LLAMA_LIB_DIR, else
// build/deps/llama/cpu under the repository that holds the working directory (where
// build/scripts/deps.sh puts it).
func LibDir() string {
	if d := os.Getenv("KEYFORMER_LLAMA_LIB_DIR"); d != "" {
		return d
	}
	return filepath.Join(Root(), "build", "deps", "llama", "cpu")
}

// ModelPath returns the default model: $KEYFORMER_MODEL, else
// build/deps/models/smollm2.gguf under the repository that holds the working directory.
func ModelPath() string {
	if p := os.Getenv("KEYFORMER_MODEL"); p != "" {
		return p
	}
	return filepath.Join(Root(), "build", "deps", "models", "smollm2.gguf")
}

// Root returns the nearest directory at or above the working directory holding go.mod (the
// keyformer checkout whose build/deps the defaults point into), or the working directory.
func Root() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return wd
		}
		dir = parent
	}
}

// KnownModel is a model that --model takes by name: build/scripts/deps.sh fetches it into
// build/deps/models/<Name>.gguf (a link to the pinned file).
type KnownModel struct {
	Name        string
	Description string
	// DepsArgs are build/scripts/deps.sh's arguments that fetch it.
	DepsArgs []string
}

// knownModels is the one list of model names on the Go side; build/scripts/deps.sh's model_spec
// lists the same names (TestModelNamesMatchDepsScript checks that the two agree).
var knownModels = []KnownModel{
	{"smollm2", "SmolLM2-135M-Instruct Q4_1, 94 MB, what make deps fetches", nil},
	{"qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1.1 GB", []string{"--model", "qwen2.5-coder-1.5b"}},
	{"qwen2.5-coder-0.5b", "Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 491 MB", []string{"--model", "qwen2.5-coder-0.5b"}},
}

// KnownModels returns the models ResolveModel takes by name.
func KnownModels() []KnownModel { return append([]KnownModel(nil), knownModels...) }

// KnownModelNames returns the names of KnownModels, comma-separated.
func KnownModelNames() string {
	names := make([]string, len(knownModels))
	for i, m := range knownModels {
		names[i] = m.Name
	}
	return strings.Join(names, ", ")
}

// ResolveModel turns a --model value into the path of a GGUF file. An existing file is returned as
// it is. A known name (KnownModels: smollm2, qwen2.5-coder-1.5b, qwen2.5-coder-0.5b) gives
// build/deps/models/<name>.gguf under Root; when that file is missing, ResolveModel first runs
// `bash build/scripts/deps.sh --model NAME` (no argument for smollm2), which fetches and
// verifies it, with the script's output on this process's stderr. A value that looks like a path
// (it holds a path separator or ends in .gguf) but names no file gives the os.Stat error
// (fs.ErrNotExist); anything else is an error that names the known models.
func ResolveModel(value string) (string, error) {
	if st, err := os.Stat(value); err == nil && !st.IsDir() {
		return value, nil
	}
	for _, m := range knownModels {
		if m.Name != value {
			continue
		}
		root := Root()
		path := filepath.Join(root, "build", "deps", "models", m.Name+".gguf")
		if _, err := os.Stat(path); err == nil {
			return path, nil
		}
		script := filepath.Join(root, "build", "scripts", "deps.sh")
		run := strings.Join(append([]string{"build/scripts/deps.sh"}, m.DepsArgs...), " ")
		fmt.Fprintf(os.Stderr, "model %s: %s is missing, running %s\n", m.Name, path, run)
		cmd := exec.Command("bash", append([]string{script}, m.DepsArgs...)...)
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("model %s: %s failed: %w", m.Name, run, err)
		}
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("model %s: build/scripts/deps.sh did not produce it: %w", m.Name, err)
		}
		return path, nil
	}
	if strings.ContainsRune(value, os.PathSeparator) || strings.HasSuffix(value, ".gguf") {
		_, err := os.Stat(value)
		if err == nil { // a directory
			err = &fs.PathError{Op: "open", Path: value, Err: errors.New("is a directory, not a GGUF file")}
		}
		return "", err
	}
	return "", fmt.Errorf("model %q: no such file, and not a known model name (%s)", value, KnownModelNames())
}
