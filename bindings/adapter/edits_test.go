//go:build linux || darwin

package adapter_test

import (
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ebitengine/purego"
	"github.com/keyformer/keyformer/bindings/adapter"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// editHost is a host that edits llama.cpp's cache itself and mirrors each edit in its adapter. It
// feeds tokens one ubatch per llama_decode and applies the evictions after each.
type editHost struct {
	t              *testing.T
	c              *llama.Context
	ad             *adapter.Adapter
	budget, ubatch int
	evicted        int
	// abortAt, when positive, aborts the next llama_decode during its abortAt-th ubatch, after the
	// adapter has read that ubatch's cells.
	abortAt atomic.Int32
}

// editOptions configure newEditHost.
type editOptions struct {
	budget, ubatch, nCtx, seqs int
	slack                      int  // the schedule's Slack
	perStream                  bool // one KV stream per sequence, not one unified cache
}

// abortDecode is the process's one ggml_abort_callback (purego callbacks are never freed): it
// aborts while abortNow is set.
var (
	abortOnce sync.Once
	abortCB   uintptr
	abortNow  atomic.Bool
)

func newEditHost(t *testing.T, m *llama.Model, o editOptions) *editHost {
	t.Helper()
	cfg := config(m, keyformer.PolicyKeyformer, keyformer.Tokens(o.budget))
	cfg.Observe.Slack = o.slack
	tr, err := keyformer.NewTracker(*cfg)
	require.NoError(t, err)
	ad, err := adapter.New(m.Lib(), tr, adapter.Options{})
	require.NoError(t, err)
	abortOnce.Do(func() { abortCB = purego.NewCallback(func(uintptr) bool { return abortNow.Load() }) })
	h := &editHost{t: t, ad: ad, budget: o.budget, ubatch: o.ubatch}
	h.c, err = m.NewContext(llama.ContextOptions{
		NCtx: uint32(o.nCtx), NBatch: uint32(2 * o.ubatch), NUbatch: uint32(o.ubatch), NThreads: 1, NThreadsBatch: 1,
		Eval: func(tn llama.Tensor, ask bool) bool {
			want := ad.Eval(tn, ask)
			if layer, ok := tn.NameLayer("kq_soft_max"); ask && ok && layer == 0 && h.abortAt.Load() > 0 {
				abortNow.Store(h.abortAt.Add(-1) == 0)
			}
			return want
		},
		Tweak: func(p *llama.ContextParams) {
			p.NSeqMax, p.KVUnified = uint32(max(o.seqs, 1)), !o.perStream
			p.AbortCallback = abortCB
		},
	})
	require.NoError(t, err)
	t.Cleanup(h.c.Free)
	require.NoError(t, ad.Attach(h.c.Ptr()))
	return h
}

// decode runs one llama_decode of toks for seq from pos0, then Apply.
func (h *editHost) decode(seq int32, toks []int32, pos0 int32) error {
	seqs := make([]int32, len(toks))
	for i := range seqs {
		seqs[i] = seq
	}
	require.NoError(h.t, h.ad.SetBatch(seqs))
	if err := h.c.Decode(seq, toks, pos0); err != nil {
		return err
	}
	n, err := h.ad.Apply(seq)
	h.evicted += n
	return err
}

// feed decodes toks for seq at its next position, one ubatch per llama_decode.
func (h *editHost) feed(seq int32, toks []int32) error {
	for i := 0; i < len(toks); i += h.ubatch {
		if err := h.decode(seq, toks[i:min(i+h.ubatch, len(toks))], h.c.SeqPosMax(seq)+1); err != nil {
			return err
		}
	}
	return nil
}

// generate decodes n greedy tokens for seq (each picked from the last decode's logits) and
// returns them, checking after each that the tracker and llama.cpp agree.
func (h *editHost) generate(seq int32, n int) []int32 {
	var out []int32
	for range n {
		tok := llama.Argmax(h.c.Logits())
		out = append(out, tok)
		require.NoError(h.t, h.feed(seq, []int32{tok}))
		h.agree(seq)
	}
	return out
}

// llamaPositions returns the positions of the cells llama.cpp holds for seq, in cell order, read
// from its sequence state (llama-context.cpp's magic 0xaf143cd8 and seq_id, then
// llama-kv-cache.cpp's n_stream and per stream its cell_count and, where that is not 0, per cell:
// pos, n_seq_id = 1, seq_id, then the cells' data; only one stream holds seq's cells: the unified
// cache's one, or seq's own).
func (h *editHost) llamaPositions(seq int32) []int32 {
	st, err := h.c.SeqState(seq)
	require.NoError(h.t, err)
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(st[off:]) }
	require.Equal(h.t, [2]uint32{0xaf143cd8, uint32(seq)}, [2]uint32{u32(0), u32(4)}, "state header")
	off := 12
	for range u32(8) {
		n := int(u32(off))
		off += 4
		if n == 0 {
			continue
		}
		pos := make([]int32, n)
		for i := range pos {
			require.Equal(h.t, [2]uint32{1, uint32(seq)}, [2]uint32{u32(off + 4), u32(off + 8)}, "cell record layout")
			pos[i] = int32(u32(off))
			off += 12
		}
		return pos
	}
	return []int32{}
}

// agree checks that the tracker holds exactly the positions llama.cpp holds for seq, within the
// budget plus one ubatch.
func (h *editHost) agree(seq int32) {
	h.t.Helper()
	s, err := h.ad.Tracker().Sequence(seq)
	require.NoError(h.t, err)
	toks := s.Tokens()
	got := make([]int32, len(toks))
	for i, tok := range toks {
		got[i] = tok.Pos
	}
	want := h.llamaPositions(seq)
	slices.Sort(want)
	require.Equal(h.t, want, got, "sequence %d: llama.cpp's positions, then the tracker's", seq)
	require.LessOrEqual(h.t, len(got), h.budget+h.ubatch)
	if len(got) > 0 {
		require.Equal(h.t, [2]int32{h.c.SeqPosMin(seq), h.c.SeqPosMax(seq)}, [2]int32{got[0], got[len(got)-1]})
	}
}

// copyThenContinue reads the first 200 tokens of prompt as sequence 0 (evicting), copies it to
// sequence 1 (llama_memory_seq_cp, mirrored) and checks the copy with check; then each sequence
// reads 60 tokens of its own, both evicting down to their budgets and agreeing with llama.cpp.
func (h *editHost) copyThenContinue(prompt []int32, check func(t0, t1 *keyformer.Sequence)) (t0, t1 *keyformer.Sequence) {
	t := h.t
	require.NoError(t, h.feed(0, prompt[:200]))
	require.Positive(t, h.evicted)
	h.c.SeqCp(0, 1, -1, -1)
	require.NoError(t, h.ad.SeqCp(0, 1, -1, -1))
	h.agree(1)
	t0, err := h.ad.Tracker().Sequence(0)
	require.NoError(t, err)
	t1, err = h.ad.Tracker().Sequence(1)
	require.NoError(t, err)
	check(t0, t1)
	before := h.evicted
	for i := range 3 {
		require.NoError(t, h.feed(0, prompt[200+20*i:220+20*i]))
		require.NoError(t, h.feed(1, prompt[20*i:20+20*i]))
		h.agree(0)
		h.agree(1)
	}
	assert.GreaterOrEqual(t, h.evicted-before, 2*60, "both sequences evicted down to their budgets")
	return t0, t1
}

// tracked returns the positions the tracker holds for seq.
func (h *editHost) tracked(seq int32) []int32 {
	s, err := h.ad.Tracker().Sequence(seq)
	require.NoError(h.t, err)
	var pos []int32
	for _, tok := range s.Tokens() {
		pos = append(pos, tok.Pos)
	}
	return pos
}

// editPrompt is a prompt of 320 tokens, five times the budget of the tests.
func editPrompt(t *testing.T, m *llama.Model) []int32 { return samplePrompt(t, m)[:320] }

var editOpts = editOptions{budget: 64, ubatch: 32, nCtx: 256}

// prefixReuse reads a prompt with evictions, generates, removes the tail from a held position p
// on llama.cpp (and in the tracker when mirror) and continues with other tokens from p.
func prefixReuse(t *testing.T, m *llama.Model, mirror bool) (*editHost, error) {
	h := newEditHost(t, m, editOpts)
	prompt := editPrompt(t, m)
	require.NoError(t, h.feed(0, prompt))
	h.generate(0, 4)
	require.Positive(t, h.evicted)
	held := h.tracked(0)
	p := held[len(held)-6] + 1 // a suffix of five tokens, its head held: llama.cpp continues at p
	require.True(t, h.c.SeqRm(0, p, -1))
	if mirror {
		require.NoError(t, h.ad.SeqRm(0, p, -1))
		h.agree(0)
	}
	require.Equal(t, p, h.c.SeqPosMax(0)+1)
	return h, h.feed(0, prompt[40:120])
}

// repairedOnly runs an edit scenario with its repair (a mirror call or a sync), which must then
// agree with llama.cpp and keep generating, and without it, whose next decode must fail with want.
func repairedOnly(t *testing.T, scenario func(*testing.T, *llama.Model, bool) (*editHost, error), generate int, want, why string) {
	m := model(t)
	h, err := scenario(t, m, true)
	require.NoError(t, err)
	h.agree(0)
	h.generate(0, generate)

	_, err = scenario(t, m, false)
	assert.ErrorContains(t, err, want, why)
}

func TestEditPrefixReuseAfterEvictions(t *testing.T) {
	repairedOnly(t, prefixReuse, 6, "does not come after position", "unmirrored, the tracker still holds the suffix")
}

// TestEditRegenerationOfTheLastAnswer generates an answer after a prompt read with evictions,
// removes the answer and generates it again, of the same length. With a slack longer than the
// answer nothing is evicted during it, so the second answer starts from the same cache and its
// greedy text is the same.
func TestEditRegenerationOfTheLastAnswer(t *testing.T) {
	m := model(t)
	const answer = 12
	for _, slack := range []int{answer + 1, 0} {
		o := editOpts
		o.slack = slack
		h := newEditHost(t, m, o)
		require.NoError(t, h.feed(0, editPrompt(t, m)))
		require.Positive(t, h.evicted)
		first := llama.Argmax(h.c.Logits())
		start, before := h.c.SeqPosMax(0)+1, h.evicted

		// Regeneration: the answer's first token comes from the prompt's logits, which the host kept.
		run := func() []int32 {
			require.NoError(t, h.decode(0, []int32{first}, start))
			h.agree(0)
			return append([]int32{first}, h.generate(0, answer-1)...)
		}
		a1 := run()
		evictedA1 := h.evicted - before
		require.True(t, h.c.SeqRm(0, start, -1))
		require.NoError(t, h.ad.SeqRm(0, start, -1))
		h.agree(0)
		before = h.evicted
		a2 := run()
		assert.Len(t, a2, len(a1))
		if slack > 0 {
			assert.Zero(t, evictedA1)
			assert.Zero(t, h.evicted-before)
			assert.Equal(t, a1, a2, "same cache, same greedy answer")
			continue
		}
		// The first answer evicted one cell per token (prompt cells among them, which do not come
		// back): the second fills the cache back to its budget without evicting.
		assert.Equal(t, answer, evictedA1)
		assert.Zero(t, h.evicted-before)
		assert.Len(t, h.tracked(0), o.budget)
	}
}

func TestEditCopyThenEvictOnBothSequences(t *testing.T) {
	m := model(t)
	o := editOpts
	o.seqs = 2
	h := newEditHost(t, m, o)
	// Each sequence continues with its own text and evicts on its own: a cell one of them frees
	// stays in the other.
	t0, t1 := h.copyThenContinue(editPrompt(t, m), func(t0, t1 *keyformer.Sequence) {
		assert.Equal(t, t0.Tokens(), t1.Tokens(), "same cells, positions and scores")
	})
	shared := 0
	for _, tok := range t0.Tokens() {
		if p, ok := t1.Position(tok.Cell); ok {
			assert.Equal(t, tok.Pos, p)
			shared++
		}
	}
	assert.Positive(t, shared, "some copied cells are still shared")
	assert.Less(t, shared, t0.Len(), "and each sequence evicted some the other kept or added")
}

// TestEditsAcrossStreams runs the edits whose meaning changes in a cache of one stream per
// sequence: llama_memory_seq_cp copies the source's stream into the destination's, so the mirror
// gives the destination the same positions and scores in its own stream's cells, and the two then
// evict on their own; llama_memory_seq_keep leaves the other streams alone; a restore is refused.
func TestEditsAcrossStreams(t *testing.T) {
	m := model(t)
	o := editOpts
	o.seqs, o.perStream = 2, true
	h := newEditHost(t, m, o)
	perStream := int32(h.ad.CellsPerStream())
	require.Equal(t, int32(h.c.NCtx()/2), perStream, "two streams")
	t0, t1 := h.copyThenContinue(editPrompt(t, m), func(t0, t1 *keyformer.Sequence) {
		want := t0.Tokens()
		for i := range want {
			want[i].Cell += perStream
		}
		assert.Equal(t, want, t1.Tokens(), "the same positions and scores, in stream 1's cells")
	})
	for id, s := range []*keyformer.Sequence{t0, t1} {
		for _, tok := range s.Tokens() {
			require.Equal(t, int32(id), tok.Cell/perStream, "sequence %d's cells lie in its stream", id)
		}
	}

	h.c.SeqKeep(0)
	require.NoError(t, h.ad.SeqKeep(0))
	h.agree(1)
	assert.Positive(t, t1.Len(), "keeping sequence 0 left stream 1 as it was")
	h.generate(1, 2)

	llamaState, err := h.c.SeqState(1)
	require.NoError(t, err)
	kfState, err := t1.MarshalBinary()
	require.NoError(t, err)
	require.NoError(t, h.c.SetSeqState(1, llamaState))
	assert.ErrorIs(t, h.ad.RestoreSequence(1, kfState), adapter.ErrRestorePerStream)
}

func TestEditShiftIncludingNegativePositions(t *testing.T) {
	m := model(t)
	h := newEditHost(t, m, editOpts)
	prompt := editPrompt(t, m)
	require.NoError(t, h.feed(0, prompt[:160]))
	require.True(t, h.c.CanShift())

	// llama.cpp's context shift: drop [keep, keep+n) and shift the rest down by n.
	const keep, n = 4, 40
	require.True(t, h.c.SeqRm(0, keep, keep+n))
	require.NoError(t, h.ad.SeqRm(0, keep, keep+n))
	h.c.SeqAdd(0, keep+n, -1, -n)
	require.NoError(t, h.ad.SeqAdd(0, keep+n, -1, -n))
	h.agree(0)
	require.NoError(t, h.feed(0, prompt[160:224]))
	h.agree(0)

	// A shift below 0 frees the cells that fall below it, in llama.cpp and in the tracker.
	held := h.tracked(0)
	d := -(held[len(held)/2] + 1)
	h.c.SeqAdd(0, -1, -1, d)
	require.NoError(t, h.ad.SeqAdd(0, -1, -1, d))
	h.agree(0)
	assert.Len(t, h.tracked(0), len(held)-len(held)/2-1)
	require.NoError(t, h.feed(0, prompt[224:288]))
	h.agree(0)
	h.generate(0, 3)
}

func TestEditKeepAndClear(t *testing.T) {
	m := model(t)
	o := editOpts
	o.seqs, o.nCtx = 2, 512
	h := newEditHost(t, m, o)
	prompt := editPrompt(t, m)
	require.NoError(t, h.feed(0, prompt[:128]))
	require.NoError(t, h.feed(1, prompt[128:256]))
	h.c.SeqKeep(1)
	require.NoError(t, h.ad.SeqKeep(1))
	h.agree(0)
	h.agree(1)
	assert.Empty(t, h.tracked(0))
	require.NoError(t, h.feed(1, prompt[256:300]))
	require.NoError(t, h.feed(0, prompt[:40]), "sequence 0 starts over at position 0")
	h.agree(0)
	h.agree(1)

	h.c.ClearMemory(true)
	require.NoError(t, h.ad.Clear())
	h.agree(0)
	h.agree(1)
	require.NoError(t, h.feed(0, prompt[100:200]))
	h.agree(0)
}

// failedDecode reads part of a prompt, then runs a llama_decode of two ubatches that aborts during
// the second, after the adapter added its cells: llama.cpp removes that ubatch's positions and
// keeps the first's. With sync, the host calls Sync(-1) after the failure. It then continues.
func failedDecode(t *testing.T, m *llama.Model, sync bool) (*editHost, error) {
	h := newEditHost(t, m, editOpts)
	prompt := editPrompt(t, m)
	require.NoError(t, h.feed(0, prompt[:128]))
	next := h.c.SeqPosMax(0) + 1
	h.abortAt.Store(2)
	err := h.decode(0, prompt[128:192], next)
	abortNow.Store(false)
	require.ErrorIs(t, err, llama.ErrAborted)
	assert.Equal(t, next+int32(h.ubatch)-1, h.c.SeqPosMax(0), "llama.cpp kept the first ubatch")
	assert.Equal(t, next+2*int32(h.ubatch)-1, slices.Max(h.tracked(0)), "the tracker holds both")
	if sync {
		require.NoError(t, h.ad.Sync(-1))
		h.agree(0)
	}
	return h, h.feed(0, prompt[160:224])
}

func TestEditSyncAfterFailedDecode(t *testing.T) {
	repairedOnly(t, failedDecode, 3, "", "without sync the next decode's apply fails")
}

func TestEditCallsBeforeAttachAndBadArguments(t *testing.T) {
	m := model(t)
	cfg := config(m, keyformer.PolicyKeyformer, keyformer.Tokens(64))
	tr, err := keyformer.NewTracker(*cfg)
	require.NoError(t, err)
	ad, err := adapter.New(m.Lib(), tr, adapter.Options{})
	require.NoError(t, err)
	for name, err := range map[string]error{
		"seq_rm": ad.SeqRm(0, -1, -1), "seq_add": ad.SeqAdd(0, 0, 1, 1), "seq_cp": ad.SeqCp(0, 1, -1, -1),
		"seq_keep": ad.SeqKeep(0), "clear": ad.Clear(), "sync": ad.Sync(-1),
	} {
		assert.ErrorContains(t, err, "before attach", name)
	}
	h := newEditHost(t, m, editOpts)
	assert.ErrorContains(t, h.ad.SeqAdd(-1, 0, 1, 1), "outside")
	assert.ErrorContains(t, h.ad.SeqCp(0, 1<<20, 0, 1), "outside")
	assert.ErrorContains(t, h.ad.SeqKeep(-2), "outside")
	assert.ErrorContains(t, h.ad.SeqRm(1<<20, 5, 2), "outside", "the id is checked even for an empty range")
	assert.NoError(t, h.ad.SeqRm(-1, 5, 2), "an empty range, as in llama.cpp")
}
