//go:build linux || darwin

// Package adapter connects a keyformer.Tracker to a llama.cpp context: from llama.cpp's eval
// callback it reads where each new token landed (attn_inp_k_idxs, inp_pos) and the attention
// probabilities (kq_soft_max-<layer>; the node names and ops are bindings/llama's NodePositions,
// NodeCells, NodeAttention and Lib.Ops) of the layers and ubatches the tracker's schedule reads,
// feeds them to the tracker per layer and ubatch, and after each llama_decode frees the planned
// cells with llama_memory_seq_rm. A ubatch whose attention is not read asks llama.cpp for no
// tensor at all: the graph then runs as without the callback.
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

// DefaultSequence is the sequence of every token when the host does not call SetBatch.
const DefaultSequence = 0

var (
	// ErrNoAttention reports a decode in which no attention tensor was seen.
	ErrNoAttention = errors.New("no attention tensor (" + llama.NodeAttention + "-<layer>) was seen during the decode: " +
		"create the llama.cpp context with flash attention disabled (flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED)")
	// ErrUnsupportedMemory reports a memory that refuses to remove single positions.
	ErrUnsupportedMemory = errors.New("llama_memory_seq_rm refused to remove a position: the model's memory " +
		"(sliding-window, recurrent or hybrid) is unsupported")
	// ErrRestoreBesideOthers: RestoreSequence refuses while other sequences hold cells, because
	// llama.cpp then places the restored cells from its own search position, which it does not
	// report.
	ErrRestoreBesideOthers = errors.New("restore while other sequences hold cells is unsupported: llama.cpp " +
		"places the restored cells where the plugin cannot see; restore into a context whose other sequences are empty")
)

// Options tune an Adapter.
type Options struct {
	// CompactPositions renumbers the kept tokens 0..n-1 with llama_memory_seq_add
	// (StreamingLLM-style), for documents longer than the model's trained context; the host must
	// then take the next position from llama_memory_seq_pos_max + 1. A renumbering makes llama.cpp
	// re-rotate the whole cache (K-shift) at the next decode, so it happens only once the
	// sequence's highest position reaches CompactAt (say the trained context less a ubatch), in
	// one step; with CompactAt 0, after every eviction. By default survivors keep their original
	// positions (the paper's choice).
	CompactPositions bool
	CompactAt        int32
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
	Reads        int           // attention tensors asked of llama.cpp (each costs a graph split)
	Observations int           // layer x ubatch x sequence-run observations
	ObserveTime  time.Duration // time spent reading and scoring attention inside the callback
	Evicted      int           // cells freed
	PeakCells    int           // most cells any one sequence held (after adding a ubatch, before evicting)
	Compactions  int           // renumberings of a sequence's positions (Options.CompactPositions)
}

// Adapter drives one llama.cpp context. Eval runs on the thread that calls llama_decode; Apply,
// SetBatch and Stats must not run concurrently with a decode of the same context.
type Adapter struct {
	lib       *llama.Lib
	tracker   *keyformer.Tracker
	observers []*keyformer.Tracker // see SetObservers
	opts      Options
	layers    []bool  // the layers whose attention the tracker's schedule reads
	mem       uintptr // the attached context's llama_memory_t

	mu        sync.Mutex
	batch     []int32 // sequence of each token of the current llama_decode; nil: DefaultSequence
	batchOff  int     // batch tokens consumed by earlier ubatches of this decode
	positions []int32 // the current ubatch's positions, set at its llama.NodePositions ask
	cells     []int32 // the current ubatch's cells, set at its llama.NodeCells ask
	rowSeq    []int32 // sequence of each row of the current ubatch, once its cells are added
	read      bool    // the current ubatch's attention is read (some sequence's schedule wants it)
	fresh     bool    // cells were read since layer 0's attention was last asked about
	asked     bool    // Eval was asked about a node since the last Apply
	inputs    bool    // a ubatch's cells were read since the last Apply
	pending   bool    // the current ubatch's attention is read but was not seen yet
	unseen    int     // ubatches since the last Apply whose attention was wanted but never seen
	err       error   // first error inside the callback since the last Apply
	buf       []float32
	evictions []keyformer.Eviction
	stats     Stats
}

// New returns an adapter feeding tracker (which must use Shared granularity: llama.cpp frees
// whole cells) from the llama.cpp runtime lib.
func New(lib *llama.Lib, tracker *keyformer.Tracker, opts Options) (*Adapter, error) {
	cfg := tracker.Config()
	if cfg.Granularity != keyformer.Shared {
		return nil, fmt.Errorf("adapter: granularity %s: llama.cpp frees whole cells, use shared", cfg.Granularity)
	}
	layers := make([]bool, cfg.Shape.Layers)
	for l := range layers {
		layers[l] = cfg.ObservesLayer(l)
	}
	return &Adapter{lib: lib, tracker: tracker, opts: opts, layers: layers}, nil
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

// SetObservers makes trackers see every cell the adapter's tracker sees from now on, and the
// attention their own schedules want of what the adapter reads, without their plans ever being
// applied: several policies score one reading of a prompt (each observer's Sequence state can
// then be restored into an adapter of its own). Observers must have the tracker's shape and read
// no layer the tracker does not, and they only stay consistent while nothing is evicted: use
// them under a tracker of policy full, or while a prompt is read whole. No trackers removes them.
func (a *Adapter) SetObservers(trackers ...*keyformer.Tracker) error {
	for i, t := range trackers {
		cfg := t.Config()
		if got, want := cfg.Shape, a.tracker.Config().Shape; got != want {
			return fmt.Errorf("adapter: observer %d has shape %+v, the tracker %+v", i, got, want)
		}
		for l, read := range a.layers {
			if cfg.ObservesLayer(l) && !read {
				return fmt.Errorf("adapter: observer %d reads layer %d, which the tracker's schedule skips", i, l)
			}
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

// wants reports whether the eval callback should answer true for layer's attention tensor: a
// layer the schedule reads, in a ubatch whose attention is read. Every ubatch must have shown its
// inputs by layer 0's attention; if not, the graph's layout is not the one the adapter knows.
func (a *Adapter) wants(layer int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if layer == 0 {
		if !a.fresh {
			a.fail(fmt.Errorf("adapter: layer 0's attention (%s-0) came before the ubatch's positions (node %q, op ROPE) and cells (node %q, op SET_ROWS) were read: "+
				"the graph's node names or layout differ from llama.cpp v0.5.0's (bindings/llama/internals.go)", llama.NodeAttention, llama.NodePositions, llama.NodeCells))
		}
		a.fresh = false
	}
	want := a.reads(layer)
	if want {
		a.stats.Reads++
	}
	return want
}

// reads reports whether the current ubatch's attention of layer is read: the ubatch is read and
// the schedule reads the layer (a.mu held).
func (a *Adapter) reads(layer int) bool {
	return a.read && layer < len(a.layers) && a.layers[layer]
}

// Eval is the body of the eval callback (ggml_backend_sched_eval_callback) for this adapter.
// Asked about a node, it reads the ubatch's positions and cells from their nodes' inputs (adding
// the cells to their sequences) and answers true only for the attention tensors the schedule
// reads; called again with a computed attention tensor, it scores it. It never returns false for
// a computed tensor, and keeps the first error for Apply.
func (a *Adapter) Eval(t llama.Tensor, ask bool) bool {
	layer, attention := t.NameLayer(llama.NodeAttention)
	if ask {
		a.asked = true
		switch {
		case attention:
			return a.wants(layer)
		case t.Op() == a.lib.Ops.Rope && t.NameIs(llama.NodePositions):
			a.readUbatchInput(t, true)
		case t.Op() == a.lib.Ops.SetRows && t.NameIs(llama.NodeCells): // a VIEW node has the same name
			a.readUbatchInput(t, false)
		}
		return false
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
		a.positions = a.readInput(t.Src(1), a.positions[:0], "positions (inp_pos, src[1] of "+llama.NodePositions+")")
		a.rowSeq, a.read, a.pending = a.rowSeq[:0], false, false
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
		return fmt.Errorf("ubatch of %d tokens, but %d cells (node %q) and %d positions (node %q) were read: "+
			"the graph's node names or layout differ from llama.cpp v0.5.0's (bindings/llama/internals.go)",
			n, len(a.cells), llama.NodeCells, len(a.positions), llama.NodePositions)
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
// ubatch whose attention was wanted but never shown (flash attention on), then frees the cells
// the tracker plans to evict, one llama_memory_seq_rm per run of consecutive positions, and
// forgets them. It returns the number of cells freed. Call it after every llama_decode, for every
// sequence the decode touched.
func (a *Adapter) Apply(seq int32) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mem == 0 {
		return 0, errors.New("adapter: apply before attach")
	}
	a.batch, a.batchOff = nil, 0
	unseen, noInputs := a.unseen, a.asked && !a.inputs
	a.unseen, a.asked, a.inputs = 0, false, false
	if err := a.err; err != nil {
		a.err = nil
		return 0, err
	}
	if noInputs {
		return 0, fmt.Errorf("adapter: sequence %d: the decode read no ubatch's positions and cells: its graph had no node %q of op ROPE (%d) "+
			"and %q of op SET_ROWS (%d); the node names or ops differ from llama.cpp v0.5.0's (bindings/llama/internals.go)",
			seq, llama.NodePositions, a.lib.Ops.Rope, llama.NodeCells, a.lib.Ops.SetRows)
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
	if len(a.evictions) > 0 {
		if freed, err := a.free(seq, s); err != nil {
			if ferr := s.Forget(freed); ferr != nil {
				return len(freed), fmt.Errorf("adapter: sequence %d: %w (and %w)", seq, err, ferr)
			}
			return len(freed), fmt.Errorf("adapter: sequence %d: %w", seq, err)
		}
		if err := s.Forget(a.evictions); err != nil {
			return 0, fmt.Errorf("adapter: sequence %d: %w", seq, err)
		}
		a.stats.Evicted += len(a.evictions)
	}
	if a.opts.CompactPositions && (a.opts.CompactAt > 0 || len(a.evictions) > 0) {
		if err := a.compact(seq, s); err != nil {
			return len(a.evictions), err
		}
	}
	return len(a.evictions), nil
}

// free removes a.evictions from llama.cpp's memory: one llama_memory_seq_rm per run of tokens,
// consecutive in the sequence, that are all evicted. On a refusal it returns the evictions freed
// so far (a.mu held).
func (a *Adapter) free(id int32, s *keyformer.Sequence) ([]keyformer.Eviction, error) {
	evicted := make(map[int32]bool, len(a.evictions))
	for _, e := range a.evictions {
		evicted[e.Cell] = true
	}
	var freed []keyformer.Eviction
	toks := s.Tokens()
	for i := 0; i < len(toks); {
		if !evicted[toks[i].Cell] {
			i++
			continue
		}
		j := i + 1
		for j < len(toks) && evicted[toks[j].Cell] {
			j++
		}
		if !a.lib.MemorySeqRm(a.mem, id, toks[i].Pos, toks[j-1].Pos+1) {
			return freed, ErrUnsupportedMemory
		}
		for _, t := range toks[i:j] {
			freed = append(freed, keyformer.Eviction{Cell: t.Cell, Layer: -1, Head: -1})
		}
		i = j
	}
	return freed, nil
}

// compact renumbers the sequence's tokens 0..n-1 once its highest position reaches
// Options.CompactAt, shifting each run of consecutive positions down with one
// llama_memory_seq_add and the same shift in the tracker, which moves cells the sequence shares
// with others in theirs too (a.mu held).
func (a *Adapter) compact(id int32, s *keyformer.Sequence) error {
	toks := s.Tokens()
	if len(toks) == 0 || toks[len(toks)-1].Pos < a.opts.CompactAt {
		return nil
	}
	if !a.lib.MemoryCanShift(a.mem) {
		return fmt.Errorf("adapter: sequence %d: position compaction needs a memory that can shift (llama_memory_can_shift)", id)
	}
	a.stats.Compactions++
	for i := 0; i < len(toks); {
		j := i + 1
		for j < len(toks) && toks[j].Pos == toks[j-1].Pos+1 {
			j++
		}
		if delta := int32(i) - toks[i].Pos; delta != 0 {
			p0, p1 := toks[i].Pos, toks[j-1].Pos+1
			a.lib.MemorySeqAdd(a.mem, id, p0, p1, delta)
			if err := a.tracker.ShiftPositions(id, p0, p1, delta); err != nil {
				return fmt.Errorf("adapter: sequence %d: %w", id, err)
			}
		}
		i = j
	}
	return nil
}

// RestoreSequence restores sequence id's tracker state (keyformer.Sequence.MarshalBinary, saved
// together with llama_state_seq_get_data) right after the host restored llama.cpp's state of the
// sequence with llama_state_seq_set_data. llama.cpp packs a restored sequence into cells 0, 1, ...
// in the saved (cell) order when no other sequence holds cells; with other sequences it searches
// from a position it does not report, so the restore is refused (ErrRestoreBesideOthers, the
// tracker unchanged). The tracker's cells are renamed accordingly and the positions llama.cpp
// reports are checked against the tracker's.
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
	for _, other := range a.tracker.IDs() {
		if s, _ := a.tracker.Sequence(other); other != id && s.Len() > 0 {
			return fmt.Errorf("adapter: sequence %d: sequence %d holds %d cells: %w", id, other, s.Len(), ErrRestoreBesideOthers)
		}
	}
	if err := seq.UnmarshalBinary(state); err != nil {
		return fmt.Errorf("adapter: %w", err)
	}
	toks := seq.Tokens()
	if len(toks) == 0 {
		return nil
	}
	from := cellsSorted(toks)
	to := make([]int32, len(from))
	for i := range to {
		to[i] = int32(i)
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
