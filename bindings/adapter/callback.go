//go:build linux || darwin

package adapter

// The eval callback: which graph nodes the adapter asks llama.cpp for, and reading a ubatch's
// positions and cells from their nodes' inputs.

import (
	"fmt"
	"unsafe"

	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// wants reports whether the eval callback should answer true for layer's attention tensor: a
// layer the schedule reads, in a ubatch whose attention is read. Every ubatch must have shown its
// inputs by layer 0's attention; if not, the graph's layout is not the one the adapter knows.
func (a *Adapter) wants(layer int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if layer == 0 {
		if !a.fresh {
			a.fail(fmt.Errorf("adapter: layer 0's attention (%s-0) came before the ubatch's positions (node %q, op ROPE) and cells (node %q, op SET_ROWS) were read: "+
				"the graph's node names or layout differ from llama.cpp "+llama.PinnedLlamaCpp+"'s (bindings/llama/internals.go)", llama.NodeAttention, llama.NodePositions, llama.NodeCells))
		}
		a.fresh = false
	}
	want := a.reads(layer)
	if want {
		a.stats.Reads++
	}
	return want
}

// wantsKeys reports whether the eval callback should answer true for layer's keys: the policy
// reads keys and the schedule reads the layer, in a ubatch whose keys are read. Layer 0's keys
// come before the ubatch's positions and cells, so they are asked for whenever the schedule
// reads layer 0, and kept until the cells say whether the ubatch is read.
func (a *Adapter) wantsKeys(layer int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.keys || layer >= len(a.layers) || !a.layers[layer] || layer > 0 && !a.read {
		return false
	}
	a.stats.Reads++
	return true
}

// reads reports whether the current ubatch's attention of layer is read: the ubatch is read, the
// policy reads attention and the schedule reads the layer (a.mu held).
func (a *Adapter) reads(layer int) bool {
	return a.read && !a.keys && layer < len(a.layers) && a.layers[layer]
}

// Nodes are the name prefixes of the graph nodes Eval answers or reads (llama.ContextOptions's
// EvalNodes): the attention tensors, the positions' node (or, for a policy that reads keys, every
// keys tensor, the positions' node among them) and the cells' node. Eval answers false to asks
// about any other node, so a context given these prefixes asks Go about these alone.
func (a *Adapter) Nodes() []string {
	if a.keys {
		return []string{llama.NodeAttention, llama.NodeKeys, llama.NodeCells}
	}
	return []string{llama.NodeAttention, llama.NodePositions, llama.NodeCells}
}

// Eval is the body of the eval callback (ggml_backend_sched_eval_callback) for this adapter.
// Asked about a node, it reads the ubatch's positions and cells from their nodes' inputs (adding
// the cells to their sequences) and answers true only for the attention tensors the schedule
// reads; called again with a computed attention tensor, it scores it. It never returns false for
// a computed tensor, and keeps the first error for Apply.
func (a *Adapter) Eval(t llama.Tensor, ask bool) bool {
	layer, attention := t.NameLayer(llama.NodeAttention)
	keyLayer, keys := 0, false
	if !attention && a.keys && a.lib.Ops.IsKeys(t.Op()) { // a.keys is fixed at New
		keyLayer, keys = t.NameLayer(llama.NodeKeys)
	}
	if ask {
		a.asked = true
		switch {
		case attention:
			return a.wants(layer)
		case keys:
			return a.wantsKeys(keyLayer)
		case t.Op() == a.lib.Ops.Rope && t.NameIs(llama.NodePositions):
			a.readUbatchInput(t, true)
		case t.Op() == a.lib.Ops.SetRows && t.HasPrefix(llama.NodeCells): // a VIEW node has the same name
			a.readUbatchInput(t, false)
		}
		return false
	}
	if keys {
		a.mu.Lock()
		defer a.mu.Unlock()
		if keyLayer < len(a.layers) && a.layers[keyLayer] {
			if err := a.observeKeys(keyLayer, t); err != nil {
				a.fail(fmt.Errorf("adapter: layer %d: %w", keyLayer, err))
			}
		}
		return true
	}
	if attention {
		a.mu.Lock()
		defer a.mu.Unlock()
		if !a.reads(layer) {
			return true // a tensor only a chained host callback asked for
		}
		if err := a.observe(layer, t); err != nil {
			a.fail(fmt.Errorf("adapter: layer %d: %w", layer, err))
		}
	}
	return true
}

// readUbatchInput reads the positions (at llama.NodePositions, which starts a ubatch) or the cells
// (at llama.NodeCells, which follows it) of the ubatch's tokens from the node's src[1]; with the
// cells it adds the ubatch to its sequences and decides whether its attention is read.
func (a *Adapter) readUbatchInput(t llama.Tensor, positions bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if positions {
		a.checkKeysSeen()
		a.positions = a.readInput(t.Src(1), a.positions[:0], "positions (inp_pos, src[1] of "+llama.NodePositions+")")
		a.rowSeq, a.read, a.pending, a.keysSeen = a.rowSeq[:0], false, false, 0
		return
	}
	a.cells = a.readInput(t.Src(1), a.cells[:0], "cells (attn_inp_k_idxs, src[1] of "+llama.NodeCells+")")
	a.fresh, a.inputs = true, true
	if err := a.addUbatch(len(a.cells)); err != nil {
		a.fail(fmt.Errorf("adapter: %w", err))
		return
	}
	err := a.forEachRun(func(seq *keyformer.Sequence, r0, r1 int) error {
		a.read = a.read || seq.WantsAttention(r1-r0)
		return nil
	})
	if err != nil {
		a.fail(fmt.Errorf("adapter: %w", err))
		return
	}
	a.pending = a.read
	if a.read {
		a.unseen++
	}
	if a.key0 != nil { // layer 0's keys, computed before the cells were known
		if err := a.scoreKeys(0, a.key0); err != nil {
			a.fail(fmt.Errorf("adapter: layer 0: %w", err))
		}
		a.key0 = nil
	}
}

// checkKeysSeen fails the decode when the ubatch just computed wanted keys of layers whose nodes
// it never showed (a.mu held): a graph whose key nodes are named otherwise than the pinned
// llama.cpp's. It resets the count.
func (a *Adapter) checkKeysSeen() {
	if a.keys && a.read && a.keysSeen > 0 && a.keysSeen != a.keyLayers {
		a.fail(fmt.Errorf("adapter: the ubatch showed the keys of %d of the %d layers the schedule reads (nodes %q-<layer>, op RESHAPE or VIEW): "+
			"the graph's node names or layout differ from llama.cpp "+llama.PinnedLlamaCpp+"'s (bindings/llama/internals.go)", a.keysSeen, a.keyLayers, llama.NodeKeys))
	}
	a.keysSeen = 0
}

// readInput appends the integer input tensor's values (int32 positions or int64 cell indices) to
// dst as int32.
func (a *Adapter) readInput(t llama.Tensor, dst []int32, what string) []int32 {
	if t.IsNil() {
		a.fail(fmt.Errorf("adapter: the graph has no %s input", what))
		return dst
	}
	n := int(t.Ne(0))
	switch t.Type() {
	case llama.TypeI32:
		if v := a.lib.I32View(t); v != nil {
			return append(dst, v[:n]...)
		}
		raw := make([]int32, n)
		a.lib.TensorRead(t, unsafe.Slice((*byte)(unsafe.Pointer(&raw[0])), 4*n), 0)
		return append(dst, raw...)
	case llama.TypeI64:
		v := a.lib.I64View(t)
		if v == nil {
			v = make([]int64, n)
			a.lib.TensorRead(t, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 8*n), 0)
		}
		for _, c := range v[:n] {
			dst = append(dst, int32(c))
		}
		return dst
	}
	a.fail(fmt.Errorf("adapter: %s has type %d, want int32 or int64", what, t.Type()))
	return dst
}

// fail keeps the first error of the decode (a.mu held).
func (a *Adapter) fail(err error) {
	if a.err == nil {
		a.err = err
	}
}
