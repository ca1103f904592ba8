package main

/*
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include "keyformer.h"
#include "llama_shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/keyformer/keyformer/bindings/adapter"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// llamaBinding is a context's keyformer_llama_attach: the adapter that feeds its tracker from one
// llama_context.
type llamaBinding struct {
	adapter *adapter.Adapter
	evals   atomic.Int64           // calls of kfgo_llama_eval that reached the adapter
	panic   atomic.Pointer[string] // a panic recovered inside the eval callback, for the next apply
}

// llamaLibs caches the bound runtimes by llama_library ("" for NULL): binding resolves ~70
// symbols, and a process has one llama.cpp.
var llamaLibs struct {
	mu   sync.Mutex
	libs map[string]*llama.Lib
}

// bindLlama finds the llama.cpp the host loaded: with name "" in the process (RTLD_DEFAULT, then
// the loaded libllama/libggml objects re-opened with RTLD_NOLOAD); else the library the host
// opened under name, re-opened with RTLD_NOW|RTLD_NOLOAD (never loaded anew).
func bindLlama(name string) (*llama.Lib, error) {
	llamaLibs.mu.Lock()
	defer llamaLibs.mu.Unlock()
	if l := llamaLibs.libs[name]; l != nil {
		return l, nil
	}
	var (
		l   *llama.Lib
		err error
	)
	if name == "" {
		l, err = llama.FromProcess()
	} else {
		cname := C.CString(name)
		h := C.dlopen(cname, C.RTLD_NOW|C.RTLD_NOLOAD)
		C.free(unsafe.Pointer(cname))
		if h == nil {
			msg := "not loaded"
			if e := C.dlerror(); e != nil {
				msg = C.GoString(e)
			}
			hint := ""
			if !strings.Contains(name, "/") {
				hint = " (a bare file name matches only the name a library was opened by or its SONAME: pass the path the host loaded it from, or NULL to search the process)"
			}
			return nil, invalid("llama_library %q is not loaded in this process: %s%s", name, msg, hint)
		}
		l, err = llama.FromHandles(uintptr(h))
	}
	if err != nil {
		var missing *llama.MissingSymbolsError
		if errors.As(err, &missing) {
			return nil, fail(statusUnsupported, "%v", err)
		}
		return nil, fail(statusUnsupported, "binding llama.cpp: %v", err)
	}
	if llamaLibs.libs == nil {
		llamaLibs.libs = map[string]*llama.Lib{}
	}
	llamaLibs.libs[name] = l
	return l, nil
}

//export kfgo_llama_attach
func kfgo_llama_attach(h C.uintptr_t, lctx unsafe.Pointer, name *C.char) C.keyformer_status {
	return call("keyformer_llama_attach", uintptr(h), func(c *context) error {
		if lctx == nil {
			return invalid("lctx is NULL")
		}
		libName := ""
		if name != nil {
			if libName = C.GoString(name); libName == "" {
				return invalid("llama_library is empty (pass NULL to search the process)")
			}
		}
		lib, err := bindLlama(libName)
		if err != nil {
			return err
		}
		ad, err := adapter.New(lib, c.tracker, adapter.Options{})
		if err != nil {
			return invalid("%v", err)
		}
		if err := ad.Attach(uintptr(lctx)); err != nil {
			return invalid("%v", err)
		}
		g, err := graphFor(lib, c.tracker.Config().Policy.ReadsKeys())
		if err != nil {
			return err
		}
		c.llama.Store(&llamaBinding{adapter: ad})
		C.kf_llama_set_attached(h, &g)
		return nil
	})
}

// The C side's name buffers must be ggml's.
var _ [C.KF_NAME_MAX - llama.MaxName]byte
var _ [llama.MaxName - C.KF_NAME_MAX]byte

// graphFor is what keyformer_llama_eval_callback compares nodes with for lib: bindings/llama's
// node names, lib's op numbers and the offsets of struct ggml_tensor's name and op; with
// readKeys it also hands the keys nodes of every layer to the adapter.
func graphFor(lib *llama.Lib, readKeys bool) (C.struct_kf_graph, error) {
	g := C.struct_kf_graph{
		off_name:     C.uint32_t(llama.TensorOffsetName),
		off_op:       C.uint32_t(llama.TensorOffsetOp),
		op_positions: C.int32_t(lib.Ops.Rope),
		op_cells:     C.int32_t(lib.Ops.SetRows),
		op_keys:      [2]C.int32_t{C.int32_t(lib.Ops.Reshape), C.int32_t(lib.Ops.View)},
		read_keys:    boolInt(readKeys),
	}
	for _, f := range []struct {
		dst  *[C.KF_NAME_MAX]C.char
		n    *C.uint32_t
		name string
		nul  bool // compared with its NUL (a whole name), or a prefix
	}{
		{&g.attention, &g.attention_len, llama.NodeAttention + "-", false},
		{&g.positions, &g.positions_len, llama.NodePositions, true},
		{&g.cells, &g.cells_len, llama.NodeCells, false},
		{&g.keys, &g.keys_len, llama.NodeKeys + "-", false},
	} {
		if len(f.name) == 0 || len(f.name) >= llama.MaxName {
			return g, fail(statusInternal, "graph node name %q is empty or longer than ggml's %d-byte names", f.name, llama.MaxName-1)
		}
		for i := range len(f.name) {
			f.dst[i] = C.char(f.name[i])
		}
		*f.n = C.uint32_t(len(f.name))
		if f.nul {
			*f.n++
		}
	}
	return g, nil
}

// kfgo_llama_eval is the Go half of keyformer_llama_eval_callback, called only for the nodes the
// adapter needs. A panic never crosses into C: it is kept for the next apply, the context is
// detached (the callback stops calling in) and the answer is no for an ask, yes for a computed
// tensor. t is a struct ggml_tensor * owned by ggml.
//
//export kfgo_llama_eval
func kfgo_llama_eval(h C.uintptr_t, t unsafe.Pointer, ask C.int) C.int {
	return boolInt(llamaEval(uintptr(h), t, ask != 0))
}

// llamaEval is kfgo_llama_eval with Go types: whether the node t is wanted (ask) or, for a
// computed tensor, whether the graph's computation goes on (always).
func llamaEval(h uintptr, t unsafe.Pointer, ask bool) (want bool) {
	var b *llamaBinding
	defer func() {
		if r := recover(); r != nil {
			msg := panicMessage(r, 1)
			if b != nil {
				b.panic.CompareAndSwap(nil, &msg)
			}
			C.kf_llama_set_attached(C.uintptr_t(h), nil)
			want = !ask
		}
	}()
	c := lookup(h)
	if c == nil {
		return !ask
	}
	if b = c.llama.Load(); b == nil || b.panic.Load() != nil {
		return !ask
	}
	b.evals.Add(1)
	return b.adapter.Eval(llama.TensorAt(t), ask) || !ask
}

// panicMessage describes a recovered panic with the first frame outside the runtime; frames is
// the number of this package's frames between panicMessage and the panic (the deferred function
// that recovered, and any caller in between).
func panicMessage(r any, frames int) string {
	where := ""
	pcs := make([]uintptr, 32)
	stack := runtime.CallersFrames(pcs[:runtime.Callers(2+frames, pcs)])
	for {
		f, more := stack.Next()
		if f.Function != "" && !strings.HasPrefix(f.Function, "runtime.") {
			where = fmt.Sprintf(" (at %s, %s:%d)", f.Function, f.File, f.Line)
			break
		}
		if !more {
			break
		}
	}
	return fmt.Sprintf("panic: %v%s", r, where)
}

// binding returns c's attachment, or an error naming the call.
func (c *context) binding() (*llamaBinding, error) {
	b := c.llama.Load()
	if b == nil {
		return nil, invalid("not attached to a llama.cpp context: call keyformer_llama_attach first")
	}
	return b, nil
}

//export kfgo_llama_check
func kfgo_llama_check(h C.uintptr_t, name *C.char) C.keyformer_status {
	return call(C.GoString(name), uintptr(h), func(*context) error { return nil })
}

//export kfgo_llama_fail
func kfgo_llama_fail(h C.uintptr_t, name, msg *C.char) C.keyformer_status {
	return call(C.GoString(name), uintptr(h), func(*context) error {
		return fail(statusInternal, "%s", C.GoString(msg))
	})
}

//export kfgo_llama_set_batch
func kfgo_llama_set_batch(h C.uintptr_t, seqs *C.int32_t, n C.int32_t) C.keyformer_status {
	return call("keyformer_llama_set_batch", uintptr(h), func(c *context) error {
		switch {
		case n < 0:
			return invalid("n is negative (%d)", n)
		case n > 0 && seqs == nil:
			return invalid("seq_of_token is NULL")
		}
		b, err := c.binding()
		if err != nil {
			return err
		}
		if err := b.adapter.SetBatch(int32s(seqs, n)); err != nil { // copied
			return invalid("%v", err)
		}
		return nil
	})
}

//export kfgo_llama_apply
func kfgo_llama_apply(h C.uintptr_t, seq C.int32_t, nOut *C.int32_t) C.keyformer_status {
	n, st := llamaApply(uintptr(h), int32(seq))
	if nOut != nil {
		*nOut = C.int32_t(n)
	}
	return st
}

// llamaApply is kfgo_llama_apply with Go types: the cells evicted from sequence seq, and the status.
func llamaApply(h uintptr, seq int32) (n int32, st C.keyformer_status) {
	st = call("keyformer_llama_apply", h, func(c *context) error {
		b, err := c.liveBinding()
		if err != nil {
			return err
		}
		if b.evals.Load() == 0 {
			return invalid("no graph went through keyformer_llama_eval_callback with this context as user_data: " +
				"set cparams.cb_eval = keyformer_llama_eval_callback and cparams.cb_eval_user_data = this " +
				"keyformer_context before llama_init_from_model (or llama_decode failed: apply only after a successful decode; " +
				"or the graph has none of the nodes keyformer reads: " + llama.NodePositions + " (ROPE), " + llama.NodeCells +
				" (SET_ROWS), " + llama.NodeAttention + "-<layer>, whose names differ in this llama.cpp)")
		}
		evicted, err := b.adapter.Apply(seq)
		n = int32(evicted)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, adapter.ErrNoAttention), errors.Is(err, adapter.ErrUnsupportedMemory):
			return fail(statusUnsupported, "%v", err)
		}
		return err
	})
	return n, st
}

//export kfgo_llama_restore
func kfgo_llama_restore(h C.uintptr_t, seq C.int32_t, buf *C.uint8_t, size C.size_t) C.keyformer_status {
	return call("keyformer_llama_restore", uintptr(h), func(c *context) error {
		switch {
		case size > 0 && buf == nil:
			return invalid("state is NULL")
		case uint64(size) > maxStateBytes:
			return fail(statusInvalidState, "a state of %d bytes is larger than any state can be", uint64(size))
		}
		b, err := c.binding()
		if err != nil {
			return err
		}
		if _, err := c.sequence(seq); err != nil { // validates the id
			return err
		}
		var data []byte
		if size > 0 {
			data = append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(size))...) // copied
		}
		if err := b.adapter.RestoreSequence(int32(seq), data); err != nil {
			switch {
			case errors.Is(err, keyformer.ErrInvalidState):
				return err
			case errors.Is(err, adapter.ErrRestoreBesideOthers), errors.Is(err, adapter.ErrRestorePerStream):
				return fail(statusUnsupported, "%v", err)
			}
			return fail(statusInvalidState, "%v", err)
		}
		return nil
	})
}

// liveBinding returns c's attachment, or an error: not attached, or a panic was recovered inside
// the eval callback, after which the context is detached (the adapter may hold its lock: it is
// never used again).
func (c *context) liveBinding() (*llamaBinding, error) {
	b, err := c.binding()
	if err != nil {
		return nil, err
	}
	if p := b.panic.Load(); p != nil {
		c.llama.CompareAndSwap(b, nil)
		return nil, fail(statusInternal, "internal error in keyformer_llama_eval_callback: %s; please report this bug. "+
			"The context is now detached: attach it again and reset its sequences", *p)
	}
	return b, nil
}

// llamaEdit runs a mirror of the host's own llama_memory_* edit on c's adapter: an argument the
// adapter refuses is KEYFORMER_ERR_INVALID_ARGUMENT, an edit the tracker cannot follow
// (keyformer.ErrPositionConflict) KEYFORMER_ERR_UNSUPPORTED.
func llamaEdit(name string, h C.uintptr_t, edit func(*adapter.Adapter) error) C.keyformer_status {
	return call(name, uintptr(h), func(c *context) error {
		b, err := c.liveBinding()
		if err != nil {
			return err
		}
		if err := edit(b.adapter); err != nil {
			if errors.Is(err, keyformer.ErrPositionConflict) {
				return fail(statusUnsupported, "%v", err)
			}
			return invalid("%v", err)
		}
		return nil
	})
}

//export kfgo_llama_seq_rm
func kfgo_llama_seq_rm(h C.uintptr_t, seq, p0, p1 C.int32_t) C.keyformer_status {
	return llamaEdit("keyformer_llama_seq_rm", h, func(a *adapter.Adapter) error {
		return a.SeqRm(int32(seq), int32(p0), int32(p1))
	})
}

//export kfgo_llama_seq_add
func kfgo_llama_seq_add(h C.uintptr_t, seq, p0, p1, delta C.int32_t) C.keyformer_status {
	return llamaEdit("keyformer_llama_seq_add", h, func(a *adapter.Adapter) error {
		return a.SeqAdd(int32(seq), int32(p0), int32(p1), int32(delta))
	})
}

//export kfgo_llama_seq_cp
func kfgo_llama_seq_cp(h C.uintptr_t, src, dst, p0, p1 C.int32_t) C.keyformer_status {
	return llamaEdit("keyformer_llama_seq_cp", h, func(a *adapter.Adapter) error {
		return a.SeqCp(int32(src), int32(dst), int32(p0), int32(p1))
	})
}

//export kfgo_llama_seq_keep
func kfgo_llama_seq_keep(h C.uintptr_t, seq C.int32_t) C.keyformer_status {
	return llamaEdit("keyformer_llama_seq_keep", h, func(a *adapter.Adapter) error { return a.SeqKeep(int32(seq)) })
}

//export kfgo_llama_clear
func kfgo_llama_clear(h C.uintptr_t) C.keyformer_status {
	return llamaEdit("keyformer_llama_clear", h, (*adapter.Adapter).Clear)
}

//export kfgo_llama_sync
func kfgo_llama_sync(h C.uintptr_t, seq C.int32_t) C.keyformer_status {
	return llamaEdit("keyformer_llama_sync", h, func(a *adapter.Adapter) error { return a.Sync(int32(seq)) })
}
