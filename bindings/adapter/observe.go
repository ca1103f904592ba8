//go:build linux || darwin

package adapter

// Scoring a computed attention tensor: each run of rows of one sequence goes to that sequence of
// the tracker and of every observer, the whole tensor to the probe.

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// observe scores the attention of layer for every run of rows that belong to one sequence whose
// schedule wants it (a.mu held).
func (a *Adapter) observe(layer int, t llama.Tensor) error {
	start := time.Now()
	nKV, nTok, nHead, nStream := int(t.Ne(0)), int(t.Ne(1)), int(t.Ne(2)), int(t.Ne(3))
	if nStream != 1 {
		return fmt.Errorf("%d KV streams: keyformer needs a unified KV cache (kv_unified = true, or n_seq_max = 1)", nStream)
	}
	if t.Type() != llama.TypeF32 || !t.IsContiguous() {
		return fmt.Errorf("attention tensor is not contiguous f32")
	}
	if a.pending {
		a.pending = false
		a.unseen--
	}
	if len(a.rowSeq) != nTok {
		return fmt.Errorf("attention has %d rows, the ubatch %d tokens", nTok, len(a.rowSeq))
	}
	data := a.lib.F32View(t)
	if data == nil {
		n := nKV * nTok * nHead
		if cap(a.buf) < n {
			a.buf = make([]float32, n)
		}
		data = a.buf[:n]
		a.lib.TensorRead(t, unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), 4*n), 0)
	}
	err := a.forEachRun(func(seq *keyformer.Sequence, r0, r1 int) error {
		if !seq.WantsAttention(r1 - r0) {
			return nil
		}
		a.stats.Observations++
		return seq.ObserveAttention(layer, keyformer.Attention{
			Data: data[r0*nKV:], Rows: r1 - r0, Heads: nHead, Cols: nKV,
			RowStride: nKV, HeadStride: nKV * nTok,
		})
	})
	if err == nil && a.opts.Probe != nil {
		err = a.opts.Probe.ObserveAttention(layer, keyformer.Attention{
			Data: data, Rows: nTok, Heads: nHead, Cols: nKV, RowStride: nKV, HeadStride: nKV * nTok})
	}
	a.stats.ObserveTime += time.Since(start)
	return err
}
