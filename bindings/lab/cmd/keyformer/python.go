package main

// The Python side of the commands: `python -m keyformer_eval` scores eval's results and plots
// bench's.

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/keyformer/keyformer/bindings/internal/checkout"
)

// pythonPath returns the Python that scores and plots: $KEYFORMER_PYTHON, else the virtual
// environment `make deps` creates (build/deps/venv), else python3 from PATH.
func pythonPath() string {
	if p := os.Getenv("KEYFORMER_PYTHON"); p != "" {
		return p
	}
	if p := filepath.Join(checkout.Root(), "build", "deps", "venv", "bin", "python"); fileExists(p) {
		return p
	}
	return "python3"
}

// runEvaluate runs `python -m keyformer_eval ARGS...` (bindings/lab/python/keyformer_eval/ and the
// keyformer package it imports, found through PYTHONPATH), its stdout to out and stderr to ours.
func runEvaluate(out io.Writer, args ...string) error {
	py := pythonPath()
	cmd := exec.Command(py, append([]string{"-m", "keyformer_eval"}, args...)...)
	root := checkout.Root()
	path := filepath.Join(root, "bindings", "lab", "python") + string(os.PathListSeparator) + filepath.Join(root, "bindings", "python")
	if old := os.Getenv("PYTHONPATH"); old != "" {
		path += string(os.PathListSeparator) + old
	}
	cmd.Env = append(os.Environ(), "PYTHONPATH="+path)
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s -m keyformer_eval %s: %w (run `make deps` for the scoring environment, or set KEYFORMER_PYTHON)",
			py, args[0], err)
	}
	return nil
}

// plotBench plots bench.json at jsonPath into pngPath with `python -m keyformer_eval
// plot-bench`; a failure is a warning on progress. It returns what it wrote, for bench's last line.
func plotBench(progress io.Writer, jsonPath, pngPath string) string {
	if err := runEvaluate(progress, "plot-bench", jsonPath, pngPath); err != nil {
		fmt.Fprintf(progress, "keyformer bench: warning: no plot: %v\n", err)
		return " (no plot: see the warning on stderr)"
	}
	return " and " + pngPath
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// metricScorers are the keyformer_eval commands that score each metric's results.
var metricScorers = map[string]string{
	metricROUGE: "score", metricFidelity: "fidelity", metricQuestions: "questions",
}
