//go:build linux || darwin

package adapter

// Scoring a computed attention tensor: each run of rows of one sequence goes to that sequence of
// the tracker and of every observer, the whole tensor to the probe.

import (
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// observe scores the attention of layer for every run of rows that belong to one sequence whose
// schedule wants it (a.mu held).
func (a *Adapter) observe(layer int, t llama.Tensor) error {
	start := time.Now()
	nKV, nTps, nHead, nStream := int(t.Ne(0)), int(t.Ne(1)), int(t.Ne(2)), int(t.Ne(3))
	if t.Type() != llama.TypeF32 || !t.IsContiguous() {
		return fmt.Errorf("attention tensor is not contiguous f32")
	}
	if a.pending {
		a.pending = false
		a.unseen--
	}
	if len(a.rowSeq) != nTps*nStream || nStream > 1 && a.kvSize == 0 || a.kvSize > 0 && nKV > int(a.kvSize) {
		return fmt.Errorf("attention of %d rows in %d streams over %d cells; the ubatch has %d tokens, the cache %d cells per stream",
			nTps, nStream, nKV, len(a.rowSeq), a.kvSize)
	}
	data := a.lib.F32View(t)
	if data == nil {
		n := nKV * nTps * nHead * nStream
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
		return seq.ObserveAttention(layer, a.attentionRows(data, r0, r1, nKV, nTps, nHead))
	})
	for s := 0; s < nStream && err == nil && a.opts.Probe != nil; s++ {
		err = a.opts.Probe.ObserveAttention(layer, a.attentionRows(data, s*nTps, (s+1)*nTps, nKV, nTps, nHead))
	}
	a.stats.ObserveTime += time.Since(start)
	return err
}

// attentionRows returns the attention of the ubatch's rows [r0, r1), all of one stream, in data,
// an attention tensor [nKV, nTps, nHead, streams]: stream s holds rows s*nTps, ... and its column
// j is cell j of its stream, which is cell j in a unified cache (a.mu held).
func (a *Adapter) attentionRows(data []float32, r0, r1, nKV, nTps, nHead int) keyformer.Attention {
	s := r0 / nTps
	at := keyformer.Attention{Data: data[(s*nHead*nTps+r0-s*nTps)*nKV:], Rows: r1 - r0, Heads: nHead, Cols: nKV,
		RowStride: nKV, HeadStride: nKV * nTps}
	if a.kvSize > 0 {
		first := a.cells[r0] / a.kvSize * a.kvSize
		at.Cells = a.cellIDs[first : int(first)+nKV]
	}
	return at
}

// observeKeys scores layer's keys for every run of rows that belong to one sequence whose
// schedule wants them; layer 0's are kept for the ubatch's cells (a.mu held).
func (a *Adapter) observeKeys(layer int, t llama.Tensor) error {
	start := time.Now()
	defer func() { a.stats.ObserveTime += time.Since(start) }()
	dim, heads, nTok := int(t.Ne(0)), int(t.Ne(1)), int(t.Ne(2))
	if t.Type() != llama.TypeF32 || dim < 1 || heads < 1 || nTok < 1 || t.Ne(3) != 1 || t.Nb(0) != 4 || t.Nb(1)%4 != 0 || t.Nb(2)%4 != 0 {
		return fmt.Errorf("keys tensor (%s-%d) is not 3-d f32 with each head's values consecutive", llama.NodeKeys, layer)
	}
	headStride, rowStride := int(t.Nb(1)/4), int(t.Nb(2)/4) // a fused QKV projection's view: rows strided
	data := a.lib.F32View(t)
	aliased := data != nil // ggml's memory, valid during this call only
	if !aliased {
		// strided, or not in host memory: copy the span from the first value to the last
		data = make([]float32, (nTok-1)*rowStride+(heads-1)*headStride+dim)
		a.lib.TensorRead(t, unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), 4*len(data)), 0)
	}
	k := keyformer.Keys{Data: data, Rows: nTok, Heads: heads, Dim: dim, RowStride: rowStride, HeadStride: headStride}
	if layer == 0 {
		if aliased {
			k.Data = slices.Clone(data)
		}
		a.key0 = &k
		return nil
	}
	return a.scoreKeys(layer, &k)
}

// scoreKeys feeds k, the keys of the current ubatch's rows, to each run's sequence (a.mu held).
func (a *Adapter) scoreKeys(layer int, k *keyformer.Keys) error {
	if !a.read {
		return nil
	}
	if k.Rows != len(a.rowSeq) {
		return fmt.Errorf("keys of %d tokens, the ubatch has %d", k.Rows, len(a.rowSeq))
	}
	if a.pending {
		a.pending = false
		a.unseen--
	}
	a.keysSeen++
	return a.forEachRun(func(seq *keyformer.Sequence, r0, r1 int) error {
		if !seq.WantsAttention(r1 - r0) {
			return nil
		}
		a.stats.Observations++
		run := *k
		run.Data, run.Rows = k.Data[r0*k.RowStride:], r1-r0
		return seq.ObserveKeys(layer, run)
	})
}
