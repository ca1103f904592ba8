//go:build linux || darwin

package adapter_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keyformer/keyformer/bindings/adapter"
	"github.com/keyformer/keyformer/bindings/internal/checkout"
	"github.com/keyformer/keyformer/bindings/lab/generate"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	fixtureOnce  sync.Once
	fixtureModel *llama.Model
	fixtureSkip  string
	fixtureErr   error
)

// model returns SmolLM2 on the pinned runtime (loaded once) or skips.
func model(t testing.TB) *llama.Model {
	t.Helper()
	if testing.Short() {
		t.Skip("runs llama.cpp on the real model: skipped under -short (make check)")
	}
	fixtureOnce.Do(func() {
		dir, path := checkout.LibDir(), checkout.ModelPath()
		for _, p := range []string{dir, path} {
			if _, err := os.Stat(p); err != nil {
				fixtureSkip = "llama.cpp runtime or model not fetched (run make deps): " + err.Error()
				return
			}
		}
		llama.SetLogger(llama.StderrLogger(llama.LogError))
		lib, err := llama.Load(dir)
		if err != nil {
			fixtureErr = err
			return
		}
		fixtureModel, fixtureErr = lib.LoadModel(path, nil)
	})
	if fixtureSkip != "" {
		t.Skip(fixtureSkip)
	}
	require.NoError(t, fixtureErr)
	return fixtureModel
}

// newSession creates a session of nCtx cells; cfg nil means no hook at all.
func newSession(t testing.TB, m *llama.Model, nCtx, nUbatch int, cfg *keyformer.Config) *generate.Session {
	t.Helper()
	s, err := generate.NewSession(m, generate.SessionOptions{Config: cfg, NCtx: nCtx, NUbatch: nUbatch, Threads: 2})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

// config returns the default config with policy and budget, reading every layer of every token
// and evicting at every apply (TestScheduleAsksOnlyForWhatItReads runs the default schedule).
func config(m *llama.Model, policy keyformer.Policy, budget keyformer.Size) *keyformer.Config {
	cfg := keyformer.DefaultConfig(keyformer.Shape{Layers: m.NLayer, QueryHeads: m.NHead, KVHeads: m.NHeadKV})
	cfg.Policy, cfg.Budget, cfg.Seed, cfg.Observe = policy, budget, 7, keyformer.Schedule{}
	return &cfg
}

func samplePrompt(t testing.TB, m *llama.Model) []int32 {
	toks, err := generate.ChatPrompt(m, generate.SampleDocument, generate.SampleQuestion)
	require.NoError(t, err)
	return toks
}

func TestFullPolicyAndLargeBudgetMatchPlainLlama(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)
	const gen = 24
	nCtx := len(prompt) + gen + 256
	plain, err := generate.Run(newSession(t, m, nCtx, 256, nil).Ctx, nil, prompt, generate.Options{MaxNew: gen})
	require.NoError(t, err)
	require.Len(t, plain.Tokens, gen)
	assert.Equal(t, len(prompt)+gen-1, plain.PeakCells, "without the hook every decoded token holds a cell")

	full := newSession(t, m, nCtx, 256, config(m, keyformer.PolicyFull, keyformer.Fraction(0.5)))
	got, err := full.Run(prompt, generate.Options{MaxNew: gen})
	require.NoError(t, err)
	assert.Equal(t, plain.Tokens, got.Tokens, "policy full with the hook")
	assert.Zero(t, got.Evicted)
	assert.Equal(t, plain.PeakCells, got.PeakCells, "the tracker's count of policy full is the count without the hook")
	st := full.Adapter.Stats()
	assert.Equal(t, m.NLayer*(len(prompt)/256+1+gen-1), st.Observations, "every layer of every ubatch observed")

	big := newSession(t, m, nCtx, 256, config(m, keyformer.PolicyKeyformer, keyformer.Tokens(len(prompt)+gen+1)))
	got, err = big.Run(prompt, generate.Options{MaxNew: gen})
	require.NoError(t, err)
	assert.Equal(t, plain.Tokens, got.Tokens, "keyformer with a budget above prompt + generation")
	assert.Zero(t, got.Evicted)
}

// TestBoundedCacheEvictsLowestScores feeds a prompt three times the budget through a cache of
// budget + n_ubatch cells: llama.cpp could not place the tokens if the cells were not freed.
func TestBoundedCacheEvictsLowestScores(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)
	const budget, ubatch, gen = 384, 128, 48
	require.Greater(t, len(prompt), 3*budget)
	cfg := config(m, keyformer.PolicyKeyformer, keyformer.Tokens(budget))
	s := newSession(t, m, budget+ubatch, ubatch, cfg)
	seq, err := s.Adapter.Tracker().Sequence(adapter.DefaultSequence)
	require.NoError(t, err)
	_, window, _ := seq.Limits()
	checks, peak := 0, 0
	res, err := s.Run(prompt, generate.Options{MaxNew: gen, AfterDecode: func() error {
		toks := seq.Tokens()
		peak = max(peak, len(toks))
		if len(toks) > budget+ubatch {
			return errors.New("more cells than budget + n_ubatch")
		}
		planned, err := seq.Plan(nil)
		if err != nil {
			return err
		}
		_, window, _ = seq.Limits()
		evicted := map[int32]bool{}
		for _, e := range planned {
			evicted[e.Cell] = true
		}
		require.Len(t, planned, max(len(toks)-budget, 0))
		for i, tok := range toks {
			if i >= len(toks)-window {
				require.False(t, evicted[tok.Cell], "window token at position %d planned for eviction", tok.Pos)
				continue
			}
			for _, e := range planned {
				if !evicted[tok.Cell] {
					sc := scoreOf(toks, e.Cell)
					require.LessOrEqual(t, sc, tok.Score, "evicted a higher score than a kept candidate")
				}
			}
		}
		checks++
		return nil
	}})
	require.NoError(t, err)
	assert.Len(t, res.Tokens, gen)
	assert.Equal(t, len(prompt)/ubatch+1+gen-1, checks)
	assert.LessOrEqual(t, res.PeakCells, budget+ubatch)
	assert.Equal(t, peak, res.PeakCells, "the peak is the most cells held after a decode, before its evictions")
	assert.Equal(t, budget, seq.Len())
	assert.Equal(t, len(prompt)+gen-1-budget, res.Evicted)
	assert.Greater(t, window, 0)
	t.Logf("bounded: %d prompt tokens through %d cells, peak %d, evicted %d: %q", len(prompt), budget+ubatch,
		res.PeakCells, res.Evicted, m.Detokenize(res.Tokens, true, false))
}

func scoreOf(toks []keyformer.Token, cell int32) float32 {
	for _, t := range toks {
		if t.Cell == cell {
			return t.Score
		}
	}
	return -1
}

func TestFlashAttentionIsReported(t *testing.T) {
	m := model(t)
	tr, err := keyformer.NewTracker(*config(m, keyformer.PolicyKeyformer, keyformer.Fraction(0.5)))
	require.NoError(t, err)
	ad, err := adapter.New(m.Lib(), tr, adapter.Options{})
	require.NoError(t, err)
	ctx, err := m.NewContext(llama.ContextOptions{NCtx: 512, NThreads: 2, FlashAttn: llama.FlashAttnEnabled, Eval: ad.Eval})
	require.NoError(t, err)
	defer ctx.Free()
	require.NoError(t, ad.Attach(ctx.Ptr()))
	require.NoError(t, ctx.Decode(0, []int32{1, 2, 3, 4}, 0))
	_, err = ad.Apply(0)
	assert.ErrorIs(t, err, adapter.ErrNoAttention)
}

// A graph whose node names differ from the pinned llama.cpp's (simulated by hiding nodes from the
// adapter) makes Apply fail with an error naming the nodes that were not seen.
func TestMissingGraphNodesAreNamed(t *testing.T) {
	m := model(t)
	attention := llama.NodeAttention + "-"
	for _, tc := range []struct {
		policy keyformer.Policy
		hidden []string
		want   []string
	}{
		{keyformer.PolicyKeyformer, []string{llama.NodePositions}, []string{`0 positions (node "Kcur-0")`}},
		{keyformer.PolicyKeyformer, []string{llama.NodeCells}, []string{"layer 0's attention", `"cache_k_l0 ("`}},
		{keyformer.PolicyKeyformer, []string{llama.NodePositions, llama.NodeCells, attention}, []string{"no ubatch's positions and cells", `"Kcur-0" of op ROPE`, `"cache_k_l0 (" of op SET_ROWS`}},
		{keyformer.PolicyKeyDiff, []string{llama.NodeKeys + "-2"}, []string{fmt.Sprintf("keys of %d of the %d layers", m.NLayer-1, m.NLayer), `"Kcur"-<layer>, op RESHAPE or VIEW`}},
	} {
		tr, err := keyformer.NewTracker(*config(m, tc.policy, keyformer.Fraction(0.5)))
		require.NoError(t, err)
		ad, err := adapter.New(m.Lib(), tr, adapter.Options{})
		require.NoError(t, err)
		eval := func(tn llama.Tensor, ask bool) bool {
			for _, h := range tc.hidden {
				if tn.NameIs(h) || (strings.HasSuffix(h, "-") || strings.HasSuffix(h, "(")) && tn.HasPrefix(h) {
					return !ask
				}
			}
			return ad.Eval(tn, ask)
		}
		ctx, err := m.NewContext(llama.ContextOptions{NCtx: 256, NThreads: 2, Eval: eval})
		require.NoError(t, err)
		require.NoError(t, ad.Attach(ctx.Ptr()))
		require.NoError(t, ctx.Decode(0, []int32{1, 2, 3, 4}, 0))
		_, err = ad.Apply(0)
		ctx.Free()
		require.Error(t, err, "hidden %v", tc.hidden)
		t.Log(err)
		for _, w := range tc.want {
			assert.Contains(t, err.Error(), w, "hidden %v", tc.hidden)
		}
	}
}

// savedSequence reads prompt as sequence 0 of a new session (nCtx cells, ubatch tokens per
// ubatch) and returns the session with llama.cpp's and the tracker's saved states of it.
func savedSequence(t *testing.T, m *llama.Model, prompt []int32, nCtx, ubatch int, cfg *keyformer.Config) (*generate.Session, []byte, []byte) {
	t.Helper()
	s := newSession(t, m, nCtx, ubatch, cfg)
	_, err := s.Run(prompt, generate.Options{MaxNew: 1})
	require.NoError(t, err)
	llamaState, err := s.Ctx.SeqState(0)
	require.NoError(t, err)
	seq, _ := s.Adapter.Tracker().Sequence(0)
	kfState, err := seq.MarshalBinary()
	require.NoError(t, err)
	return s, llamaState, kfState
}

// TestRestoreBesideOtherSequencesIsRefused restores a saved sequence into a two-sequence context
// whose other sequence holds cells: llama.cpp would place the cells where the adapter cannot see,
// so the restore is refused and the tracker keeps what it had.
func TestRestoreBesideOtherSequencesIsRefused(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)[:300]
	cfg := config(m, keyformer.PolicyKeyformer, keyformer.Tokens(128))
	_, llamaState, kfState := savedSequence(t, m, prompt, 512, 128, cfg)

	b, err := generate.NewSession(m, generate.SessionOptions{Config: cfg, NCtx: 1024, NUbatch: 128, Threads: 2, Sequences: 2, KVUnified: true})
	require.NoError(t, err)
	t.Cleanup(b.Close)
	require.NoError(t, b.Adapter.SetBatch([]int32{1, 1, 1, 1}))
	require.NoError(t, b.Ctx.DecodeBatch([]int32{1, 2, 3, 4}, []int32{0, 1, 2, 3}, []int32{1, 1, 1, 1}, []bool{false, false, false, true}))
	_, err = b.Adapter.Apply(1)
	require.NoError(t, err)
	require.NoError(t, b.Ctx.SetSeqState(0, llamaState))
	err = b.Adapter.RestoreSequence(0, kfState)
	require.ErrorIs(t, err, adapter.ErrRestoreBesideOthers)
	restored, _ := b.Adapter.Tracker().Sequence(0)
	assert.Zero(t, restored.Len(), "the refused restore left sequence 0 as it was")
	other, _ := b.Adapter.Tracker().Sequence(1)
	assert.Equal(t, 4, other.Len())
}

func TestStateWithHolesRestoresIdentically(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)[:700]
	const budget, ubatch = 256, 128
	cfg := config(m, keyformer.PolicyKeyformer, keyformer.Tokens(budget))
	a, llamaState, kfState := savedSequence(t, m, prompt, budget+ubatch, ubatch, cfg)
	seq, _ := a.Adapter.Tracker().Sequence(0)
	holes := int(a.Ctx.SeqPosMax(0)-a.Ctx.SeqPosMin(0)) + 1 - seq.Len()
	require.Greater(t, holes, 100, "the saved sequence has holes")

	// Both continue through the same tokens (a's greedy picks): the restored cache evicts the same
	// positions and predicts the same distributions up to rounding. Restoring packs the cells, and
	// ggml's kernels then sum attention over another number of cells in another order: on some
	// CPUs (AVX-512 Xeons, not AVX2 EPYCs) logits move by up to ~0.7 on this model, enough to
	// tip a near-tie between two tokens, so the tokens are forced rather than compared.
	continueFrom := func(s *generate.Session, force []int32) ([]int32, [][]float32, [][]int32) {
		var out []int32
		var logits [][]float32
		var kept [][]int32
		tok := llama.Argmax(s.Ctx.Logits())
		for i := range 12 {
			if force != nil {
				tok = force[i]
			}
			require.NoError(t, s.Ctx.Decode(0, []int32{tok}, s.Ctx.SeqPosMax(0)+1))
			_, err := s.Adapter.Apply(0)
			require.NoError(t, err)
			logits = append(logits, append([]float32(nil), s.Ctx.Logits()...))
			kept = append(kept, positions(s))
			tok = llama.Argmax(s.Ctx.Logits())
			out = append(out, tok)
		}
		return out, logits, kept
	}
	// Restored into a fresh context, with the first continuation token's logits recomputed by
	// decoding the same token in both.
	b := newSession(t, m, budget+ubatch, ubatch, cfg)
	require.NoError(t, b.Ctx.SetSeqState(0, llamaState))
	require.NoError(t, b.Adapter.RestoreSequence(0, kfState))
	first := llama.Argmax(a.Ctx.Logits())
	for _, s := range []*generate.Session{a, b} {
		require.NoError(t, s.Ctx.Decode(0, []int32{first}, s.Ctx.SeqPosMax(0)+1))
		_, err := s.Adapter.Apply(0)
		require.NoError(t, err)
	}
	next := llama.Argmax(a.Ctx.Logits())
	want, wantLogits, wantKept := continueFrom(a, nil)
	got, gotLogits, gotKept := continueFrom(b, append([]int32{next}, want[:len(want)-1]...))
	assert.Equal(t, wantKept, gotKept, "the same evictions, step by step")
	agree := 0
	for i := range want {
		if got[i] == want[i] {
			agree++
		}
		assert.Less(t, maxAbsDiff(wantLogits[i], gotLogits[i]), 1.5, "step %d: logits equal up to rounding", i)
	}
	assert.GreaterOrEqual(t, agree, len(want)-1, "the same greedy picks but at most one near-tie")
}

// positions returns the positions sequence 0 of the session's tracker holds.
func positions(s *generate.Session) []int32 {
	seq, _ := s.Adapter.Tracker().Sequence(0)
	var out []int32
	for _, tok := range seq.Tokens() {
		out = append(out, tok.Pos)
	}
	return out
}

// maxAbsDiff returns the largest |a[i] - b[i]|.
func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// TestLongDocumentThroughSmallCache runs a GovReport document longer than the model's trained
// context through a 2048-cell budget.
func TestLongDocumentThroughSmallCache(t *testing.T) {
	m := model(t)
	path := filepath.Join("..", "..", "..", "shared", "datasets", "gov_report.dev.jsonl")
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("the evaluation data is not here (%v): this test needs ../shared/datasets", err)
	}
	defer f.Close()
	var rec struct{ Document, Instruction string }
	var prompt []int32
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec))
		toks, err := generate.ChatPrompt(m, rec.Document, rec.Instruction)
		require.NoError(t, err)
		// The shortest document beyond the trained context keeps the test's time down.
		if len(toks) > m.NCtxTrain && (prompt == nil || len(toks) < len(prompt)) {
			prompt = toks
		}
	}
	require.NotNil(t, prompt, "no GovReport document is longer than %d tokens", m.NCtxTrain)
	const budget, ubatch = 2048, 512
	// Positions beyond the trained context would derail the model: compact them.
	s, err := generate.NewSession(m, generate.SessionOptions{Config: config(m, keyformer.PolicyKeyformer, keyformer.Tokens(budget)),
		Adapter: adapter.Options{CompactPositions: true}, NCtx: budget + ubatch, NUbatch: ubatch, Threads: 2})
	require.NoError(t, err)
	defer s.Close()
	res, err := s.Run(prompt, generate.Options{MaxNew: 48, StopAtEOG: true})
	require.NoError(t, err)
	text := m.Detokenize(res.Tokens, true, false)
	t.Logf("%d-token document through %d cells (peak %d): %.1f prompt tok/s, %q", len(prompt), budget+ubatch,
		res.PeakCells, res.PrefillTokensPerSecond(), text)
	assert.LessOrEqual(t, res.PeakCells, budget+ubatch)
	assert.Less(t, int(s.Ctx.SeqPosMax(0)), budget+ubatch, "positions compacted below the cache size")
	assert.Greater(t, len(strings.Fields(text)), 5, "a summary of several words")
}

// TestSequencesKeepSeparateState decodes two sequences in shared batches (server slots on a
// unified cache). Every attention row's probabilities sum to 1 over the cells its own sequence
// may see, so without evictions each sequence's scores must add up to exactly its own rows x heads
// x layers: any row scored into the wrong sequence, or any cell credited to the wrong one, breaks
// that. With a budget, each stays within it through a cache too small for both prompts.
// TestSequencesKeepSeparateState decodes two sequences together, their tokens in one batch, in a
// unified cache and in a cache of one stream per sequence (where llama.cpp regroups a ubatch by
// stream and each stream's attention covers its own cells, its columns numbered within the
// stream): each sequence's cells and scores stay its own, and the full policy scores every token
// alike in both layouts.
func TestSequencesKeepSeparateState(t *testing.T) {
	m := model(t)
	all := samplePrompt(t, m)
	prompts := [][]int32{all[:320], all[320:640]}
	const budget, chunk, gen = 128, 32, 16
	run := func(policy keyformer.Policy, nCtx int, unified bool) *adapter.Adapter {
		tr, err := keyformer.NewTracker(*config(m, policy, keyformer.Tokens(budget)))
		require.NoError(t, err)
		ad, err := adapter.New(m.Lib(), tr, adapter.Options{})
		require.NoError(t, err)
		ctx, err := m.NewContext(llama.ContextOptions{NCtx: uint32(nCtx), NBatch: 2 * chunk, NUbatch: 2 * chunk,
			NThreads: 2, Eval: ad.Eval, Tweak: func(p *llama.ContextParams) { p.NSeqMax, p.KVUnified = 2, unified }})
		require.NoError(t, err)
		defer ctx.Free()
		require.NoError(t, ad.Attach(ctx.Ptr()))
		if unified {
			require.Zero(t, ad.CellsPerStream())
		} else {
			require.Equal(t, ctx.NCtx()/2, ad.CellsPerStream(), "two streams")
		}
		next, last := []int32{0, 0}, []int32{0, 0} // next position; batch index of the last output
		decode := func(toks [][]int32) {
			var tokens, pos, seqs []int32
			var out []bool
			for id, ts := range toks {
				for i, tok := range ts {
					tokens, pos, seqs = append(tokens, tok), append(pos, next[id]), append(seqs, int32(id))
					out = append(out, i == len(ts)-1)
					next[id]++
				}
				last[id] = int32(len(tokens) - 1)
			}
			require.NoError(t, ad.SetBatch(seqs))
			require.NoError(t, ctx.DecodeBatch(tokens, pos, seqs, out))
			for id := range toks {
				_, err := ad.Apply(int32(id))
				require.NoError(t, err)
				seq, _ := ad.Tracker().Sequence(int32(id))
				if policy != keyformer.PolicyFull {
					require.LessOrEqual(t, seq.Len(), budget)
				}
				for _, tok := range seq.Tokens() {
					if perStream := int32(ad.CellsPerStream()); perStream > 0 {
						require.Equal(t, int32(id), tok.Cell/perStream, "cell %d of sequence %d lies in its stream", tok.Cell, id)
					}
				}
				require.Equal(t, next[id]-1, m.Lib().MemorySeqPosMax(ctx.Memory(), int32(id)))
			}
		}
		for done := 0; done < len(prompts[0]); done += chunk {
			decode([][]int32{prompts[0][done : done+chunk], prompts[1][done : done+chunk]})
		}
		for range gen {
			decode([][]int32{{llama.Argmax(ctx.LogitsIth(int(last[0])))}, {llama.Argmax(ctx.LogitsIth(int(last[1])))}})
		}
		return ad
	}
	scores := map[bool][][]float32{}
	for _, unified := range []bool{true, false} {
		ad := run(keyformer.PolicyFull, 1024, unified)
		cells := map[int32]int32{}
		for id := range int32(2) {
			seq, _ := ad.Tracker().Sequence(id)
			var total float64
			var each []float32
			for _, tok := range seq.Tokens() {
				total += float64(tok.Score)
				each = append(each, tok.Score)
				owner, clash := cells[tok.Cell]
				require.False(t, clash, "cell %d held by sequences %d and %d", tok.Cell, owner, id)
				cells[tok.Cell] = id
			}
			rows := len(prompts[id]) + gen
			assert.Equal(t, rows, seq.Len())
			assert.InDelta(t, float64(rows*m.NHead*m.NLayer), total, 1e-3*total, "unified %v: sequence %d's scores", unified, id)
			scores[unified] = append(scores[unified], each)
		}
		for _, p := range []keyformer.Policy{keyformer.PolicyKeyformer, keyformer.PolicyKeyDiff} {
			ad = run(p, 2*(budget+2*chunk), unified)
			assert.Equal(t, []int32{0, 1}, ad.Tracker().IDs(), "%s", p)
			assert.Positive(t, ad.Stats().Evicted, "%s", p)
		}
	}
	for id, want := range scores[true] {
		got := scores[false][id]
		require.Len(t, got, len(want))
		var diff, total float64
		for i := range want {
			diff += math.Abs(float64(got[i] - want[i]))
			total += math.Abs(float64(want[i]))
		}
		t.Logf("sequence %d: the layouts' scores differ by %.2g%% of their total", id, 100*diff/total)
		assert.Less(t, diff/total, 0.05, "sequence %d: each token's score in both layouts (the computation's rounding, "+
			"and the generated tokens where greedy decoding parts, differ)", id)
	}
}

// TestPackMovesKeptCellsToTheBottom packs the sequence after a bounded prompt: the kept cells are
// then the lowest ones (decoding reads only them), and generation goes on as without packing.
func TestPackMovesKeptCellsToTheBottom(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)[:900]
	const budget, ubatch, gen = 256, 128, 16
	var tokens []int32 // the unpacked run's greedy tokens, which the packed run is forced through
	var logits [2][][]float32
	var kept [2][]int32
	var evicted [2]int
	for i, pack := range []bool{false, true} {
		s := newSession(t, m, budget+ubatch, ubatch, config(m, keyformer.PolicyKeyformer, keyformer.Tokens(budget)))
		o := generate.Options{MaxNew: gen, Pack: pack, Force: tokens, Logits: func(_ int, l []float32) error {
			logits[i] = append(logits[i], append([]float32(nil), l...))
			return nil
		}}
		g, err := generate.Start(s.Ctx, s.Adapter, prompt, o)
		require.NoError(t, err)
		seq, _ := s.Adapter.Tracker().Sequence(0)
		top := int32(0)
		for _, tok := range seq.Tokens() {
			top = max(top, tok.Cell)
		}
		if pack {
			assert.Equal(t, int32(budget-1), top, "packed cells are 0..budget-1")
		} else {
			assert.Greater(t, top, int32(budget), "without packing the kept cells are spread out")
		}
		for more := true; more; {
			more, err = g.Next()
			require.NoError(t, err)
		}
		tokens = g.Result().Tokens
		kept[i], evicted[i] = positions(s), g.Result().Evicted
	}
	// Equal up to rounding (see TestStateWithHolesRestoresIdentically): the same evictions, the
	// same greedy picks but at most one near-tie.
	assert.Equal(t, kept[0], kept[1])
	assert.Equal(t, evicted[0], evicted[1])
	agree := 0
	for i := range logits[0] {
		if llama.Argmax(logits[1][i]) == tokens[i] {
			agree++
		}
		assert.Less(t, maxAbsDiff(logits[0][i], logits[1][i]), 1.5, "step %d", i)
	}
	assert.GreaterOrEqual(t, agree, gen-1)
}

// TestRefusedRemovalIsUnsupported stands in for a model whose memory cannot remove single
// positions (sliding-window, recurrent, hybrid: llama_memory_seq_rm returns false there) by
// making that one call refuse, and checks the error the host gets.
func TestRefusedRemovalIsUnsupported(t *testing.T) {
	m := model(t)
	lib := m.Lib()
	seqRm := lib.MemorySeqRm
	lib.MemorySeqRm = func(mem uintptr, seq, p0, p1 int32) bool { return false }
	t.Cleanup(func() { lib.MemorySeqRm = seqRm })
	s := newSession(t, m, 256+128, 128, config(m, keyformer.PolicyKeyformer, keyformer.Tokens(256)))
	_, err := s.Run(samplePrompt(t, m)[:600], generate.Options{MaxNew: 1})
	require.ErrorIs(t, err, adapter.ErrUnsupportedMemory)
	assert.Contains(t, err.Error(), "sliding-window, recurrent or hybrid")
}

// TestScheduleAsksOnlyForWhatItReads counts the attention tensors the adapter asks llama.cpp for:
// none for the policies that read no attention; with a layer stride and a decode stride (one of
// them the default schedule), the scheduled layers of the prompt's ubatches and of every k-th
// generated token.
func TestScheduleAsksOnlyForWhatItReads(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)
	const gen, ubatch = 24, 256
	for _, p := range []keyformer.Policy{keyformer.PolicyStreaming, keyformer.PolicyWindow} {
		s := newSession(t, m, len(prompt)+gen, ubatch, config(m, p, keyformer.Fraction(0.5)))
		res, err := s.Run(prompt, generate.Options{MaxNew: gen})
		require.NoError(t, err, p)
		assert.NotZero(t, res.Evicted, p)
		st := s.Adapter.Stats()
		assert.Zero(t, st.Reads, "%s asked for attention", p)
		assert.Zero(t, st.Observations, p)
	}
	for _, schedule := range []keyformer.Schedule{{LayerStride: 3, DecodeStride: 4}, keyformer.DefaultConfig(keyformer.Shape{}).Observe} {
		cfg := config(m, keyformer.PolicyKeyformer, keyformer.Fraction(0.5))
		cfg.Observe = schedule
		s := newSession(t, m, len(prompt)+gen, ubatch, cfg)
		res, err := s.Run(prompt, generate.Options{MaxNew: gen})
		require.NoError(t, err)
		assert.NotZero(t, res.Evicted)
		layers := (m.NLayer + schedule.LayerStride - 1) / schedule.LayerStride
		ubatches := (len(prompt) + ubatch - 1) / ubatch
		decodes := (gen - 1) / schedule.DecodeStride // generated tokens 1..gen-1 are decoded
		st := s.Adapter.Stats()
		assert.Equal(t, layers*(ubatches+decodes), st.Reads, "%+v", schedule)
		assert.Equal(t, st.Reads, st.Observations)
	}
}

// TestSlackEvictsInBatchesWithinItsCache generates with an eviction slack through a cache of
// budget + max(n_ubatch, slack) cells: past the prompt the sequence grows to budget + slack and
// is brought back to the budget in one apply, one llama_memory_seq_rm per run of positions.
func TestSlackEvictsInBatchesWithinItsCache(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)
	const budget, ubatch, slack, gen = 256, 64, 16, 40
	cfg := config(m, keyformer.PolicyKeyformer, keyformer.Tokens(budget))
	cfg.Observe.Slack = slack
	s := newSession(t, m, budget+max(ubatch, slack), ubatch, cfg)
	seq, err := s.Adapter.Tracker().Sequence(adapter.DefaultSequence)
	require.NoError(t, err)
	var sizes []int
	res, err := s.Run(prompt, generate.Options{MaxNew: gen, AfterDecode: func() error {
		sizes = append(sizes, seq.Len())
		return nil
	}})
	require.NoError(t, err)
	require.Len(t, res.Tokens, gen)
	tail := sizes[len(sizes)-(gen-1):] // at each generated token's decode, before its apply
	for i, n := range tail {
		require.True(t, n > budget && n <= budget+slack, "decode %d: %d cells", i, n)
	}
	assert.Contains(t, tail, budget+1, "evicted back to the budget")
	assert.Contains(t, tail, budget+slack, "grew to the slack")
	assert.Equal(t, len(prompt)+gen-1-seq.Len(), res.Evicted)
	toks := seq.Tokens()
	assert.Equal(t, toks[0].Pos, s.Ctx.SeqPosMin(0), "llama.cpp holds what the tracker holds")
	assert.Equal(t, toks[len(toks)-1].Pos, s.Ctx.SeqPosMax(0))
}

// TestCompactionIsRare renumbers positions through a bounded cache in one step once they reach
// CompactAt, against after every eviction (CompactAt 0): a handful of renumberings instead of
// one per decode, positions kept below the limit, and the same cells held.
func TestCompactionIsRare(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)
	const budget, ubatch, gen, at = 256, 128, 32, 600
	for _, compactAt := range []int32{0, at} {
		s, err := generate.NewSession(m, generate.SessionOptions{Config: config(m, keyformer.PolicyKeyformer, keyformer.Tokens(budget)),
			Adapter: adapter.Options{CompactPositions: true, CompactAt: compactAt}, NCtx: budget + ubatch, NUbatch: ubatch, Threads: 2})
		require.NoError(t, err)
		res, err := s.Run(prompt, generate.Options{MaxNew: gen})
		require.NoError(t, err)
		require.Len(t, res.Tokens, gen)
		st := s.Adapter.Stats()
		seq, err := s.Adapter.Tracker().Sequence(adapter.DefaultSequence)
		require.NoError(t, err)
		assert.Equal(t, budget, seq.Len())
		if compactAt == 0 {
			assert.GreaterOrEqual(t, st.Compactions, gen-1, "after every eviction")
			assert.Equal(t, int32(budget-1), s.Ctx.SeqPosMax(0))
		} else {
			steps := (len(prompt) + gen) / (at - budget)
			assert.True(t, st.Compactions >= 1 && st.Compactions <= steps+1, "%d renumberings for %d tokens", st.Compactions, len(prompt)+gen)
			assert.Less(t, int(s.Ctx.SeqPosMax(0)), at+ubatch)
		}
		toks := seq.Tokens()
		assert.Equal(t, toks[0].Pos, s.Ctx.SeqPosMin(0))
		assert.Equal(t, toks[len(toks)-1].Pos, s.Ctx.SeqPosMax(0))
		s.Close()
	}
}

// TestKeyDiffReadsKeysUnderFlashAttention runs KeyDiff, which reads each ubatch's keys instead of
// its attention, with flash attention on and a q8_0 cache (what the attention policies cannot
// run under): every layer's keys of every ubatch reach the tracker, and the cache stays bounded.
func TestKeyDiffReadsKeysUnderFlashAttention(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)
	const budget, ubatch, gen = 384, 128, 24
	cfg := config(m, keyformer.PolicyKeyDiff, keyformer.Tokens(budget))
	s, err := generate.NewSession(m, generate.SessionOptions{Config: cfg, NCtx: budget + ubatch, NUbatch: ubatch, Threads: 2, KV: generate.KVQ8_0})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	seq, err := s.Adapter.Tracker().Sequence(adapter.DefaultSequence)
	require.NoError(t, err)
	res, err := s.Run(prompt, generate.Options{MaxNew: gen})
	require.NoError(t, err)
	assert.Len(t, res.Tokens, gen)
	assert.LessOrEqual(t, res.PeakCells, budget+ubatch)
	assert.Equal(t, budget, seq.Len())
	ubatches := (len(prompt)+ubatch-1)/ubatch + gen - 1
	st := s.Adapter.Stats()
	assert.Equal(t, m.NLayer*ubatches, st.Observations, "every layer's keys of every ubatch")
	assert.Equal(t, m.NLayer*ubatches, st.Reads)
	scored := 0
	for _, tok := range seq.Tokens() {
		if tok.Score != 0 {
			scored++
		}
	}
	assert.Equal(t, budget, scored, "every kept token was scored (minus its keys' cosines to the mean keys)")
	t.Logf("keydiff, flash attention, q8_0: %q", m.Detokenize(res.Tokens, true, false))

	attention, err := keyformer.NewTracker(*config(m, keyformer.PolicyH2O, keyformer.Tokens(budget)))
	require.NoError(t, err)
	assert.ErrorContains(t, s.Adapter.SetObservers(attention), "reads attention, the tracker (keydiff) keys")
}

// KeyDiff reads the keys before their rotation: layer 0's keys depend on the token alone (no
// earlier layer has mixed positions in), so one token repeated scores the same at every
// position, where rotated keys would differ with the position.
func TestKeyDiffReadsKeysBeforeRotation(t *testing.T) {
	m := model(t)
	one, err := m.Tokenize(" the", false, false)
	require.NoError(t, err)
	require.Len(t, one, 1)
	prompt := slices.Repeat(one, 64)
	cfg := config(m, keyformer.PolicyKeyDiff, keyformer.Tokens(256))
	cfg.Observe.Layers = []int{0}
	s := newSession(t, m, 256, 64, cfg)
	seq, err := s.Adapter.Tracker().Sequence(adapter.DefaultSequence)
	require.NoError(t, err)
	_, err = s.Run(prompt, generate.Options{MaxNew: 1})
	require.NoError(t, err)
	toks := seq.Tokens()
	require.GreaterOrEqual(t, len(toks), len(prompt))
	first := toks[0].Score
	assert.InDelta(t, -float64(m.NHeadKV), first, 1e-4, "keys equal to the mean keys: minus one cosine of 1 per KV head")
	for _, tok := range toks[1:len(prompt)] {
		assert.InDelta(t, first, tok.Score, 1e-5, "position %d", tok.Pos)
	}
}

// TestAskFilterChangesNothing reads a prompt twice the budget through the bounded cache and
// generates, once with the context asking Go only about the adapter's Nodes (the rest answered by
// the ask filter, as in a generate.Session) and once with every ask entering Go: the tokens, the
// evictions, the tensors read and the kept cells with their scores must be identical, for a
// policy that reads attention and one that reads keys, with far fewer asks reaching Go.
func TestAskFilterChangesNothing(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)[:512]
	const budget, ubatch, gen = 256, 64, 16
	type run struct {
		res        generate.Result
		seq        *keyformer.Sequence
		asks, read int
	}
	generateWith := func(cfg *keyformer.Config, filter bool) run {
		tr, err := keyformer.NewTracker(*cfg)
		require.NoError(t, err)
		ad, err := adapter.New(m.Lib(), tr, adapter.Options{})
		require.NoError(t, err)
		var r run
		o := llama.ContextOptions{NCtx: budget + ubatch, NUbatch: ubatch, NThreads: 2,
			Eval: func(tn llama.Tensor, ask bool) bool { r.asks++; return ad.Eval(tn, ask) }}
		if filter {
			o.EvalNodes = ad.Nodes()
		}
		ctx, err := m.NewContext(o)
		require.NoError(t, err)
		defer ctx.Free()
		require.NoError(t, ad.Attach(ctx.Ptr()))
		r.res, err = generate.Run(ctx, ad, prompt, generate.Options{MaxNew: gen})
		require.NoError(t, err)
		r.seq, err = tr.Sequence(adapter.DefaultSequence)
		require.NoError(t, err)
		r.read = ad.Stats().Reads
		return r
	}
	for _, policy := range []keyformer.Policy{keyformer.PolicyKeyformer, keyformer.PolicyKeyDiff} {
		cfg := config(m, policy, keyformer.Tokens(budget))
		cfg.Observe = keyformer.DefaultConfig(cfg.Shape).Observe // the default schedule's skips too
		want, got := generateWith(cfg, false), generateWith(cfg, true)
		assert.Equal(t, want.res.Tokens, got.res.Tokens, "%s: tokens", policy)
		assert.Equal(t, want.res.Evicted, got.res.Evicted, "%s: evictions", policy)
		assert.Positive(t, got.res.Evicted, "%s", policy)
		assert.Equal(t, want.read, got.read, "%s: tensors read", policy)
		assert.Equal(t, want.seq.Tokens(), got.seq.Tokens(), "%s: kept cells and scores", policy)
		assert.Less(t, 5*got.asks, want.asks, "%s: asks entering Go", policy)
		t.Logf("%s: %d calls into Go with the filter, %d without, for %d prompt and %d generated tokens; %d tensors read",
			policy, got.asks, want.asks, len(prompt), gen, got.read)
	}
}
