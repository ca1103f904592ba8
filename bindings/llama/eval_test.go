//go:build linux || darwin

package llama

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// attnProbe is the kind of observer the Keyformer adapter needs: it asks for every
// kq_soft_max-<layer> (attention probabilities), and reads the cells and positions of the
// ubatch's new tokens from the graph inputs during the asks, answering false to them.
type attnProbe struct {
	l       *Lib
	nLayer  int
	asks    int
	answers int // ask = false calls
	layers  map[int][4]int64
	rowErr  float64 // max |row sum - 1|
	nonF32  []string
	cells   []int64
	pos     []int32
	setRows string // op names seen, for the report
	rope    string
	errs    []string
}

func (p *attnProbe) fn(t Tensor, ask bool) bool {
	if !ask {
		p.answers++
		layer, ok := t.NameLayer(NodeAttention)
		if !ok {
			p.errs = append(p.errs, "ask=false for unexpected "+t.Name())
			return true
		}
		p.layers[layer] = t.Shape()
		probs := p.l.F32View(t)
		if probs == nil {
			p.nonF32 = append(p.nonF32, t.Name())
			return true
		}
		nkv := int(t.Ne(0))
		for r := 0; r+nkv <= len(probs); r += nkv {
			var s float64
			for _, v := range probs[r : r+nkv] {
				s += float64(v)
			}
			p.rowErr = max(p.rowErr, math.Abs(s-1))
		}
		return true
	}
	p.asks++
	if _, ok := t.NameLayer(NodeAttention); ok {
		return true
	}
	if t.Op() == p.l.Ops.SetRows && t.HasPrefix(NodeCells) { // a VIEW node has the same name
		idx := t.Src(1)
		p.setRows = fmt.Sprintf("op %d, src[1] %q type %d", t.Op(), idx.Name(), idx.Type())
		if v := p.l.I64View(idx); v != nil && idx.NameIs("attn_inp_k_idxs") {
			p.cells = append(p.cells, v...)
		} else {
			p.errs = append(p.errs, "cache_k_l0 (view) src[1] unreadable: "+p.setRows)
		}
		return false
	}
	if t.NameIs(NodePositions) && t.Op() == p.l.Ops.Rope {
		pos := t.Src(1)
		p.rope = fmt.Sprintf("op %d, src[1] %q type %d", t.Op(), pos.Name(), pos.Type())
		if v := p.l.I32View(pos); v != nil && pos.NameIs("inp_pos") {
			p.pos = append(p.pos, v...)
		} else {
			p.errs = append(p.errs, "Kcur-0 src[1] unreadable: "+p.rope)
		}
		return false
	}
	return false
}

func (p *attnProbe) reset() {
	p.asks, p.answers, p.rowErr = 0, 0, 0
	p.layers = map[int][4]int64{}
	p.nonF32, p.cells, p.pos, p.errs = nil, nil, nil, nil
}

func iota32(from, n int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32(from + i)
	}
	return s
}

func TestEvalCallbackAttention(t *testing.T) {
	l := needLib(t)
	m := needModel(t)
	p := &attnProbe{l: l, nLayer: m.NLayer}
	p.reset()
	c := newTestContext(t, m, ContextOptions{NCtx: 1024, NBatch: 512, NUbatch: 512, Eval: p.fn})

	prompt := chatPrompt(t, m, "What is the capital of France?")
	n := len(prompt)
	if err := c.Decode(0, prompt, 0); err != nil {
		t.Fatal(err)
	}
	check := func(what string, nTok int, wantCells []int64, wantPos []int32, wantNKV int64) {
		t.Helper()
		if len(p.errs) > 0 {
			t.Fatalf("%s: %s", what, strings.Join(p.errs, "; "))
		}
		if len(p.layers) != m.NLayer {
			t.Fatalf("%s: saw kq_soft_max for %d layers, want %d", what, len(p.layers), m.NLayer)
		}
		for layer := range m.NLayer {
			want := [4]int64{wantNKV, int64(nTok), int64(m.NHead), 1}
			if got := p.layers[layer]; got != want {
				t.Fatalf("%s: kq_soft_max-%d ne = %v, want %v", what, layer, got, want)
			}
		}
		if len(p.nonF32) > 0 {
			t.Fatalf("%s: not host f32 contiguous: %v", what, p.nonF32)
		}
		if p.rowErr > 1e-3 {
			t.Fatalf("%s: attention rows sum to 1 +- %g", what, p.rowErr)
		}
		if !slices.Equal(p.cells, wantCells) {
			t.Fatalf("%s: attn_inp_k_idxs = %v, want %v", what, p.cells, wantCells)
		}
		if !slices.Equal(p.pos, wantPos) {
			t.Fatalf("%s: inp_pos = %v, want %v", what, p.pos, wantPos)
		}
		if p.answers != m.NLayer {
			t.Fatalf("%s: %d ask=false calls, want %d", what, p.answers, m.NLayer)
		}
		t.Logf("%s: %d asks, %d wanted; max |row sum-1| %.2g; SET_ROWS %s; ROPE %s", what, p.asks, p.answers, p.rowErr, p.setRows, p.rope)
	}
	cells := make([]int64, n)
	for i := range cells {
		cells[i] = int64(i)
	}
	check("prompt", n, cells, iota32(0, n), 256)

	// One generated token: next cell, next position.
	p.reset()
	tok := Argmax(c.Logits())
	if err := c.Decode(0, []int32{tok}, int32(n)); err != nil {
		t.Fatal(err)
	}
	check("token", 1, []int64{int64(n)}, []int32{int32(n)}, 256)

	// Remove position 3; the next token goes to pos_max+1 and (observed, not assumed) cell 3.
	if !c.SeqRm(0, 3, 4) {
		t.Fatal("llama_memory_seq_rm(0, 3, 4) = false")
	}
	p.reset()
	if err := c.Decode(0, []int32{tok}, int32(n+1)); err != nil {
		t.Fatal(err)
	}
	if len(p.cells) != 1 || len(p.pos) != 1 || p.pos[0] != int32(n+1) {
		t.Fatalf("after a hole: cells %v pos %v", p.cells, p.pos)
	}
	t.Logf("after freeing the cell of position 3, the next token (pos %d) landed in cell %d", p.pos[0], p.cells[0])
}

func TestEvalFlashAttentionHidesAttention(t *testing.T) {
	l := needLib(t)
	m := needModel(t)
	p := &attnProbe{l: l, nLayer: m.NLayer}
	p.reset()
	c := newTestContext(t, m, ContextOptions{NCtx: 512, FlashAttn: FlashAttnEnabled, Eval: p.fn})
	if err := c.Decode(0, chatPrompt(t, m, "Hello"), 0); err != nil {
		t.Fatal(err)
	}
	if len(p.layers) != 0 {
		t.Fatalf("flash attention on, yet kq_soft_max seen for %d layers", len(p.layers))
	}
	t.Logf("flash attention on: %d asks, no kq_soft_max (flash attention fuses the softmax away)", p.asks)
}

// TestTensorOffsets checks the Go-read struct ggml_tensor fields against ggml's own accessors on
// every node of a real graph.
func TestTensorOffsets(t *testing.T) {
	l := needLib(t)
	m := needModel(t)
	if l.GGMLGetName == nil {
		t.Skip("ggml_get_name missing")
	}
	var nodes, views, checkedBytes int
	var errs []string
	opNames := map[GGMLOp]string{}
	fn := func(tn Tensor, ask bool) bool {
		if !ask {
			return true
		}
		nodes++
		for _, x := range []Tensor{tn, tn.Src(0), tn.Src(1)} {
			if x.IsNil() {
				continue
			}
			if got, want := x.Name(), l.TensorName(x); got != want {
				errs = append(errs, fmt.Sprintf("name %q, ggml_get_name %q", got, want))
			}
			if nb := x.NBytes(); nb >= 0 {
				checkedBytes++
				if want := int64(l.GGMLNbytes(x.Ptr())); nb != want {
					errs = append(errs, fmt.Sprintf("%s: nbytes %d (ne %v nb %v), ggml_nbytes %d", x.Name(), nb, x.Shape(), x.Strides(), want))
				}
			}
			if vs := x.ViewSrc(); !vs.IsNil() {
				views++
				if x.Data() != nil && vs.Data() != nil && uintptr(x.Data()) != uintptr(vs.Data())+uintptr(x.ViewOffs()) {
					errs = append(errs, fmt.Sprintf("%s: data != view_src.data + view_offs", x.Name()))
				}
			}
		}
		switch {
		case tn.HasPrefix(NodeCells) && tn.Op() == l.Ops.SetRows:
			opNames[tn.Op()] = "SET_ROWS"
			if tn.Type() != TypeF16 || !tn.ViewSrc().NameIs("cache_k_l0") {
				errs = append(errs, fmt.Sprintf("cache_k_l0 (view): type %d view_src %q", tn.Type(), tn.ViewSrc().Name()))
			}
			if s := tn.Src(1); s.Type() != TypeI64 || s.Ne(0) == 0 {
				errs = append(errs, fmt.Sprintf("k_idxs type %d ne %v", s.Type(), s.Shape()))
			}
		case tn.NameIs(NodePositions) && tn.Op() == l.Ops.Rope:
			opNames[tn.Op()] = "ROPE"
			if s := tn.Src(1); s.Type() != TypeI32 || !s.NameIs("inp_pos") {
				errs = append(errs, fmt.Sprintf("inp_pos %q type %d", s.Name(), s.Type()))
			}
		case tn.HasPrefix(NodeAttention + "-"):
			opNames[tn.Op()] = "SOFT_MAX"
			if tn.Type() != TypeF32 || tn.Nb(0) != 4 || !tn.IsContiguous() {
				errs = append(errs, fmt.Sprintf("%s: type %d nb %v", tn.Name(), tn.Type(), tn.Strides()))
			}
		}
		return false
	}
	c := newTestContext(t, m, ContextOptions{NCtx: 512, Eval: fn})
	if err := c.Decode(0, chatPrompt(t, m, "Offsets"), 0); err != nil {
		t.Fatal(err)
	}
	if len(errs) > 0 {
		t.Fatalf("%d mismatches, first: %s", len(errs), strings.Join(errs[:min(len(errs), 5)], "; "))
	}
	if len(opNames) != 3 {
		t.Fatalf("ops seen: %v", opNames)
	}
	for op, name := range opNames {
		if l.OpName(op) != name {
			t.Errorf("op %d is %q, want %s", op, l.OpName(op), name)
		}
	}
	for _, typ := range []GGMLType{TypeF32, TypeF16, TypeQ4_0, TypeQ4_1, TypeQ8_0, TypeI8, TypeI16, TypeI32, TypeI64, TypeF64, TypeBF16} {
		if l.GGMLTypeName != nil {
			want := map[GGMLType]string{TypeF32: "f32", TypeF16: "f16", TypeQ4_0: "q4_0", TypeQ4_1: "q4_1", TypeQ8_0: "q8_0",
				TypeI8: "i8", TypeI16: "i16", TypeI32: "i32", TypeI64: "i64", TypeF64: "f64", TypeBF16: "bf16"}[typ]
			if got := l.GGMLTypeName(int32(typ)); got != want {
				t.Errorf("ggml_type %d is %q, want %q", typ, got, want)
			}
		}
	}
	t.Logf("%d nodes checked (names of node+src0+src1, %d ggml_nbytes comparisons, %d views)", nodes, checkedBytes, views)
}

func TestEvalPanicReported(t *testing.T) {
	m := needModel(t)
	calls := 0
	c := newTestContext(t, m, ContextOptions{NCtx: 256, Eval: func(tn Tensor, ask bool) bool {
		calls++
		if calls == 10 {
			panic("boom")
		}
		return false
	}})
	err := c.Decode(0, []int32{1, 2, 3}, 0)
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Decode after a panicking callback: %v", err)
	}
	if calls != 10 {
		t.Fatalf("callback called %d times after panicking; want it skipped", calls)
	}
}
