//go:build linux || darwin

package llama

import (
	"fmt"
	"strings"
	"unsafe"
)

// This file is the one home of what keyformer reads from llama.cpp beyond its public C API: the
// graph node names (used by bindings/adapter and, handed over at attach, by the C eval callback
// of capi/), the ggml op numbers (resolved by name when a runtime is bound), and the check of
// struct ggml_tensor's layout (offsets generated from the pinned ggml.h: tensor.go). docs/porting.md
// ("Moving to a new llama.cpp") lists them with where each is checked.

// PinnedLlamaCpp is the llama.cpp release whose internals this package mirrors: LLAMA_CPP of
// build/scripts/pins.env, which tests/go/pins_test.go compares it with.
const PinnedLlamaCpp = "v0.5.0"

// Graph node names of the pinned llama.cpp (src/llama-graph.cpp, src/llama-kv-cache.cpp) read during
// the eval callback's asks.
const (
	// NodePositions is layer 0's ROPE of K (op ROPE); its src[1] is inp_pos, the int32 positions
	// of the ubatch's tokens.
	NodePositions = "Kcur-0"
	// NodeCells is the prefix of the SET_ROWS that writes layer 0's K cache: "cache_k_l0 (view)"
	// in a unified cache, "cache_k_l0 (reshaped) (view)" in a cache of one stream per sequence (a
	// VIEW node bears the first name too); its src[1] is attn_inp_k_idxs, the int64 cells the
	// ubatch's tokens land in, stream × cells per stream + the cell within the stream.
	NodeCells = "cache_k_l0 ("
	// NodeAttention is the prefix of the attention probabilities "kq_soft_max-<layer>" (SOFT_MAX,
	// f32 [n_kv, tokens per stream, n_head, streams in the ubatch]; column j is cell j of its
	// stream).
	NodeAttention = "kq_soft_max"
	// NodeKeys is the prefix of the ubatch's keys "Kcur-<layer>" before their rotation, f32
	// [head_dim, n_head_kv, n_tokens]: the RESHAPE of the K projection (separate Q/K/V weights)
	// or the VIEW of the fused QKV projection (rows then strided). The 2-d matmul and bias before
	// it and the ROPE after it bear the same name. What a policy that reads keys reads: without
	// the rotation a key does not depend on its position, so keys read early and late compare.
	NodeKeys = "Kcur"
)

// Offsets in struct ggml_tensor of the two fields a C eval callback compares nodes by (capi
// hands them to its callback at attach).
const (
	TensorOffsetName = tensorOffName // char name[MaxName]
	TensorOffsetOp   = tensorOffOp   // enum ggml_op op (4 bytes)
)

// Ops holds the numbers (enum ggml_op) of the ops that keyformer's nodes are compared with. The
// numbers move whenever ggml adds an op before them, so they are found by name with ggml_op_name
// when a runtime is bound (Lib.Ops).
type Ops struct {
	Rope    GGMLOp // "ROPE": NodePositions
	SetRows GGMLOp // "SET_ROWS": NodeCells
	Reshape GGMLOp // "RESHAPE": NodeKeys of separate Q/K/V weights
	View    GGMLOp // "VIEW": NodeKeys of fused QKV weights
}

// IsKeys reports whether op is one of NodeKeys' ops (RESHAPE or VIEW).
func (o Ops) IsKeys(op GGMLOp) bool { return op == o.Reshape || op == o.View }

// maxOps bounds the search of ggml_op_name (the pinned ggml has 101 ops).
const maxOps = 1024

// resolveOps finds the Ops by walking name(0), name(1), ... It stops once every op is found: the
// table then is never read past its end. ggml_op_name indexes its table without a bound check;
// right past the end the pinned build returns NULL, which, like any string that is not an op name
// (an upper-case identifier), ends the walk with an error naming the ops not found.
func resolveOps(name func(int32) *byte) (Ops, error) {
	var o Ops
	want := []struct {
		name  string
		op    *GGMLOp
		found bool
	}{{name: "ROPE", op: &o.Rope}, {name: "SET_ROWS", op: &o.SetRows}, {name: "RESHAPE", op: &o.Reshape}, {name: "VIEW", op: &o.View}}
	found := 0
	op := GGMLOp(0)
	for ; op < maxOps && found < len(want); op++ {
		s, ok := opName(name(int32(op)))
		if !ok {
			break
		}
		for i := range want {
			if !want[i].found && want[i].name == s {
				*want[i].op, want[i].found = op, true
				found++
			}
		}
	}
	if found == len(want) {
		return o, nil
	}
	var missing []string
	for _, w := range want {
		if !w.found {
			missing = append(missing, w.name)
		}
	}
	return Ops{}, fmt.Errorf("llama: ggml op(s) %s not found among ggml_op_name(0..%d): this ggml does not have them (renamed or removed)",
		strings.Join(missing, ", "), op-1)
}

// opName reads an op name of at most MaxName bytes; ok is false for NULL or a string that is not
// an upper-case identifier.
func opName(p *byte) (string, bool) {
	if p == nil {
		return "", false
	}
	b := unsafe.Slice(p, MaxName)
	for i, c := range b {
		switch {
		case c == 0:
			return string(b[:i]), i > 0
		case (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_':
			return "", false
		}
	}
	return "", false
}

// OpName returns ggml_op_name(op), "" for an op the runtime does not have a name for. Call it
// only with ops read from tensors or Lib.Ops: ggml does not check the bound.
func (l *Lib) OpName(op GGMLOp) string {
	s, _ := opName(l.GGMLOpName(int32(op)))
	return s
}

// initParams is struct ggml_init_params.
type initParams struct {
	MemSize   uintptr
	MemBuffer unsafe.Pointer
	NoAlloc   bool
}

// layoutCheck describes a tensor built to check the layout: a view of length viewLen f32 at byte
// offset viewOffs into a 1-d f32 tensor src, as ggml's functions report it.
type layoutCheck struct {
	src      unsafe.Pointer // ggml_new_tensor_1d(F32, 64)
	viewOffs uint64         // the view's offset in bytes
	viewLen  int64          // the view's elements
	name     string         // ggml_get_name(view)
	nbytes   uint64         // ggml_nbytes(view)
	data     unsafe.Pointer // ggml_get_data(view)
	op       string         // ggml_op_desc(view): "VIEW"
}

// checkTensorLayout builds a view tensor in a small ggml context and compares every field that
// Tensor reads with what ggml's own functions (or the view's construction) say it holds.
func (l *Lib) checkTensorLayout() error {
	ctx := l.GGMLInit(initParams{MemSize: 1 << 14})
	if ctx == 0 {
		return fmt.Errorf("llama: ggml_init of 16 KiB failed (checking struct ggml_tensor's layout)")
	}
	defer l.GGMLFree(ctx)
	c := layoutCheck{viewOffs: 32, viewLen: 16}
	c.src = l.GGMLNewTensor1d(ctx, int32(TypeF32), 64)
	v := l.GGMLView1d(ctx, c.src, c.viewLen, uintptr(c.viewOffs))
	if c.src == nil || v == nil {
		return fmt.Errorf("llama: ggml_new_tensor_1d or ggml_view_1d returned NULL (checking struct ggml_tensor's layout)")
	}
	l.GGMLSetName(v, "keyformer layout check")
	c.name = goString(l.GGMLGetName(v))
	c.nbytes = uint64(l.GGMLNbytes(v))
	c.data = l.GGMLGetData(v)
	c.op = goString(l.GGMLOpDesc(v))
	return c.check(TensorAt(v), l.OpName)
}

// check compares t's fields, read at the generated offsets, with c; the error names the first
// field that differs.
func (c *layoutCheck) check(t Tensor, opName func(GGMLOp) string) error {
	fields := []struct {
		field     string
		off       uintptr
		got, want any
	}{
		{"type", tensorOffType, t.Type(), TypeF32},
		{"buffer", tensorOffBuffer, t.Buffer(), uintptr(0)},
		{"ne", tensorOffNe, t.Shape(), [MaxDims]int64{c.viewLen, 1, 1, 1}},
		{"nb (ggml_nbytes)", tensorOffNb, uint64(t.NBytes()), c.nbytes},
		{"op (ggml_op_desc)", tensorOffOp, opName(t.Op()), c.op},
		{"op_params[0] (the view's offset)", tensorOffOpParams, t.OpParam(0), int32(c.viewOffs)},
		{"src[0]", tensorOffSrc, t.Src(0).Ptr(), c.src},
		{"view_src", tensorOffViewSrc, t.ViewSrc().Ptr(), c.src},
		{"view_offs", tensorOffViewOffs, t.ViewOffs(), c.viewOffs},
		{"data (ggml_get_data)", tensorOffData, t.Data(), c.data},
		{"name (ggml_get_name)", tensorOffName, t.Name(), c.name},
	}
	for _, f := range fields {
		if f.got != f.want {
			return fmt.Errorf("llama: struct ggml_tensor of this runtime differs from the pinned ggml.h (bindings/llama/ztensor_lp64.go): "+
				"field %s at offset %d reads %v, ggml reports %v", f.field, f.off, f.got, f.want)
		}
	}
	return nil
}
