//go:build linux || darwin

package llama

import (
	"errors"
	"slices"
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
	// A handle that has ggml but not llama: every llama_* symbol attach needs is reported in one
	// error, and none of the Go programs' symbols (llama_decode ...), which attach does not need.
	h, err := purego.Dlopen(l.Dir()+"/"+libraryFiles[0], purego.RTLD_NOW|rtldNoload)
	if err != nil {
		t.Fatal(err)
	}
	_, err = FromHandles(h)
	var ms *MissingSymbolsError
	if !errors.As(err, &ms) {
		t.Fatalf("FromHandles(libggml-base) = %v, want a MissingSymbolsError", err)
	}
	want := []string{"llama_n_ctx", "llama_n_ctx_seq", "llama_get_memory", "llama_memory_seq_rm", "llama_memory_seq_add", "llama_memory_seq_pos_min",
		"llama_memory_seq_pos_max", "llama_memory_can_shift"}
	if !slices.Equal(ms.Symbols, want) {
		t.Fatalf("FromHandles(libggml-base) missing %v, want %v", ms.Symbols, want)
	}
	if !strings.Contains(err.Error(), "llama_memory_seq_rm") || !strings.Contains(err.Error(), "the given handles") {
		t.Fatalf("error %q names neither the symbol nor where it was looked for", err)
	}
}

// hiding returns a lookup in l's handles that does not find the given symbols.
func hiding(l *Lib, names ...string) func(string) uintptr {
	return func(name string) uintptr {
		if slices.Contains(names, name) {
			return 0
		}
		return l.lookup(name)
	}
}

// Binding for attach requires only what the adapter calls: a runtime without a symbol of the Go
// programs still binds, and one without a symbol the adapter or the bind-time checks call does
// not, with an error naming it. Load requires everything.
func TestAttachRequiresOnlyAttachSymbols(t *testing.T) {
	l := needLib(t)
	a := &Lib{handles: l.handles}
	if err := a.bindFuncs(hiding(l, "llama_tokenize", "llama_decode"), "test", true); err != nil {
		t.Fatalf("attach binding without llama_tokenize and llama_decode: %v", err)
	}
	if a.Has("llama_tokenize") || a.Tokenize != nil || !slices.Contains(a.MissingOptional(), "llama_decode") {
		t.Fatalf("hidden symbols bound: Has %v, missing %v", a.Has("llama_tokenize"), a.MissingOptional())
	}
	if a.Ops != l.Ops {
		t.Fatalf("attach binding resolved ops %+v, Load %+v", a.Ops, l.Ops)
	}
	err := (&Lib{handles: l.handles}).bindFuncs(hiding(l, "llama_tokenize"), "test", false)
	var ms *MissingSymbolsError
	if !errors.As(err, &ms) || !slices.Equal(ms.Symbols, []string{"llama_tokenize"}) {
		t.Fatalf("Load binding without llama_tokenize: %v", err)
	}
	for _, sym := range []string{"llama_memory_seq_rm", "ggml_op_name", "ggml_backend_tensor_get", "ggml_get_name"} {
		err := (&Lib{handles: l.handles}).bindFuncs(hiding(l, sym), "test", true)
		if !errors.As(err, &ms) || !slices.Equal(ms.Symbols, []string{sym}) || !strings.Contains(err.Error(), sym) {
			t.Errorf("attach binding without %s: %v", sym, err)
		}
	}
}

// The ops are found by name, and an op the runtime lacks is named in the error; the walk then goes
// to the end of ggml's op table, where ggml_op_name of the pinned build returns NULL.
func TestOpsResolvedByName(t *testing.T) {
	l := needLib(t)
	for _, o := range []struct {
		op   GGMLOp
		name string
	}{{l.Ops.Rope, "ROPE"}, {l.Ops.SetRows, "SET_ROWS"}, {l.Ops.Reshape, "RESHAPE"}, {l.Ops.View, "VIEW"}} {
		if got := l.OpName(o.op); got != o.name {
			t.Errorf("ops %+v: %d is %q, want %q", l.Ops, o.op, got, o.name)
		}
	}
	renamed := []byte("ROPE_RENAMED\x00")
	_, err := resolveOps(func(op int32) *byte {
		if op == int32(l.Ops.Rope) {
			return &renamed[0]
		}
		return l.GGMLOpName(op)
	})
	if err == nil || !strings.Contains(err.Error(), "ROPE not found") || strings.Contains(err.Error(), "SET_ROWS") {
		t.Fatalf("resolveOps without ROPE: %v", err)
	}
	t.Log(err)
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
