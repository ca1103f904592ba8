//go:build linux || darwin

// Package adapter connects a keyformer.Tracker to a llama.cpp context: from llama.cpp's eval
// callback it reads where each new token landed (attn_inp_k_idxs, inp_pos) and every layer's
// attention probabilities (kq_soft_max-<layer>), feeds them to the tracker per layer and ubatch,
// and after each llama_decode frees the planned cells with llama_memory_seq_rm.
//
// It serves Go programs (through bindings/llama's purego eval callback) and C hosts (through the
// C ABI's eval callback in capi/) alike. It needs a unified KV cache (one stream), flash attention
// off (no attention matrix exists otherwise) and a memory that can remove single positions (not
// sliding-window, recurrent or hybrid).
package adapter

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// Graph node names of llama.cpp v0.5.0 (llama-graph.cpp) the adapter reads.
const (
	nodePositions = "Kcur-0"            // ROPE of layer 0: src[1] = inp_pos (int32)
	nodeCells     = "cache_k_l0 (view)" // SET_ROWS into layer 0's K cache: src[1] = k_idxs (int64)
	nodeAttention = "kq_soft_max"       // -<layer>: f32 [n_kv, n_tokens, n_head, n_stream]
)

// DefaultSequence is the sequence of every token when the host does not call SetBatch.
const DefaultSequence = 0

var (
	// ErrNoAttention reports a decode in which no attention tensor was seen.
	ErrNoAttention = errors.New("no attention tensor (kq_soft_max) was seen during the decode: " +
		"create the llama.cpp context with flash attention disabled (flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED)")
	// ErrUnsupportedMemory reports a memory that refuses to remove single positions.
	ErrUnsupportedMemory = errors.New("llama_memory_seq_rm refused to remove a position: the model's memory " +
		"(sliding-window, recurrent or hybrid) is unsupported")
)

// Options tune an Adapter.
type Options struct {
	// CompactPositions renumbers the kept tokens 0..n-1 after each eviction with
	// llama_memory_seq_add (StreamingLLM-style), for documents longer than the model's trained
	// context; the host must then take the next position from llama_memory_seq_pos_max + 1. By
	// default survivors keep their original positions (the paper's choice).
	CompactPositions bool
	// Probe, if set, also sees every attention tensor the adapter reads, whole (every row of the
	// ubatch, whatever its sequence): measurements such as keyformer.Concentration.
	Probe Probe
}

// Probe is something that measures attention beside the tracker.
type Probe interface {
	ObserveAttention(layer int, a keyformer.Attention) error
}

// Stats counts what an Adapter did.
type Stats struct {
	Observations int           // layer x ubatch x sequence-run observations
	ObserveTime  time.Duration // time spent reading and scoring attention inside the callback
	Evicted      int           // cells freed
	PeakCells    int           // most cells any one sequence held (after adding a ubatch, before evicting)
}

// Adapter drives one llama.cpp context. Eval runs on the thread that calls llama_decode; Apply,
// SetBatch and Stats must not run concurrently with a decode of the same context.
type Adapter struct {
	lib       *llama.Lib
	tracker   *keyformer.Tracker
	observers []*keyformer.Tracker // see SetObservers
	opts      Options
	mem       uintptr // the attached context's llama_memory_t

	mu        sync.Mutex
	batch     []int32 // sequence of each token of the current llama_decode; nil: DefaultSequence
	batchOff  int     // batch tokens consumed by earlier ubatches of this decode
	positions []int32 // the current ubatch's positions, set at its Kcur-0 ask
	cells     []int32 // the current ubatch's cells, set at its cache_k_l0 ask
	rowSeq    []int32 // sequence of each row of the current ubatch, once its cells are added
	unseen    int     // ubatches since the last Apply whose inputs were read but attention never seen
	err       error   // first error inside the callback since the last Apply
	buf       []float32
	evictions []keyformer.Eviction
	stats     Stats
}

// New returns an adapter feeding tracker (which must use Shared granularity: llama.cpp frees
// whole cells) from the llama.cpp runtime lib.
func New(lib *llama.Lib, tracker *keyformer.Tracker, opts Options) (*Adapter, error) {
	if g := tracker.Config().Granularity; g != keyformer.Shared {
		return nil, fmt.Errorf("adapter: granularity %s: llama.cpp frees whole cells, use shared", g)
	}
	return &Adapter{lib: lib, tracker: tracker, opts: opts}, nil
}

// Attach binds the adapter to the llama_context ctx (created with the adapter's eval callback).
func (a *Adapter) Attach(ctx uintptr) error {
	if ctx == 0 {
		return errors.New("adapter: attach: llama_context is NULL")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mem = a.lib.GetMemory(ctx)
	if a.mem == 0 {
		return errors.New("adapter: attach: the context has no memory (llama_get_memory returned NULL)")
	}
	return nil
}

// Tracker returns the tracker the adapter feeds.
func (a *Adapter) Tracker() *keyformer.Tracker { return a.tracker }

// SetObservers makes trackers see every cell and attention the adapter's tracker sees from now on,
// without their plans ever being applied: several policies score one reading of a prompt (each
// observer's Sequence state can then be restored into an adapter of its own). Observers must
// have the tracker's shape, and they only stay consistent while nothing is evicted: use them
// under a tracker of policy full, or while a prompt is read whole. No trackers removes them.
func (a *Adapter) SetObservers(trackers ...*keyformer.Tracker) error {
	for i, t := range trackers {
		if got, want := t.Config().Shape, a.tracker.Config().Shape; got != want {
			return fmt.Errorf("adapter: observer %d has shape %+v, the tracker %+v", i, got, want)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.observers = slices.Clone(trackers)
	return nil
}

// Stats returns the counters so far.
func (a *Adapter) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

// SetBatch declares the sequence of each token of the next llama_decode, in batch order (one id
// per token; llama.cpp's unified cache splits batches into ubatches in order). Without it every
// token belongs to DefaultSequence. The declaration holds for one decode; an empty one clears it.
func (a *Adapter) SetBatch(seqs []int32) error {
	for i, s := range seqs {
		if s < 0 {
			return fmt.Errorf("adapter: batch token %d has sequence %d", i, s)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.batch, a.batchOff = nil, 0
	if len(seqs) > 0 {
		a.batch = append(a.batch[:0:0], seqs...)
	}
	return nil
}

// wants reports whether the eval callback should answer true for t (see Eval).
func wants(t llama.Tensor) bool {
	_, ok := t.NameLayer(nodeAttention)
	return ok
}

// Eval is the body of the eval callback (ggml_backend_sched_eval_callback) for this adapter.
// Asked about a node, it reads the ubatch's positions and cells from their nodes' inputs and
// answers true for the attention tensors only; called again with a computed attention tensor, it
// scores it. It never returns false for a computed tensor, and keeps the first error for Apply.
func (a *Adapter) Eval(t llama.Tensor, ask bool) bool {
	if ask {
		switch {
		case wants(t):
			return true
		case t.Op() == llama.OpRope && t.NameIs(nodePositions):
			a.readUbatchInput(t, true)
		case t.Op() == llama.OpSetRows && t.NameIs(nodeCells): // a VIEW node has the same name
			a.readUbatchInput(t, false)
		}
		return false
	}
	if layer, ok := t.NameLayer(nodeAttention); ok {
		a.mu.Lock()
		defer a.mu.Unlock()
		if err := a.observe(layer, t); err != nil {
			a.fail(fmt.Errorf("adapter: layer %d: %w", layer, err))
		}
	}
	return true
}

// readUbatchInput reads the positions (at Kcur-0, which starts a ubatch) or the cells (at
// cache_k_l0) of the ubatch's tokens from the node's src[1].
func (a *Adapter) readUbatchInput(t llama.Tensor, positions bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if positions {
		a.positions = a.readInput(t.Src(1), a.positions[:0], "positions (inp_pos)")
		a.rowSeq = a.rowSeq[:0]
		a.unseen++
		return
	}
	a.cells = a.readInput(t.Src(1), a.cells[:0], "cells (attn_inp_k_idxs)")
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

// observe adds the ubatch's new cells to their sequences on the first layer, then scores the
// attention of layer for every run of rows that belong to one sequence (a.mu held).
func (a *Adapter) observe(layer int, t llama.Tensor) error {
	start := time.Now()
	nKV, nTok, nHead, nStream := int(t.Ne(0)), int(t.Ne(1)), int(t.Ne(2)), int(t.Ne(3))
	if nStream != 1 {
		return fmt.Errorf("%d KV streams: keyformer needs a unified KV cache (kv_unified = true, or n_seq_max = 1)", nStream)
	}
	if t.Type() != llama.TypeF32 || !t.IsContiguous() {
		return fmt.Errorf("attention tensor is not contiguous f32")
	}
	if len(a.rowSeq) == 0 {
		if err := a.addUbatch(nTok); err != nil {
			return err
		}
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

// forEachRun calls fn for every run [r0, r1) of consecutive ubatch rows that belong to one
// sequence, with that sequence of the tracker and then of each observer (a.mu held); errors name
// the sequence.
func (a *Adapter) forEachRun(fn func(seq *keyformer.Sequence, r0, r1 int) error) error {
	for r0 := 0; r0 < len(a.rowSeq); {
		r1 := r0 + 1
		for r1 < len(a.rowSeq) && a.rowSeq[r1] == a.rowSeq[r0] {
			r1++
		}
		for i := -1; i < len(a.observers); i++ {
			tr, who := a.tracker, ""
			if i >= 0 {
				tr, who = a.observers[i], fmt.Sprintf("observer %d: ", i)
			}
			seq, err := tr.Sequence(a.rowSeq[r0])
			if err == nil {
				err = fn(seq, r0, r1)
			}
			if err != nil {
				return fmt.Errorf("%ssequence %d: %w", who, a.rowSeq[r0], err)
			}
		}
		r0 = r1
	}
	return nil
}

// addUbatch assigns the ubatch's n tokens to sequences and adds their cells (a.mu held).
func (a *Adapter) addUbatch(n int) error {
	if len(a.cells) != n || len(a.positions) < n {
		return fmt.Errorf("ubatch of %d tokens, but %d cells and %d positions were read (graph layout changed?)",
			n, len(a.cells), len(a.positions))
	}
	if a.batch != nil && a.batchOff+n > len(a.batch) {
		return fmt.Errorf("the decode has more tokens than the %d declared with SetBatch", len(a.batch))
	}
	for i := range n {
		s := int32(DefaultSequence)
		if a.batch != nil {
			s = a.batch[a.batchOff+i]
		}
		a.rowSeq = append(a.rowSeq, s)
	}
	a.batchOff += n
	return a.forEachRun(func(seq *keyformer.Sequence, r0, r1 int) error {
		if err := seq.AddCells(a.cells[r0:r1], a.positions[r0:r1]); err != nil {
			return err
		}
		a.stats.PeakCells = max(a.stats.PeakCells, seq.Len())
		return nil
	})
}

// Apply finishes a llama_decode for sequence seq: it reports an error the callback met, or a
// ubatch whose attention was never shown (flash attention on), then frees the cells the
// tracker plans to evict (llama_memory_seq_rm) and forgets them. It returns the number of cells
// freed. Call it after every llama_decode, for every sequence the decode touched.
func (a *Adapter) Apply(seq int32) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mem == 0 {
		return 0, errors.New("adapter: apply before attach")
	}
	a.batch, a.batchOff = nil, 0
	unseen := a.unseen
	a.unseen = 0
	if err := a.err; err != nil {
		a.err = nil
		return 0, err
	}
	if unseen > 0 {
		return 0, fmt.Errorf("adapter: sequence %d: %w", seq, ErrNoAttention)
	}
	s, err := a.tracker.Sequence(seq)
	if err != nil {
		return 0, fmt.Errorf("adapter: %w", err)
	}
	a.evictions, err = s.Plan(a.evictions[:0])
	if err != nil {
		return 0, fmt.Errorf("adapter: sequence %d: %w", seq, err)
	}
	for i, e := range a.evictions {
		p, _ := s.Position(e.Cell)
		if !a.lib.MemorySeqRm(a.mem, seq, p, p+1) {
			if ferr := s.Forget(a.evictions[:i]); ferr != nil {
				return i, fmt.Errorf("adapter: sequence %d: %w (and %w)", seq, ErrUnsupportedMemory, ferr)
			}
			return i, fmt.Errorf("adapter: sequence %d: %w", seq, ErrUnsupportedMemory)
		}
	}
	if err := s.Forget(a.evictions); err != nil {
		return 0, fmt.Errorf("adapter: sequence %d: %w", seq, err)
	}
	a.stats.Evicted += len(a.evictions)
	if a.opts.CompactPositions && len(a.evictions) > 0 {
		if err := a.compact(seq, s); err != nil {
			return len(a.evictions), err
		}
	}
	return len(a.evictions), nil
}

// compact renumbers the sequence's tokens 0..n-1, shifting each run of consecutive positions
// down with one llama_memory_seq_add and the same shift in the tracker (a.mu held).
func (a *Adapter) compact(id int32, s *keyformer.Sequence) error {
	if !a.lib.MemoryCanShift(a.mem) {
		return fmt.Errorf("adapter: sequence %d: position compaction needs a memory that can shift (llama_memory_can_shift)", id)
	}
	toks := s.Tokens()
	for i := 0; i < len(toks); {
		j := i + 1
		for j < len(toks) && toks[j].Pos == toks[j-1].Pos+1 {
			j++
		}
		if delta := int32(i) - toks[i].Pos; delta != 0 {
			p0, p1 := toks[i].Pos, toks[j-1].Pos+1
			a.lib.MemorySeqAdd(a.mem, id, p0, p1, delta)
			if err := s.ShiftPositions(p0, p1, delta); err != nil {
				return fmt.Errorf("adapter: sequence %d: %w", id, err)
			}
		}
		i = j
	}
	return nil
}

// RestoreSequence restores sequence id's tracker state (keyformer.Sequence.MarshalBinary, saved
// together with llama_state_seq_get_data) right after the host restored llama.cpp's state of the
// sequence with llama_state_seq_set_data. llama.cpp packs a restored sequence into free cells
// in the saved (cell) order, lowest first when its search starts at the lowest free cell: true in a
// fresh context and in one whose only sequence was the one restored. The tracker's cells are
// renamed accordingly and the positions llama.cpp reports are checked against the tracker's.
func (a *Adapter) RestoreSequence(id int32, state []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mem == 0 {
		return errors.New("adapter: restore before attach")
	}
	seq, err := a.tracker.Sequence(id)
	if err != nil {
		return fmt.Errorf("adapter: %w", err)
	}
	if err := seq.UnmarshalBinary(state); err != nil {
		return fmt.Errorf("adapter: %w", err)
	}
	toks := seq.Tokens()
	if len(toks) == 0 {
		return nil
	}
	held := map[int32]bool{}
	for _, other := range a.tracker.IDs() {
		if other == id {
			continue
		}
		s, _ := a.tracker.Sequence(other)
		for _, t := range s.Tokens() {
			held[t.Cell] = true
		}
	}
	from := cellsSorted(toks)
	to := make([]int32, 0, len(from))
	for c := int32(0); len(to) < len(from); c++ {
		if !held[c] {
			to = append(to, c)
		}
	}
	if err := seq.MoveCells(from, to); err != nil {
		return fmt.Errorf("adapter: sequence %d: %w", id, err)
	}
	lo, hi := a.lib.MemorySeqPosMin(a.mem, id), a.lib.MemorySeqPosMax(a.mem, id)
	if lo != toks[0].Pos || hi != toks[len(toks)-1].Pos {
		seq.Reset()
		return fmt.Errorf("adapter: sequence %d: llama.cpp holds positions [%d, %d], the saved state [%d, %d]: restore the llama.cpp state of the same moment first",
			id, lo, hi, toks[0].Pos, toks[len(toks)-1].Pos)
	}
	return nil
}

// cellsSorted returns the tokens' cells in increasing order.
func cellsSorted(toks []keyformer.Token) []int32 {
	cells := make([]int32, len(toks))
	for i, t := range toks {
		cells[i] = t.Cell
	}
	slices.Sort(cells)
	return cells
}
