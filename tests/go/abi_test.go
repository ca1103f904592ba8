package abitest

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"
)

// The C structs of include/keyformer.h (API version 1, LP64); the layout is checked below.
type params struct {
	Size           uint32
	Policy         int32
	Granularity    int32
	NLayer         int32
	NHead          int32
	NHeadKV        int32
	BudgetTokens   int32
	BudgetFraction float32
	WindowTokens   int32
	WindowFraction float32
	NSinks         int32
	TauInit        float32
	TauEnd         float32
	NNewTokens     int32
	Noise          int32
	Seed           uint64
}

type attention struct {
	Size       uint32
	NRows      int32
	NHeads     int32
	NCols      int32
	RowStride  int64
	HeadStride int64
	Data       *float32
	Cells      *int32
	Logits     int32
}

type eviction struct{ Cell, Layer, Head int32 }

// Status codes and policies of keyformer.h.
const (
	statusOK               = 0
	statusInvalidArgument  = 1
	statusInvalidHandle    = 2
	statusInvalidAttention = 3
	statusBufferTooSmall   = 4
	statusInvalidState     = 5
	policyH2O              = 2
	apiVersion             = 1
)

// lib holds the library's functions; a context is a uintptr (the C pointer's value).
type lib struct {
	apiVersion    func() int32
	version       func() string
	statusString  func(int32) string
	lastError     func(ctx uintptr) string
	defaultParams func(*params) int32
	contextNew    func(*params, *uintptr) int32
	contextFree   func(ctx uintptr) int32
	addCells      func(ctx uintptr, seq int32, cells, positions *int32, n int32) int32
	observe       func(ctx uintptr, seq, layer int32, a *attention) int32
	plan          func(ctx uintptr, seq int32, out *eviction, capacity int32, nOut *int32) int32
	forget        func(ctx uintptr, seq int32, evs *eviction, n int32) int32
	seqLength     func(ctx uintptr, seq int32, nOut *int32) int32
	stateSize     func(ctx uintptr, seq int32, size *uintptr) int32
	stateSave     func(ctx uintptr, seq int32, buf *byte, capacity uintptr, written *uintptr) int32
	stateLoad     func(ctx uintptr, seq int32, buf *byte, size uintptr) int32
}

var (
	loadOnce sync.Once
	loaded   *lib
	loadErr  string
)

// libraryPath is $KEYFORMER_LIB, or build/lib/libkeyformer.so of this repository.
func libraryPath() string {
	if p := os.Getenv("KEYFORMER_LIB"); p != "" {
		return p
	}
	p, _ := filepath.Abs(filepath.Join("..", "..", "build", "lib", "libkeyformer.so"))
	return p
}

// load opens the library once per process (it can never be unloaded) and resolves every
// function; the test is skipped when the library is not built.
func load(t *testing.T) *lib {
	t.Helper()
	loadOnce.Do(func() {
		path := libraryPath()
		if _, err := os.Stat(path); err != nil {
			loadErr = path + " is not built (make lib, or make ctest): " + err.Error()
			return
		}
		h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
		if err != nil {
			loadErr = "dlopen " + path + ": " + err.Error()
			return
		}
		l := &lib{}
		for name, fn := range map[string]any{
			"keyformer_api_version":    &l.apiVersion,
			"keyformer_version":        &l.version,
			"keyformer_status_string":  &l.statusString,
			"keyformer_last_error":     &l.lastError,
			"keyformer_default_params": &l.defaultParams,
			"keyformer_context_new":    &l.contextNew,
			"keyformer_context_free":   &l.contextFree,
			"keyformer_add_cells":      &l.addCells,
			"keyformer_observe":        &l.observe,
			"keyformer_plan":           &l.plan,
			"keyformer_forget":         &l.forget,
			"keyformer_seq_length":     &l.seqLength,
			"keyformer_state_size":     &l.stateSize,
			"keyformer_state_save":     &l.stateSave,
			"keyformer_state_load":     &l.stateLoad,
		} {
			if _, err := purego.Dlsym(h, name); err != nil {
				loadErr = path + ": " + err.Error()
				return
			}
			purego.RegisterLibFunc(fn, h, name)
		}
		loaded = l
	})
	if loaded == nil {
		if strings.Contains(loadErr, "is not built") {
			t.Skip(loadErr)
		}
		t.Fatal(loadErr)
	}
	return loaded
}

// must fails the test with the library's message unless st is KEYFORMER_OK.
func (l *lib) must(t *testing.T, ctx uintptr, what string, st int32) {
	t.Helper()
	if st != statusOK {
		t.Fatalf("%s: %s: %s", what, l.statusString(st), l.lastError(ctx))
	}
}

func (l *lib) newContext(t *testing.T, edit func(*params)) uintptr {
	t.Helper()
	p := params{Size: uint32(unsafe.Sizeof(params{}))}
	l.must(t, 0, "keyformer_default_params", l.defaultParams(&p))
	edit(&p)
	var ctx uintptr
	l.must(t, 0, "keyformer_context_new", l.contextNew(&p, &ctx))
	t.Cleanup(func() { l.contextFree(ctx) })
	return ctx
}

func (l *lib) observeRows(ctx uintptr, rows, cols int, data []float32, cells []int32) int32 {
	a := attention{Size: uint32(unsafe.Sizeof(attention{})), NRows: int32(rows), NHeads: 1, NCols: int32(cols),
		RowStride: int64(cols), HeadStride: int64(rows * cols), Data: &data[0]}
	if cells != nil {
		a.Cells = &cells[0]
	}
	st := l.observe(ctx, 0, 0, &a)
	runtime.KeepAlive(data)
	runtime.KeepAlive(cells)
	return st
}

func (l *lib) planAll(t *testing.T, ctx uintptr) []eviction {
	t.Helper()
	out := make([]eviction, 16)
	var n int32
	l.must(t, ctx, "keyformer_plan", l.plan(ctx, 0, &out[0], int32(len(out)), &n))
	return out[:n]
}

func TestStructLayout(t *testing.T) {
	// the offsets tests/c/header_c99.c asserts for the C compiler
	if s := unsafe.Sizeof(params{}); s != 72 {
		t.Errorf("sizeof(keyformer_params) = %d", s)
	}
	if o := unsafe.Offsetof(params{}.Seed); o != 64 {
		t.Errorf("offsetof(seed) = %d", o)
	}
	if s, o := unsafe.Sizeof(attention{}), unsafe.Offsetof(attention{}.Logits); s != 56 || o != 48 {
		t.Errorf("sizeof(keyformer_attention) = %d, offsetof(logits) = %d", s, o)
	}
}

// The exact H2O scenario of tests/c/scenario.h (see the hand derivation there): budget 4,
// window 2, 1 layer, 1 head; a 6-token prefill evicts cells 2 and 3, then four generated tokens
// evict cells 4, 5, 2 and 3.
var (
	h2oPrefill = []float32{
		1, 0, 0, 0, 0, 0,
		0.3, 0.7, 0, 0, 0, 0,
		0.1, 0.6, 0.3, 0, 0, 0,
		0.1, 0.5, 0.1, 0.3, 0, 0,
		0.05, 0.4, 0.05, 0.4, 0.1, 0,
		0.05, 0.3, 0.05, 0.4, 0.1, 0.1,
	}
	h2oPrefillEvictions = []int32{2, 3}
	h2oSteps            = []struct {
		cell, pos int32
		cells     []int32
		row       []float32
		evict     int32
	}{
		{2, 6, nil, []float32{0.1, 0.2, 0.3, 0, 0.3, 0.1}, 4},
		{3, 7, []int32{0, 1, -1, 5, 2, 3}, []float32{0.5, 0.1, 0, 0.1, 0.1, 0.2}, 5},
		{4, 8, nil, []float32{0.1, 0.1, 0.1, 0.6, 0.1}, 2},
		{2, 9, nil, []float32{0.6, 0.1, 0.1, 0.1, 0.1}, 3},
	}
)

func h2oParams(p *params) {
	p.Policy = policyH2O
	p.NLayer, p.NHead, p.NHeadKV = 1, 1, 1
	p.BudgetTokens, p.WindowTokens = 4, 2
	p.Noise = 0
}

func TestH2OScenarioThroughTheCABI(t *testing.T) {
	l := load(t)
	if v := l.apiVersion(); v < apiVersion {
		t.Fatalf("library API version %d, older than this test's %d", v, apiVersion)
	}
	ctx := l.newContext(t, h2oParams)
	cells, pos := []int32{0, 1, 2, 3, 4, 5}, []int32{0, 1, 2, 3, 4, 5}
	l.must(t, ctx, "keyformer_add_cells", l.addCells(ctx, 0, &cells[0], &pos[0], 6))
	l.must(t, ctx, "keyformer_observe", l.observeRows(ctx, 6, 6, h2oPrefill, nil))

	var n int32
	small := make([]eviction, 1)
	if st := l.plan(ctx, 0, &small[0], 1, &n); st != statusBufferTooSmall || n != 2 {
		t.Fatalf("plan with capacity 1: status %d, n_out %d; want BUFFER_TOO_SMALL, 2", st, n)
	}
	evs := l.planAll(t, ctx)
	var got []int32
	for _, e := range evs {
		got = append(got, e.Cell)
		if e.Layer != -1 || e.Head != -1 {
			t.Errorf("whole-cell eviction with layer %d head %d", e.Layer, e.Head)
		}
	}
	if !equal(got, h2oPrefillEvictions) {
		t.Fatalf("prefill evictions %v, want %v", got, h2oPrefillEvictions)
	}
	l.must(t, ctx, "keyformer_forget", l.forget(ctx, 0, &evs[0], int32(len(evs))))

	for i, s := range h2oSteps {
		cell, p := s.cell, s.pos
		l.must(t, ctx, "keyformer_add_cells", l.addCells(ctx, 0, &cell, &p, 1))
		l.must(t, ctx, "keyformer_observe", l.observeRows(ctx, 1, len(s.row), s.row, s.cells))
		evs := l.planAll(t, ctx)
		if len(evs) != 1 || evs[0].Cell != s.evict {
			t.Fatalf("step %d: evictions %+v, want cell %d", i+1, evs, s.evict)
		}
		l.must(t, ctx, "keyformer_forget", l.forget(ctx, 0, &evs[0], 1))
		var length int32
		l.must(t, ctx, "keyformer_seq_length", l.seqLength(ctx, 0, &length))
		if length != 4 {
			t.Fatalf("step %d: length %d", i+1, length)
		}
	}
}

func TestMisuseThroughTheCABI(t *testing.T) {
	l := load(t)
	ctx := l.newContext(t, h2oParams)
	cells, pos := []int32{0, 1, 2, 3, 4, 5}, []int32{0, 1, 2, 3, 4, 5}
	l.must(t, ctx, "keyformer_add_cells", l.addCells(ctx, 0, &cells[0], &pos[0], 6))
	l.must(t, ctx, "keyformer_observe", l.observeRows(ctx, 6, 6, h2oPrefill, nil))
	before := l.save(t, ctx)

	expect := func(what string, st, want int32, errCtx uintptr) {
		t.Helper()
		if st != want {
			t.Errorf("%s: status %d (%s), want %d (%s)", what, st, l.statusString(st), want, l.statusString(want))
		}
		if msg := l.lastError(errCtx); msg == "" {
			t.Errorf("%s: empty last error", what)
		}
		if after := l.save(t, ctx); string(after) != string(before) {
			t.Errorf("%s: the state changed", what)
		}
	}
	var n int32
	evs := make([]eviction, 4)
	expect("plan(NULL ctx)", l.plan(0, 0, &evs[0], 4, &n), statusInvalidHandle, 0)
	expect("plan(unknown ctx)", l.plan(0xdead0, 0, &evs[0], 4, &n), statusInvalidHandle, 0)
	expect("plan(n_out NULL)", l.plan(ctx, 0, &evs[0], 4, nil), statusInvalidArgument, ctx)
	expect("plan(seq -1)", l.plan(ctx, -1, &evs[0], 4, &n), statusInvalidArgument, ctx)
	expect("add_cells(n -1)", l.addCells(ctx, 0, &cells[0], &pos[0], -1), statusInvalidArgument, ctx)
	expect("seq_length(seq 65536)", l.seqLength(ctx, 65536, &n), statusInvalidArgument, ctx)
	row := []float32{0.5, 0.5, 0, 0, 0, 0}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), -0.5, 1.5} {
		row[2] = bad
		expect("observe(bad value)", l.observeRows(ctx, 1, 6, row, nil), statusInvalidAttention, ctx)
	}
	expect("observe(NULL)", l.observe(ctx, 0, 0, nil), statusInvalidArgument, ctx)
	expect("observe(layer 1)", func() int32 {
		a := attention{Size: uint32(unsafe.Sizeof(attention{})), NRows: 1, NHeads: 1, NCols: 6, RowStride: 6, Data: &h2oPrefill[0]}
		return l.observe(ctx, 0, 1, &a)
	}(), statusInvalidArgument, ctx)
	garbage := []byte("not a state")
	expect("state_load(garbage)", l.stateLoad(ctx, 0, &garbage[0], uintptr(len(garbage))), statusInvalidState, ctx)
	p := params{}
	var out uintptr
	expect("context_new(size 0)", l.contextNew(&p, &out), statusInvalidArgument, 0)
}

func (l *lib) save(t *testing.T, ctx uintptr) []byte {
	t.Helper()
	var size, written uintptr
	l.must(t, ctx, "keyformer_state_size", l.stateSize(ctx, 0, &size))
	buf := make([]byte, size)
	l.must(t, ctx, "keyformer_state_save", l.stateSave(ctx, 0, &buf[0], size, &written))
	return buf[:written]
}

func equal(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestConcurrentCalls drives several contexts from several goroutines at once (so from several
// threads of this process's runtime into the library's), with garbage collections in both
// runtimes going on: the cross-runtime calls must stay correct under that.
func TestConcurrentCalls(t *testing.T) {
	l := load(t)
	const workers, rounds = 4, 50
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for w := range workers {
		ctx := l.newContext(t, h2oParams)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				seq := int32(r)
				cells, pos := []int32{0, 1, 2, 3, 4, 5}, []int32{0, 1, 2, 3, 4, 5}
				a := attention{Size: uint32(unsafe.Sizeof(attention{})), NRows: 6, NHeads: 1, NCols: 6, RowStride: 6,
					HeadStride: 36, Data: &h2oPrefill[0]}
				evs := make([]eviction, 8)
				var n int32
				if st := l.addCells(ctx, seq, &cells[0], &pos[0], 6); st != statusOK {
					errs <- l.lastError(ctx)
					return
				}
				if st := l.observe(ctx, seq, 0, &a); st != statusOK {
					errs <- l.lastError(ctx)
					return
				}
				if st := l.plan(ctx, seq, &evs[0], 8, &n); st != statusOK || n != 2 || evs[0].Cell != 2 || evs[1].Cell != 3 {
					errs <- "worker " + string(rune('0'+w)) + ": wrong plan: " + l.lastError(ctx)
					return
				}
				runtime.KeepAlive(cells)
				runtime.KeepAlive(pos)
				if r%10 == 0 {
					runtime.GC()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
