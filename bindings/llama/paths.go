//go:build linux || darwin

package llama

import (
	"os"
	"path/filepath"
)

// DefaultLibDir returns where the llama.cpp runtime is expected: $KEYFORMER_LLAMA_LIB_DIR, else
// build/deps/llama/cpu under the repository that holds the working directory (where
// build/deps.sh puts it).
func DefaultLibDir() string {
	if d := os.Getenv("KEYFORMER_LLAMA_LIB_DIR"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "build", "deps", "llama", "cpu")
}

// DefaultModelPath returns the default model: $KEYFORMER_MODEL, else
// build/deps/models/smollm2.gguf under the repository that holds the working directory.
func DefaultModelPath() string {
	if p := os.Getenv("KEYFORMER_MODEL"); p != "" {
		return p
	}
	return filepath.Join(RepoRoot(), "build", "deps", "models", "smollm2.gguf")
}

// RepoRoot returns the nearest directory at or above the working directory holding go.mod (the
// keyformer checkout whose build/deps the defaults point into), or the working directory.
func RepoRoot() string {
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
