//go:build linux || darwin

package llama

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/keyformer/keyformer/bindings/internal/checkout"
)

// The tests need the pinned runtime and model fetched by build/scripts/deps.sh. They look at
// KEYFORMER_LLAMA_LIB_DIR and KEYFORMER_MODEL, then at build/deps/llama/cpu and
// build/deps/models/smollm2.gguf under the repository root, and skip when neither is there.

var (
	testLibOnce sync.Once
	testLib     *Lib
	testLibErr  error
	testSkip    string

	testModelOnce sync.Once
	testModel     *Model
	testModelErr  error
	testModelSkip string
)

// needLib returns the process's Lib (loaded once) or skips the test.
func needLib(t testing.TB) *Lib {
	t.Helper()
	if testing.Short() {
		t.Skip("runs llama.cpp on the real model: skipped under -short (make check)")
	}
	testLibOnce.Do(func() {
		dir := checkout.LibDir()
		if _, err := os.Stat(filepath.Join(dir, libraryFiles[len(libraryFiles)-1])); err != nil {
			testSkip = fmt.Sprintf("llama.cpp runtime not fetched (%v): run build/scripts/deps.sh or set KEYFORMER_LLAMA_LIB_DIR", err)
			return
		}
		if testing.Verbose() {
			SetLogger(StderrLogger(LogWarn))
		} else {
			SetLogger(StderrLogger(LogError))
		}
		testLib, testLibErr = Load(dir)
	})
	if testSkip != "" {
		t.Skip(testSkip)
	}
	if testLibErr != nil {
		t.Fatalf("Load: %v", testLibErr)
	}
	return testLib
}

// needModel returns SmolLM2 (loaded once) or skips the test.
func needModel(t testing.TB) *Model {
	t.Helper()
	l := needLib(t)
	testModelOnce.Do(func() {
		p := checkout.ModelPath()
		if _, err := os.Stat(p); err != nil {
			testModelSkip = fmt.Sprintf("model not fetched (%v): run build/scripts/deps.sh or set KEYFORMER_MODEL", err)
			return
		}
		testModel, testModelErr = l.LoadModel(p, nil)
	})
	if testModelSkip != "" {
		t.Skip(testModelSkip)
	}
	if testModelErr != nil {
		t.Fatalf("LoadModel: %v", testModelErr)
	}
	return testModel
}

func testThreads() int32 { return int32(min(runtime.NumCPU(), 8)) }

// chatPrompt tokenizes the chat-templated question.
func chatPrompt(t testing.TB, m *Model, question string) []int32 {
	t.Helper()
	text, err := m.ApplyChatTemplate("", []ChatMessage{{Role: "user", Content: question}}, true)
	if err != nil {
		t.Fatal(err)
	}
	toks, err := m.Tokenize(text, true, true)
	if err != nil {
		t.Fatal(err)
	}
	return toks
}

func newTestContext(t testing.TB, m *Model, o ContextOptions) *Context {
	t.Helper()
	if o.NThreads == 0 {
		o.NThreads = testThreads()
	}
	c, err := m.NewContext(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Free)
	return c
}
