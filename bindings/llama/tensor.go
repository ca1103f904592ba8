//go:build linux || darwin

package llama

import (
	"unsafe"
)

// The field offsets of struct ggml_tensor come from ztensor_lp64.go, which `go generate`
// produces with `go tool cgo -godefs` from the pinned ggml.h (build/deps/llama/include). One file
// serves linux/amd64, linux/arm64 and darwin/arm64: all three are LP64 with natural alignment, and
// the struct holds only 4-byte enums and int32s, 8-byte int64s, size_ts and pointers, and char
// arrays, which lay out alike on each (only char's signedness differs, which no offset depends
// on). The size assertions below stop a build where that does not hold; Lib.checkTensorLayout
// compares every field read here with what ggml's own functions report about a live tensor when a
// runtime is bound.
//
//go:generate sh -c "go tool cgo -godefs -- -I../../build/deps/llama/include tensor_godefs.go | sed 's/_cgopackage[.]Incomplete/struct{}/' | gofmt > ztensor_lp64.go && rm -rf _obj _cgo_*.o"
const (
	tensorOffType     = unsafe.Offsetof(ggmlTensor{}.Type)
	tensorOffBuffer   = unsafe.Offsetof(ggmlTensor{}.Buffer)
	tensorOffNe       = unsafe.Offsetof(ggmlTensor{}.Ne)
	tensorOffNb       = unsafe.Offsetof(ggmlTensor{}.Nb)
	tensorOffOp       = unsafe.Offsetof(ggmlTensor{}.Op)
	tensorOffOpParams = unsafe.Offsetof(ggmlTensor{}.Op_params)
	tensorOffFlags    = unsafe.Offsetof(ggmlTensor{}.Flags)
	tensorOffSrc      = unsafe.Offsetof(ggmlTensor{}.Src)
	tensorOffViewSrc  = unsafe.Offsetof(ggmlTensor{}.View_src)
	tensorOffViewOffs = unsafe.Offsetof(ggmlTensor{}.View_offs)
	tensorOffData     = unsafe.Offsetof(ggmlTensor{}.Data)
	tensorOffName     = unsafe.Offsetof(ggmlTensor{}.Name)
	tensorSize        = ggmlSizeofTensor

	// MaxDims is GGML_MAX_DIMS, the number of dimensions of a tensor.
	MaxDims = ggmlMaxDims
	// MaxSrc is GGML_MAX_SRC, the number of source tensors of a node.
	MaxSrc = ggmlMaxSrc
	// MaxName is GGML_MAX_NAME, the size of a tensor's name buffer (NUL included).
	MaxName   = ggmlMaxName
	maxParams = ggmlMaxOpParams / 4 // int32 op_params
)

// The generated struct has the C size (pointers of 8 bytes), and the fields read as pointers or
// 8-byte words are that wide.
var (
	_ [tensorSize - unsafe.Sizeof(ggmlTensor{})]byte
	_ [unsafe.Sizeof(ggmlTensor{}) - tensorSize]byte
	_ [unsafe.Sizeof(uintptr(0)) - 8]byte
	_ [8 - unsafe.Sizeof(uintptr(0))]byte
)

// GGMLOp is enum ggml_op.
type GGMLOp int32

// Tensor is a read-only view of a struct ggml_tensor owned by ggml (typically the pointer an eval
// callback receives). It is valid only while ggml keeps the tensor: inside the callback call, or
// until the graph is rebuilt. The zero Tensor is nil.
type Tensor struct{ p unsafe.Pointer }

// TensorAt wraps a struct ggml_tensor pointer.
func TensorAt(p unsafe.Pointer) Tensor { return Tensor{p} }

// Ptr returns the struct ggml_tensor pointer.
func (t Tensor) Ptr() unsafe.Pointer { return t.p }

// IsNil reports whether t is the NULL tensor.
func (t Tensor) IsNil() bool { return t.p == nil }

func (t Tensor) i32(off uintptr) int32          { return *(*int32)(unsafe.Add(t.p, off)) }
func (t Tensor) u64(off uintptr) uint64         { return *(*uint64)(unsafe.Add(t.p, off)) }
func (t Tensor) ptr(off uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Add(t.p, off)) }

// Type is the element type (enum ggml_type).
func (t Tensor) Type() GGMLType { return GGMLType(t.i32(tensorOffType)) }

// Buffer is the ggml_backend_buffer_t holding the data (0 for unallocated tensors).
func (t Tensor) Buffer() uintptr { return uintptr(t.u64(tensorOffBuffer)) }

// Op is the operation that computes the tensor (OpNone for leaves).
func (t Tensor) Op() GGMLOp { return GGMLOp(t.i32(tensorOffOp)) }

// OpParam returns op_params[i] (0 <= i < 16).
func (t Tensor) OpParam(i int) int32 {
	return (*[maxParams]int32)(unsafe.Add(t.p, tensorOffOpParams))[i]
}

// Flags is the ggml_tensor_flag bit set (input, output, param, loss).
func (t Tensor) Flags() int32 { return t.i32(tensorOffFlags) }

// Ne returns the number of elements in dimension i (0 <= i < 4).
func (t Tensor) Ne(i int) int64 { return (*[MaxDims]int64)(unsafe.Add(t.p, tensorOffNe))[i] }

// Nb returns the stride in bytes of dimension i (0 <= i < 4).
func (t Tensor) Nb(i int) uint64 { return (*[MaxDims]uint64)(unsafe.Add(t.p, tensorOffNb))[i] }

// Shape returns ne[0..3].
func (t Tensor) Shape() [MaxDims]int64 {
	return *(*[MaxDims]int64)(unsafe.Add(t.p, tensorOffNe))
}

// Strides returns nb[0..3].
func (t Tensor) Strides() [MaxDims]uint64 {
	return *(*[MaxDims]uint64)(unsafe.Add(t.p, tensorOffNb))
}

// NElements is ne[0]*ne[1]*ne[2]*ne[3].
func (t Tensor) NElements() int64 {
	s := t.Shape()
	return s[0] * s[1] * s[2] * s[3]
}

// Src returns src[i] (0 <= i < 10), nil where unused (and for the nil Tensor), so that chains
// like t.Src(1).NameIs(...) are safe.
func (t Tensor) Src(i int) Tensor {
	if t.p == nil || i < 0 || i >= MaxSrc {
		return Tensor{}
	}
	return Tensor{t.ptr(tensorOffSrc + 8*uintptr(i))}
}

// ViewSrc is the tensor this one is a view of (nil if not a view, or for the nil Tensor).
func (t Tensor) ViewSrc() Tensor {
	if t.p == nil {
		return Tensor{}
	}
	return Tensor{t.ptr(tensorOffViewSrc)}
}

// ViewOffs is the byte offset of this view into ViewSrc.
func (t Tensor) ViewOffs() uint64 { return t.u64(tensorOffViewOffs) }

// Data is the tensor's data pointer: host memory only where the buffer is a host buffer
// (Lib.IsHost); otherwise use Lib.TensorRead.
func (t Tensor) Data() unsafe.Pointer { return t.ptr(tensorOffData) }

// NameBytes returns the name (up to its NUL) as a view of the tensor's own memory, nil for the
// nil Tensor: no allocation; do not keep it past the tensor's life.
func (t Tensor) NameBytes() []byte {
	if t.p == nil {
		return nil
	}
	b := unsafe.Slice((*byte)(unsafe.Add(t.p, tensorOffName)), MaxName)
	for i, c := range b {
		if c == 0 {
			return b[:i:i]
		}
	}
	return b // ggml always terminates; be safe anyway
}

// Name returns a copy of the name.
func (t Tensor) Name() string { return string(t.NameBytes()) }

// NameIs reports whether the name equals s, without allocating.
func (t Tensor) NameIs(s string) bool {
	if t.p == nil || len(s) >= MaxName {
		return false
	}
	b := (*[MaxName]byte)(unsafe.Add(t.p, tensorOffName))
	return string(b[:len(s)]) == s && b[len(s)] == 0 // the conversion in a comparison does not allocate
}

// HasPrefix reports whether the name starts with prefix, without allocating.
func (t Tensor) HasPrefix(prefix string) bool {
	if t.p == nil || len(prefix) > MaxName {
		return false
	}
	b := (*[MaxName]byte)(unsafe.Add(t.p, tensorOffName))
	return string(b[:len(prefix)]) == prefix
}

// NameLayer parses names of the form "<prefix>-<layer>" (llama.cpp's per-layer names such as
// "kq_soft_max-12" or "Kcur-0"), without allocating. It returns ok = false for any other name.
func (t Tensor) NameLayer(prefix string) (layer int, ok bool) {
	if !t.HasPrefix(prefix) || len(prefix)+1 >= MaxName {
		return 0, false
	}
	b := (*[MaxName]byte)(unsafe.Add(t.p, tensorOffName))
	if b[len(prefix)] != '-' {
		return 0, false
	}
	n, i := 0, len(prefix)+1
	for ; i < MaxName && b[i] != 0; i++ {
		c := b[i]
		if c < '0' || c > '9' || n > 1<<20 {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if i == len(prefix)+1 {
		return 0, false
	}
	return n, true
}

// TypeSize is the size in bytes of one element of the non-block (non-quantised) types; 0 for
// block-quantised or unknown types.
func TypeSize(typ GGMLType) int {
	switch typ {
	case TypeF32, TypeI32:
		return 4
	case TypeF16, TypeBF16, TypeI16:
		return 2
	case TypeI64, TypeF64:
		return 8
	case TypeI8:
		return 1
	}
	return 0
}

// NBytes computes ggml_nbytes in Go for non-quantised types (-1 for block-quantised ones): the
// bytes spanned by the tensor's elements, following its strides.
func (t Tensor) NBytes() int64 {
	ts := TypeSize(t.Type())
	if ts == 0 {
		return -1
	}
	ne, nb := t.Shape(), t.Strides()
	for i := range MaxDims {
		if ne[i] <= 0 {
			return 0
		}
	}
	n := int64(ts)
	for i := range MaxDims {
		n += (ne[i] - 1) * int64(nb[i])
	}
	return n
}

// IsContiguous reports whether a non-quantised tensor's elements are packed in row-major order
// (nb[0] = type size, nb[i] = nb[i-1]*ne[i-1]).
func (t Tensor) IsContiguous() bool {
	ts := TypeSize(t.Type())
	if ts == 0 {
		return false
	}
	ne, nb := t.Shape(), t.Strides()
	want := uint64(ts)
	for i := range MaxDims {
		if ne[i] != 1 && nb[i] != want {
			return false
		}
		want *= uint64(ne[i])
	}
	return true
}

// hostView returns the tensor's data as a slice of n elements of T when it is contiguous, of type
// typ, with host-visible data; nil otherwise.
func hostView[T any](l *Lib, t Tensor, typ GGMLType) []T {
	if t.IsNil() || t.Type() != typ || !t.IsContiguous() || t.Data() == nil || !l.IsHost(t) {
		return nil
	}
	return unsafe.Slice((*T)(t.Data()), t.NElements())
}

// IsHost reports whether t's data lives in host memory (ggml_backend_buffer_is_host), so that
// Data and the *View methods may be used.
func (l *Lib) IsHost(t Tensor) bool {
	b := t.Buffer()
	return b != 0 && l.GGMLBackendBufferIsHost(b)
}

// F32View returns a contiguous, host-resident F32 tensor's data in place (no copy), nil otherwise.
// The slice aliases ggml memory: valid inside the eval callback only.
func (l *Lib) F32View(t Tensor) []float32 { return hostView[float32](l, t, TypeF32) }

// I32View is F32View for I32 tensors (e.g. inp_pos).
func (l *Lib) I32View(t Tensor) []int32 { return hostView[int32](l, t, TypeI32) }

// I64View is F32View for I64 tensors (e.g. attn_inp_k_idxs).
func (l *Lib) I64View(t Tensor) []int64 { return hostView[int64](l, t, TypeI64) }

// TensorRead copies len(dst) bytes of t's data from byte offset off, from any backend
// (ggml_backend_tensor_get: a memcpy for host buffers, a device copy otherwise).
func (l *Lib) TensorRead(t Tensor, dst []byte, off uint64) {
	if len(dst) == 0 || t.IsNil() {
		return
	}
	l.GGMLBackendTensorGet(t.p, unsafe.Pointer(&dst[0]), uintptr(off), uintptr(len(dst)))
}

// TensorName returns ggml_get_name(t) (a C call; Tensor.Name reads the same bytes directly).
func (l *Lib) TensorName(t Tensor) string {
	if t.IsNil() {
		return ""
	}
	return goString(l.GGMLGetName(t.p))
}

// goString copies a NUL-terminated C string.
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}
