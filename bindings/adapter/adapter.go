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
// C ABI's eval callback in capi/) alike. It works on both of llama.cpp's cache layouts, found at
// Attach: a unified cache (one stream that every sequence's cells share) and one stream per
// sequence (kv_unified = false with n_seq_max > 1: llama_n_ctx_seq below llama_n_ctx), where a
// token attends to its own stream's cells only. It needs flash attention off for the policies that
// read attention (no attention matrix exists otherwise) and a memory that can remove single
// positions (not sliding-window, recurrent or hybrid).
package adapter

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

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
	// ErrRestorePerStream: RestoreSequence refuses in a cache of one stream per sequence, where
	// llama.cpp places the restored cells from the stream's search position, which it does not
	// report.
	ErrRestorePerStream = errors.New("restore in a cache of one stream per sequence is unsupported: llama.cpp " +
		"places the restored cells from the stream's search position, which the plugin cannot see")
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
	Compactions  int           // renumberings of a sequence's positions (Options.CompactPositions)
}

// Adapter drives one llama.cpp context. Eval runs on the thread that calls llama_decode; Apply,
// SetBatch and Stats must not run concurrently with a decode of the same context.
type Adapter struct {
	lib       *llama.Lib
	tracker   *keyformer.Tracker
	observers []*keyformer.Tracker // see SetObservers
	opts      Options
	layers    []bool  // the layers whose attention (keys) the tracker's schedule reads
	keys      bool    // the tracker's policy reads keys, not attention
	mem       uintptr // the attached context's llama_memory_t
	// kvSize is the cells of each stream in a cache of one stream per sequence (llama_n_ctx_seq;
	// sequence s is stream s, its cells s*kvSize + 0, 1, ...), 0 in a unified cache; cellIDs holds
	// 0, 1, ..., llama_n_ctx - 1, whose slices name a stream's attention columns.
	kvSize  int32
	cellIDs []int32

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
	key0      *keyformer.Keys // layer 0's keys of the current ubatch, until its cells are read
	keysSeen  int             // layers whose keys the current ubatch showed
	keyLayers int             // layers whose keys the schedule reads
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
	keyLayers := 0
	for l := range layers {
		layers[l] = cfg.ObservesLayer(l)
		if layers[l] {
			keyLayers++
		}
	}
	return &Adapter{lib: lib, tracker: tracker, opts: opts, layers: layers, keys: cfg.Policy.ReadsKeys(), keyLayers: keyLayers}, nil
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
	a.kvSize, a.cellIDs = 0, nil
	if n, perSeq := int32(a.lib.NCtx(ctx)), int32(a.lib.NCtxSeq(ctx)); perSeq > 0 && perSeq < n {
		a.kvSize, a.cellIDs = perSeq, make([]int32, n)
		for i := range a.cellIDs {
			a.cellIDs[i] = int32(i)
		}
	}
	return nil
}

// CellsPerStream returns the cells of each stream where the attached context keeps one stream per
// sequence (llama_n_ctx_seq), 0 where its cache is unified. Each stream must hold its sequence's
// budget, the evict slack and the tokens one decode adds to it.
func (a *Adapter) CellsPerStream() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return int(a.kvSize)
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
		if cfg.Policy.ReadsKeys() != a.keys && cfg.Policy.ReadsAttention() {
			return fmt.Errorf("adapter: observer %d (%s) reads attention, the tracker (%s) keys", i, cfg.Policy, a.tracker.Config().Policy)
		}
		if cfg.Policy.ReadsKeys() && !a.keys {
			return fmt.Errorf("adapter: observer %d (%s) reads keys, the tracker (%s) does not", i, cfg.Policy, a.tracker.Config().Policy)
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
// A cache of one stream per sequence needs none (each token's cell names its stream, hence its
// sequence): there the declaration is checked and not used.
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
