//go:build linux || darwin

package llama

import (
	"runtime"
	"strings"
	"testing"

	"github.com/ebitengine/purego"
)

// mustRegisterEval is RegisterEval failing tb on an error.
func mustRegisterEval(tb testing.TB, fn EvalFunc, nodes ...string) *EvalHandle {
	tb.Helper()
	h, err := RegisterEval(fn, nodes...)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// TestAskFilter calls the handle's callback as llama.cpp does (the C calling convention, through
// purego.SyscallN) with nodes of many names, asks and computed tensors, and checks that exactly
// the asks about the wanted prefixes, and every computed tensor, reach the Go function, and that
// the answer is its answer; the Go twin askFilterGo must agree call by call.
func TestAskFilter(t *testing.T) {
	nodes := []string{"kq_soft_max", "Kcur-0", "cache_k_l0 (", "0123456789abcdef"}
	var seen []string
	h := mustRegisterEval(t, func(tn Tensor, ask bool) bool {
		seen = append(seen, tn.Name())
		return strings.HasSuffix(tn.Name(), "-0") || !ask
	}, nodes...)
	defer h.Release()
	if h.filter == nil {
		if askFilterABI0 != 0 {
			t.Fatal("no filter on an architecture that has one")
		}
		t.Skip("no ask filter on " + runtime.GOARCH)
	}
	names := []string{"kq_soft_max-0", "kq_soft_max-29", "kq_soft_max", "kq_soft_ma", "Kq_soft_max-0", "Kcur-0", "Kcur-0 (view)",
		"Kcur-1", "Kcur-", "cache_k_l0 (reshaped) (view)", "cache_k_l0", "cache_k_l0 (", "cache_k_l1 (", "cache_v_l0 (",
		"0123456789abcdef", "0123456789abcdeF", "0123456789abcdef-0", "", "norm-0", strings.Repeat("x", MaxName-1)}
	f := new(fakeTensor)
	for _, name := range names {
		tn := f.set(name, TypeF32, [4]int64{1, 1, 1, 1}, [4]uint64{4, 4, 4, 4})
		wanted := false
		for _, n := range nodes {
			wanted = wanted || strings.HasPrefix(name, n)
		}
		// ask's register holds garbage above its low byte: the callee reads the bool alone.
		for _, askArg := range []uintptr{0, 1, 0x100, 0xff01} {
			ask := askArg&0xff != 0
			seen = seen[:0]
			r, _, _ := purego.SyscallN(h.Callback(), uintptr(tn.Ptr()), askArg, h.UserData())
			forwarded := len(seen) == 1
			if forwarded != (wanted || !ask) || forwarded != askFilterGo(h.filter, tn.Ptr(), ask) {
				t.Errorf("%q ask %#x: forwarded %v (Go twin %v), want %v", name, askArg, forwarded, askFilterGo(h.filter, tn.Ptr(), ask), wanted || !ask)
			}
			if want := forwarded && (strings.HasSuffix(name, "-0") || !ask); byte(r) != 0 != want {
				t.Errorf("%q ask %#x: answered %v, want %v", name, askArg, byte(r) != 0, want)
			}
		}
	}
	for _, askArg := range []uintptr{0, 1} { // a NULL tensor: no call into fn, "no" to an ask
		seen = seen[:0]
		r, _, _ := purego.SyscallN(h.Callback(), 0, askArg, h.UserData())
		if len(seen) != 0 || byte(r) != 0 != (askArg == 0) {
			t.Errorf("NULL tensor, ask %d: %d calls, answered %d", askArg, len(seen), byte(r))
		}
	}
	runtime.KeepAlive(f)
}

func TestAskFilterPrefixes(t *testing.T) {
	fn := func(Tensor, bool) bool { return false }
	for _, nodes := range [][]string{{""}, {"0123456789abcdefg"}, {"a", "b", "c", "d", "e"}} {
		if h, err := RegisterEval(fn, nodes...); err == nil {
			h.Release()
			t.Errorf("nodes %q accepted", nodes)
		}
	}
	h := mustRegisterEval(t, fn)
	defer h.Release()
	if h.Callback() != EvalCallback() || h.UserData() != h.slotUserData() {
		t.Error("a handle without nodes must use the shared callback")
	}
}
