//go:build linux || darwin

package generate

import (
	"fmt"
	"runtime"

	"github.com/keyformer/keyformer/bindings/adapter"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// SessionOptions configure NewSession.
type SessionOptions struct {
	// Config is the eviction configuration (its Shape is filled from the model); nil runs plain
	// llama.cpp with no eval callback at all.
	Config  *keyformer.Config
	Adapter adapter.Options
	NCtx    int // KV cells
	NUbatch int // tokens per graph evaluation (and per llama_decode)
	Threads int // 0: every CPU
	// Poll is ggml's threadpool polling level (0..100): how long idle workers spin before sleeping.
	Poll int
	// Sequences, above 1, lets that many sequences share the context (RunBatch): each in a KV stream
	// of its own (llama.cpp's default for several sequences: NCtx / Sequences cells each, rounded
	// up to 256, and a token attends to its own stream's cells only), or with KVUnified all in one.
	Sequences int
	KVUnified bool
	// KV is the type of the K and V cache: f16 (the zero value, llama.cpp's default) or one of
	// llama.cpp's quantized types, which need flash attention and so a Config whose policy reads
	// no attention (keydiff, streaming, window), or none.
	KV KVCache
}

// KVCache is the element type of a session's K and V cache.
type KVCache int

// The cache types a session offers: llama.cpp's default and its two usual quantized caches
// (`--cache-type-k/-v q8_0`, `q4_0`).
const (
	KVF16  KVCache = iota // f16 (2 bytes per element)
	KVQ8_0                // q8_0: blocks of 32 elements in 34 bytes
	KVQ4_0                // q4_0: blocks of 32 elements in 18 bytes
)

// kvTypes are the ggml types of the cache types.
var kvTypes = [...]llama.GGMLType{KVF16: llama.TypeF16, KVQ8_0: llama.TypeQ8_0, KVQ4_0: llama.TypeQ4_0}

// Type returns the cache type's ggml type.
func (k KVCache) Type() llama.GGMLType { return kvTypes[k] }

// String returns the cache type's name as llama.cpp's --cache-type-k writes it.
func (k KVCache) String() string { return [...]string{"f16", "q8_0", "q4_0"}[k] }

// Session is a llama.cpp context with a persistent threadpool and, when configured, a Keyformer
// adapter on its eval callback.
type Session struct {
	Ctx     *llama.Context
	Adapter *adapter.Adapter // nil without a Config
	lib     *llama.Lib
	tp      uintptr
}

// NewSession creates the context (flash attention off, so that attention can be observed, but
// with a quantized cache).
func NewSession(m *llama.Model, o SessionOptions) (*Session, error) {
	if o.Threads <= 0 {
		o.Threads = runtime.NumCPU()
	}
	s := &Session{lib: m.Lib()}
	co := llama.ContextOptions{NCtx: uint32(o.NCtx), NBatch: uint32(o.NUbatch), NUbatch: uint32(o.NUbatch),
		NThreads: int32(o.Threads), NThreadsBatch: int32(o.Threads)}
	if o.KV != KVF16 {
		if o.Config != nil && o.Config.Policy.ReadsAttention() {
			return nil, fmt.Errorf("generate: session: a %s KV cache needs flash attention, which leaves no attention for policy %s to observe", o.KV, o.Config.Policy)
		}
		co.FlashAttn = llama.FlashAttnEnabled
	}
	co.Tweak = func(p *llama.ContextParams) {
		if o.Sequences > 1 {
			p.NSeqMax, p.KVUnified = uint32(o.Sequences), o.KVUnified
		}
		p.TypeK, p.TypeV = o.KV.Type(), o.KV.Type()
	}
	if o.Config != nil {
		cfg := *o.Config
		cfg.Shape = keyformer.Shape{Layers: m.NLayer, QueryHeads: m.NHead, KVHeads: m.NHeadKV}
		tr, err := keyformer.NewTracker(cfg)
		if err != nil {
			return nil, err
		}
		if s.Adapter, err = adapter.New(m.Lib(), tr, o.Adapter); err != nil {
			return nil, err
		}
		co.Eval, co.EvalNodes = s.Adapter.Eval, s.Adapter.Nodes()
	}
	var err error
	if s.Ctx, err = m.NewContext(co); err != nil {
		return nil, err
	}
	// A persistent pool: every tensor the callback asks for ends a graph split, and without a
	// pool each split starts and joins fresh worker threads.
	if s.tp, err = m.Lib().NewThreadpool(o.Threads, o.Poll); err == nil {
		err = s.Ctx.AttachThreadpool(s.tp, 0)
	}
	if err == nil && s.Adapter != nil {
		err = s.Adapter.Attach(s.Ctx.Ptr())
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("generate: session: %w", err)
	}
	return s, nil
}

// Run runs greedy generation in the session (see Run).
func (s *Session) Run(prompt []int32, o Options) (Result, error) {
	return Run(s.Ctx, s.Adapter, prompt, o)
}

// Close frees the context and its threadpool.
func (s *Session) Close() {
	if s.Ctx != nil {
		s.Ctx.DetachThreadpool()
		s.Ctx.Free()
		s.Ctx = nil
	}
	if s.tp != 0 {
		s.lib.FreeThreadpool(s.tp)
		s.tp = 0
	}
}
