//go:build linux || darwin

package llama

import (
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"
)

// These tests need no llama.cpp runtime.

// fakeTensor builds a struct ggml_tensor image in Go memory.
type fakeTensor [tensorSize]byte

func (f *fakeTensor) set(name string, typ GGMLType, ne [4]int64, nb [4]uint64) Tensor {
	*f = fakeTensor{}
	copy(f[tensorOffName:tensorOffName+MaxName-1], name)
	*(*int32)(unsafe.Pointer(&f[tensorOffType])) = int32(typ)
	*(*[4]int64)(unsafe.Pointer(&f[tensorOffNe])) = ne
	*(*[4]uint64)(unsafe.Pointer(&f[tensorOffNb])) = nb
	return TensorAt(unsafe.Pointer(&f[0]))
}

func TestTensorAccessors(t *testing.T) {
	f := new(fakeTensor)
	tn := f.set("kq_soft_max-17", TypeF32, [4]int64{256, 7, 9, 1}, [4]uint64{4, 1024, 7168, 64512})
	if tn.Name() != "kq_soft_max-17" || !tn.NameIs("kq_soft_max-17") || tn.NameIs("kq_soft_max-1") || tn.NameIs("kq_soft_max-170") {
		t.Fatal("NameIs")
	}
	if l, ok := tn.NameLayer("kq_soft_max"); !ok || l != 17 {
		t.Fatalf("NameLayer = %d, %v", l, ok)
	}
	for _, bad := range []string{"kq_soft_max-", "kq_soft_max-1x", "kq_soft_max", "kq_soft_maxx-1", "kq-1"} {
		f.set(bad, TypeF32, [4]int64{1, 1, 1, 1}, [4]uint64{4, 4, 4, 4})
		if _, ok := tn.NameLayer("kq_soft_max"); ok {
			t.Errorf("NameLayer accepted %q", bad)
		}
	}
	f.set("kq_soft_max-17", TypeF32, [4]int64{256, 7, 9, 1}, [4]uint64{4, 1024, 7168, 64512})
	if !tn.IsContiguous() || tn.NBytes() != 256*7*9*4 || tn.NElements() != 256*7*9 {
		t.Fatalf("contiguous %v nbytes %d", tn.IsContiguous(), tn.NBytes())
	}
	f.set("v", TypeF16, [4]int64{64, 3, 1, 1}, [4]uint64{2, 256, 768, 768}) // a strided view
	if tn.IsContiguous() || tn.NBytes() != 2+63*2+2*256 {
		t.Fatalf("view: contiguous %v nbytes %d", tn.IsContiguous(), tn.NBytes())
	}
	long := strings.Repeat("x", MaxName-1)
	f.set(long, TypeQ4_0, [4]int64{32, 1, 1, 1}, [4]uint64{18, 18, 18, 18})
	if !tn.NameIs(long) || tn.NameIs(long+"x") || tn.NBytes() != -1 || tn.IsContiguous() {
		t.Fatal("63-byte name or quantised type")
	}
	var nilT Tensor
	if nilT.Name() != "" || nilT.NameIs("") || !nilT.Src(1).IsNil() || nilT.Src(1).NameIs("inp_pos") || !nilT.ViewSrc().IsNil() {
		t.Fatal("nil tensor")
	}
	runtime.KeepAlive(f)
}

// The layout check names the first field of a tensor that does not hold what ggml reports: here
// a view tensor image laid out at the generated offsets, then one whose name sits 8 bytes later
// (as in a ggml that added a field before it).
func TestTensorLayoutCheck(t *testing.T) {
	var src, img fakeTensor
	data := make([]float32, 64)
	put := func(nameAt uintptr) Tensor {
		v := img.set("", TypeF32, [4]int64{16, 1, 1, 1}, [4]uint64{4, 64, 64, 64})
		copy(img[nameAt:], "keyformer layout check")
		*(*int32)(unsafe.Pointer(&img[tensorOffOp])) = 37 // VIEW
		*(*int32)(unsafe.Pointer(&img[tensorOffOpParams])) = 32
		*(*unsafe.Pointer)(unsafe.Pointer(&img[tensorOffSrc])) = unsafe.Pointer(&src)
		*(*unsafe.Pointer)(unsafe.Pointer(&img[tensorOffViewSrc])) = unsafe.Pointer(&src)
		*(*uint64)(unsafe.Pointer(&img[tensorOffViewOffs])) = 32
		*(*unsafe.Pointer)(unsafe.Pointer(&img[tensorOffData])) = unsafe.Pointer(&data[8])
		return v
	}
	c := layoutCheck{src: unsafe.Pointer(&src), viewOffs: 32, viewLen: 16, name: "keyformer layout check",
		nbytes: 64, data: unsafe.Pointer(&data[8]), op: "VIEW"}
	opName := func(op GGMLOp) string { return map[GGMLOp]string{37: "VIEW"}[op] }
	if err := c.check(put(tensorOffName), opName); err != nil {
		t.Fatal(err)
	}
	err := c.check(put(tensorOffName+8), opName)
	if err == nil || !strings.Contains(err.Error(), "differs from the pinned ggml.h") || !strings.Contains(err.Error(), "field name (ggml_get_name) at offset 256") {
		t.Fatalf("name 8 bytes later: %v", err)
	}
	c.op = "SOFT_MAX"
	if err := c.check(put(tensorOffName), opName); err == nil || !strings.Contains(err.Error(), "field op (ggml_op_desc)") {
		t.Fatalf("another op: %v", err)
	}
	runtime.KeepAlive(&src)
	runtime.KeepAlive(data)
}

func TestEvalDispatch(t *testing.T) {
	cb := EvalCallback()
	if cb == 0 || EvalCallback() != cb {
		t.Fatal("EvalCallback not stable")
	}
	f := new(fakeTensor)
	tn := f.set("kq_soft_max-3", TypeF32, [4]int64{1, 1, 1, 1}, [4]uint64{4, 4, 4, 4})
	var a, b []string
	ha := mustRegisterEval(t, func(t Tensor, ask bool) bool { a = append(a, t.Name()); return ask })
	hb := mustRegisterEval(t, func(t Tensor, ask bool) bool { b = append(b, t.Name()); return false })
	call := func(h uintptr, ask bool) bool {
		askArg := uintptr(0)
		if ask {
			askArg = 1
		}
		r, _, _ := purego.SyscallN(cb, uintptr(tn.Ptr()), askArg, h)
		return byte(r) != 0
	}
	if !call(ha.UserData(), true) || call(hb.UserData(), true) {
		t.Fatal("ask answers not forwarded")
	}
	if !call(hb.UserData(), false) {
		t.Fatal("ask=false must always answer true")
	}
	if len(a) != 1 || len(b) != 2 || a[0] != "kq_soft_max-3" {
		t.Fatalf("dispatch: a %v b %v", a, b)
	}
	if call(12345, true) || !call(12345, false) {
		t.Fatal("unknown user_data")
	}
	ha.Release()
	if call(ha.UserData(), true) {
		t.Fatal("released handle still answers")
	}
	hc := mustRegisterEval(t, func(t Tensor, ask bool) bool { panic("boom") })
	if hc.UserData() != 1 { // reuses the released slot
		t.Fatalf("slot not reused: %d", hc.UserData())
	}
	if call(hc.UserData(), true) || !call(hc.UserData(), false) {
		t.Fatal("panicking function's answers")
	}
	if err := hc.TakePanic(); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("TakePanic = %v", err)
	}
	hb.Release()
	hc.Release()
	runtime.KeepAlive(f)
}

func TestArgmax(t *testing.T) {
	if Argmax(nil) != -1 || Argmax([]float32{1, 3, 3, -1}) != 1 || Argmax([]float32{-5}) != 0 {
		t.Fatal("Argmax")
	}
}
