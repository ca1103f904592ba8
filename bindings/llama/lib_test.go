//go:build linux || darwin

package llama

import (
	"errors"
	"strings"
	"testing"

	"github.com/ebitengine/purego"
)

func TestCheckLayout(t *testing.T) {
	l := needLib(t)
	if err := l.CheckLayout(); err != nil {
		t.Fatal(err)
	}
	if l.Has("llama_version") {
		t.Logf("llama_version: %s", l.Version())
	}
	if m := l.MissingOptional(); len(m) > 0 {
		t.Logf("optional symbols missing: %v", m)
	}
}

func TestMissingSymbolsAggregated(t *testing.T) {
	l := needLib(t)
	// A handle that has ggml but not llama: every llama_* symbol is reported in one error.
	h, err := purego.Dlopen(l.Dir()+"/"+libraryFiles[0], purego.RTLD_NOW|rtldNoload)
	if err != nil {
		t.Fatal(err)
	}
	_, err = FromHandles(h)
	var ms *MissingSymbolsError
	if !errors.As(err, &ms) {
		t.Fatalf("FromHandles(libggml-base) = %v, want a MissingSymbolsError", err)
	}
	if len(ms.Symbols) < 20 || !strings.Contains(err.Error(), "llama_decode") || !strings.Contains(err.Error(), "llama_backend_init") {
		t.Fatalf("aggregated error lists %d symbols: %v", len(ms.Symbols), err)
	}
	for _, s := range ms.Symbols {
		if strings.HasPrefix(s, "ggml_") && s != "ggml_backend_load_all_from_path" && s != "ggml_backend_dev_count" {
			t.Errorf("%s reported missing, but libggml-base has it", s)
		}
	}
}

func TestFromProcess(t *testing.T) {
	l := needLib(t)
	p, err := FromProcess() // Load used RTLD_GLOBAL: RTLD_DEFAULT finds everything
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckLayout(); err != nil {
		t.Fatal(err)
	}
	if p.Symbol("llama_decode") != l.Symbol("llama_decode") {
		t.Fatal("FromProcess resolved a different llama_decode")
	}

	// The RTLD_LOCAL fallback: re-open the loaded copies by path with RTLD_NOLOAD.
	paths := loadedRuntimePaths()
	if len(paths) == 0 || !strings.Contains(paths[0], "libllama") {
		t.Fatalf("loadedRuntimePaths = %v, want libllama first", paths)
	}
	var hs []uintptr
	for _, path := range paths {
		h, err := purego.Dlopen(path, purego.RTLD_NOW|rtldNoload)
		if err != nil {
			t.Fatalf("dlopen(%s, RTLD_NOLOAD): %v", path, err)
		}
		hs = append(hs, h)
	}
	q, err := FromHandles(hs...)
	if err != nil {
		t.Fatal(err)
	}
	if q.Symbol("llama_memory_seq_rm") != l.Symbol("llama_memory_seq_rm") {
		t.Fatal("NOLOAD handles resolved a different llama_memory_seq_rm")
	}
}

func TestThreadpool(t *testing.T) {
	l := needLib(t)
	m := needModel(t)
	tp, err := l.NewThreadpool(int(testThreads()), -1)
	if err != nil {
		t.Skip(err)
	}
	defer l.FreeThreadpool(tp)
	c := newTestContext(t, m, ContextOptions{NCtx: 256})
	if err := c.AttachThreadpool(tp, 0); err != nil {
		t.Fatal(err)
	}
	defer c.DetachThreadpool()
	toks := chatPrompt(t, m, "Hi")
	if err := c.Decode(0, toks, 0); err != nil {
		t.Fatal(err)
	}
}
