//go:build linux || darwin

package llama

import (
	"errors"
	"fmt"
	"unsafe"
)

// ContextOptions configure NewContext. Zero values keep llama_context_default_params()'s value,
// except FlashAttn, whose zero value is FlashAttnDisabled (attention matrices must exist for
// Keyformer to see them).
type ContextOptions struct {
	NCtx          uint32 // KV cache cells (llama default 512; the model's training context is Model.NCtxTrain)
	NBatch        uint32 // max tokens per llama_decode (default 2048)
	NUbatch       uint32 // max tokens per graph evaluation (default 512)
	NThreads      int32  // threads for single-token decodes (default 4)
	NThreadsBatch int32  // threads for prompt batches (default: NThreads if set, else 4)
	FlashAttn     FlashAttnType

	// Eval, if set, is called for graph nodes during decodes (see EvalFunc), through the shared
	// eval callback.
	Eval EvalFunc

	// EvalNodes, if set, are the name prefixes of the nodes Eval is asked about (RegisterEval's
	// nodes): asks about the others are answered false without entering Go.
	EvalNodes []string

	// Tweak, if set, edits the final parameters just before llama_init_from_model.
	Tweak func(*ContextParams)
}

// Context is a llama_context with one reusable batch. Not safe for concurrent use.
type Context struct {
	lib   *Lib
	model *Model
	ptr   uintptr
	mem   uintptr
	eval  *EvalHandle

	batch    Batch
	batchCap int
	tokens   []int32 // views of the batch's C arrays
	pos      []int32
	nSeqID   []int32
	seqID    []*int32
	logits   []int8
}

// Decode errors (llama_decode's documented return codes).
var (
	ErrNoKVSlot     = errors.New("llama: decode: no KV cache slot for the batch (1)")
	ErrAborted      = errors.New("llama: decode: aborted (2)")
	ErrInvalidBatch = errors.New("llama: decode: invalid input batch (-1)")
)

// NewContext creates a context (llama_init_from_model) for the model.
func (m *Model) NewContext(o ContextOptions) (*Context, error) {
	l := m.lib
	p := l.ContextDefaultParams()
	if o.NCtx > 0 {
		p.NCtx = o.NCtx
	}
	if o.NBatch > 0 {
		p.NBatch = o.NBatch
	}
	if o.NUbatch > 0 {
		p.NUbatch = o.NUbatch
	}
	if o.NThreads > 0 {
		p.NThreads, p.NThreadsBatch = o.NThreads, o.NThreads
	}
	if o.NThreadsBatch > 0 {
		p.NThreadsBatch = o.NThreadsBatch
	}
	p.FlashAttnType = o.FlashAttn
	var h *EvalHandle
	if o.Eval != nil {
		var err error
		if h, err = RegisterEval(o.Eval, o.EvalNodes...); err != nil {
			return nil, err
		}
		p.CbEval, p.CbEvalUserData = h.Callback(), h.UserData()
	}
	if o.Tweak != nil {
		o.Tweak(&p)
	}
	ptr := l.InitFromModel(m.ptr, p)
	if ptr == 0 {
		h.Release()
		return nil, errors.New("llama: llama_init_from_model failed (see the llama.cpp log)")
	}
	c := &Context{lib: l, model: m, ptr: ptr, mem: l.GetMemory(ptr), eval: h}
	c.batchCap = int(l.NBatch(ptr))
	c.batch = l.BatchInit(int32(c.batchCap), 0, 1)
	n := c.batchCap
	c.tokens = unsafe.Slice(c.batch.Token, n)
	c.pos = unsafe.Slice(c.batch.Pos, n)
	c.nSeqID = unsafe.Slice(c.batch.NSeqID, n)
	c.seqID = unsafe.Slice(c.batch.SeqID, n)
	c.logits = unsafe.Slice(c.batch.Logits, n)
	return c, nil
}

// Free frees the context, its batch and its eval registration.
func (c *Context) Free() {
	if c == nil || c.ptr == 0 {
		return
	}
	c.lib.Free(c.ptr)
	c.lib.BatchFree(c.batch)
	c.eval.Release()
	*c = Context{}
}

// Ptr returns the llama_context pointer.
func (c *Context) Ptr() uintptr { return c.ptr }

// Model returns the context's model.
func (c *Context) Model() *Model { return c.model }

// Memory returns llama_get_memory(ctx).
func (c *Context) Memory() uintptr { return c.mem }

// NCtx, NBatch and NUbatch return the sizes the context actually uses.
func (c *Context) NCtx() int { return int(c.lib.NCtx(c.ptr)) }

// NBatch returns llama_n_batch.
func (c *Context) NBatch() int { return int(c.lib.NBatch(c.ptr)) }

// NUbatch returns llama_n_ubatch.
func (c *Context) NUbatch() int { return int(c.lib.NUbatch(c.ptr)) }

// SetThreads sets the threads for single-token and batch decodes.
func (c *Context) SetThreads(n, nBatch int) { c.lib.SetNThreads(c.ptr, int32(n), int32(nBatch)) }

// AttachThreadpool attaches persistent CPU threadpools (Lib.NewThreadpool; tpBatch 0 = tp).
func (c *Context) AttachThreadpool(tp, tpBatch uintptr) error {
	if c.lib.AttachThreadpool == nil {
		return errors.New("llama: llama_attach_threadpool missing")
	}
	if tpBatch == 0 {
		tpBatch = tp
	}
	c.lib.AttachThreadpool(c.ptr, tp, tpBatch)
	return nil
}

// DetachThreadpool detaches threadpools attached with AttachThreadpool.
func (c *Context) DetachThreadpool() {
	if c.lib.DetachThreadpool != nil {
		c.lib.DetachThreadpool(c.ptr)
	}
}

// Decode decodes tokens for sequence seq at positions pos0, pos0+1, ..., in chunks of at most
// NBatch tokens, and keeps the logits of the last token (Logits).
func (c *Context) Decode(seq int32, tokens []int32, pos0 int32) error {
	for start := 0; start < len(tokens); start += c.batchCap {
		end := min(start+c.batchCap, len(tokens))
		for i := start; i < end; i++ {
			c.put(i-start, tokens[i], pos0+int32(i), seq, i == len(tokens)-1)
		}
		if err := c.decode(end - start); err != nil {
			return err
		}
	}
	return nil
}

// DecodeBatch decodes one batch whose token i belongs to sequence seqs[i] at position pos[i]
// (several sequences at once, as a server with slots does); output selects the tokens whose
// logits to keep (LogitsIth counts them in batch order). It must fit in NBatch tokens.
func (c *Context) DecodeBatch(tokens, pos, seqs []int32, output []bool) error {
	if len(pos) != len(tokens) || len(seqs) != len(tokens) || len(output) != len(tokens) {
		return errors.New("llama: DecodeBatch: length mismatch")
	}
	if len(tokens) > c.batchCap {
		return fmt.Errorf("llama: DecodeBatch: %d tokens exceed the batch of %d", len(tokens), c.batchCap)
	}
	for i := range tokens {
		c.put(i, tokens[i], pos[i], seqs[i], output[i])
	}
	return c.decode(len(tokens))
}

// DecodePositions decodes tokens for sequence seq at explicit positions (len(pos) ==
// len(tokens)); output selects the tokens whose logits to keep (nil: the last one only).
func (c *Context) DecodePositions(seq int32, tokens, pos []int32, output []bool) error {
	if len(pos) != len(tokens) || (output != nil && len(output) != len(tokens)) {
		return errors.New("llama: DecodePositions: length mismatch")
	}
	for start := 0; start < len(tokens); start += c.batchCap {
		end := min(start+c.batchCap, len(tokens))
		for i := start; i < end; i++ {
			out := i == len(tokens)-1
			if output != nil {
				out = output[i]
			}
			c.put(i-start, tokens[i], pos[i], seq, out)
		}
		if err := c.decode(end - start); err != nil {
			return err
		}
	}
	return nil
}

func (c *Context) put(i int, tok, pos, seq int32, out bool) {
	c.tokens[i] = tok
	c.pos[i] = pos
	c.nSeqID[i] = 1
	*c.seqID[i] = seq
	c.logits[i] = 0
	if out {
		c.logits[i] = 1
	}
}

func (c *Context) decode(n int) error {
	if n == 0 {
		return nil
	}
	c.batch.NTokens = int32(n)
	r := c.lib.Decode(c.ptr, c.batch)
	if c.eval != nil {
		if err := c.eval.TakePanic(); err != nil {
			return err
		}
	}
	switch {
	case r == 0:
		return nil
	case r == 1:
		return ErrNoKVSlot
	case r == 2:
		return ErrAborted
	case r == -1:
		return ErrInvalidBatch
	case r > 0:
		return fmt.Errorf("llama: decode: warning %d", r)
	default:
		return fmt.Errorf("llama: decode: fatal error %d", r)
	}
}

// Logits returns the logits of the last output token of the last decode (llama_get_logits_ith
// -1): NVocab floats in llama.cpp's memory, valid until the next decode. nil if none.
func (c *Context) Logits() []float32 { return c.LogitsIth(-1) }

// LogitsIth returns the logits of output i of the last decode (negative counts from the end).
func (c *Context) LogitsIth(i int) []float32 {
	p := c.lib.GetLogitsIth(c.ptr, int32(i))
	if p == nil {
		return nil
	}
	return unsafe.Slice(p, c.model.NVocab)
}

// Argmax returns the index of the largest value (the greedy token), -1 for an empty slice.
func Argmax(v []float32) int32 {
	if len(v) == 0 {
		return -1
	}
	best, bi := v[0], 0
	for i, x := range v {
		if x > best {
			best, bi = x, i
		}
	}
	return int32(bi)
}

// GenerateGreedy decodes prompt for seq at positions pos0..., then generates up to n tokens
// greedily, stopping after an end-of-generation token if stopAtEOG. It returns the generated
// tokens; the last one is not decoded (the caller may decode it at the next position).
func (c *Context) GenerateGreedy(seq int32, prompt []int32, pos0 int32, n int, stopAtEOG bool) ([]int32, error) {
	if err := c.Decode(seq, prompt, pos0); err != nil {
		return nil, err
	}
	pos := pos0 + int32(len(prompt))
	out := make([]int32, 0, n)
	for len(out) < n {
		tok := Argmax(c.Logits())
		if tok < 0 {
			return out, errors.New("llama: no logits")
		}
		out = append(out, tok)
		if (stopAtEOG && c.model.IsEOG(tok)) || len(out) == n {
			break
		}
		if err := c.Decode(seq, []int32{tok}, pos); err != nil {
			return out, err
		}
		pos++
	}
	return out, nil
}

// SeqRm removes the cells of seq with positions in [p0, p1) (llama_memory_seq_rm; p0 < 0 means
// 0, p1 < 0 means infinity). It returns false where the memory cannot remove part of a sequence
// (recurrent, some SWA/hybrid caches). Never call it from inside an eval callback.
func (c *Context) SeqRm(seq, p0, p1 int32) bool { return c.lib.MemorySeqRm(c.mem, seq, p0, p1) }

// SeqAdd adds delta to the positions in [p0, p1) of seq (llama_memory_seq_add; K is re-rotated
// lazily at the next decode). Only where CanShift.
func (c *Context) SeqAdd(seq, p0, p1, delta int32) { c.lib.MemorySeqAdd(c.mem, seq, p0, p1, delta) }

// SeqCp makes seq dst also hold the cells of src with positions in [p0, p1)
// (llama_memory_seq_cp; in a unified cache the cells are shared, not copied).
func (c *Context) SeqCp(src, dst, p0, p1 int32) { c.lib.MemorySeqCp(c.mem, src, dst, p0, p1) }

// SeqKeep removes every sequence but seq from the memory (llama_memory_seq_keep).
func (c *Context) SeqKeep(seq int32) { c.lib.MemorySeqKeep(c.mem, seq) }

// SeqPosMin returns the smallest position of seq (-1 if empty).
func (c *Context) SeqPosMin(seq int32) int32 { return c.lib.MemorySeqPosMin(c.mem, seq) }

// SeqPosMax returns the largest position of seq (-1 if empty). The next token of seq must be
// decoded at SeqPosMax+1, holes or not.
func (c *Context) SeqPosMax(seq int32) int32 { return c.lib.MemorySeqPosMax(c.mem, seq) }

// CanShift reports llama_memory_can_shift.
func (c *Context) CanShift() bool { return c.lib.MemoryCanShift(c.mem) }

// ClearMemory clears the whole memory (and the data buffers if data).
func (c *Context) ClearMemory(data bool) { c.lib.MemoryClear(c.mem, data) }

// SeqState saves the state of one sequence (llama_state_seq_get_size/get_data). Cells are
// written in cell order with their positions, so a restored sequence comes back packed at the
// bottom of the cache with its positions (holes included) kept.
func (c *Context) SeqState(seq int32) ([]byte, error) {
	n := c.lib.StateSeqGetSize(c.ptr, seq)
	if n == 0 {
		return nil, fmt.Errorf("llama: llama_state_seq_get_size(%d) = 0", seq)
	}
	buf := make([]byte, n)
	got := c.lib.StateSeqGetData(c.ptr, &buf[0], n, seq)
	if got == 0 || got > n {
		return nil, fmt.Errorf("llama: llama_state_seq_get_data(%d) wrote %d of %d bytes", seq, got, n)
	}
	return buf[:got], nil
}

// SetSeqState loads a state from SeqState into sequence seq (llama_state_seq_set_data), which
// should be empty.
func (c *Context) SetSeqState(seq int32, data []byte) error {
	if len(data) == 0 {
		return errors.New("llama: SetSeqState: empty state")
	}
	if got := c.lib.StateSeqSetData(c.ptr, &data[0], uintptr(len(data)), seq); got == 0 {
		return fmt.Errorf("llama: llama_state_seq_set_data(%d) failed", seq)
	}
	return nil
}
