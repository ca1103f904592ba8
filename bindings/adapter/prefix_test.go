//go:build linux || darwin

package adapter_test

import (
	"math"
	"slices"
	"testing"

	"github.com/keyformer/keyformer/bindings/adapter"
	"github.com/keyformer/keyformer/bindings/lab/generate"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPrefixGenerationsMatchSeparateRuns reads a prompt once with three policies observing and
// checks that every generation from that prefix equals a run of its own that reads the prompt
// whole with that policy (the paper's setting), token for token, evictions included.
func TestPrefixGenerationsMatchSeparateRuns(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)
	const gen, ubatch = 20, 256
	nCtx := len(prompt) + gen
	so := generate.SessionOptions{NCtx: nCtx, NUbatch: ubatch, Threads: 2}
	base := *config(m, keyformer.PolicyFull, keyformer.Fraction(1))
	policies := []keyformer.Policy{keyformer.PolicyKeyformer, keyformer.PolicyH2O, keyformer.PolicyStreaming}
	p, err := generate.ReadPrefix(m, prompt, base, policies, so)
	require.NoError(t, err)
	assert.Equal(t, len(prompt), p.Prompt)

	plain, err := newSession(t, m, nCtx, ubatch, nil).Run(prompt, generate.Options{MaxNew: gen})
	require.NoError(t, err)
	got, err := p.Generate(m, so, generate.Options{MaxNew: gen})
	require.NoError(t, err)
	assert.Equal(t, plain.Tokens, got.Tokens, "full cache")
	assert.Equal(t, plain.Tokens[0], p.First)
	assert.Zero(t, got.Evicted)

	for _, c := range []struct {
		policy keyformer.Policy
		budget float64
	}{{keyformer.PolicyKeyformer, 0.5}, {keyformer.PolicyH2O, 0.3}, {keyformer.PolicyStreaming, 0.3}, {keyformer.PolicyKeyformer, 0.2}} {
		cfg := config(m, c.policy, keyformer.Fraction(c.budget))
		want, err := newSession(t, m, nCtx, ubatch, cfg).Run(prompt, generate.Options{MaxNew: gen, Whole: true})
		require.NoError(t, err)
		o := so
		o.Config = cfg
		got, err := p.Generate(m, o, generate.Options{MaxNew: gen})
		require.NoError(t, err)
		assert.Equal(t, want.Tokens, got.Tokens, "%s at %.1f", c.policy, c.budget)
		assert.Equal(t, want.Evicted, got.Evicted, "%s at %.1f", c.policy, c.budget)
		budget := int(c.budget*float64(len(prompt)) + 0.5)
		assert.Equal(t, len(prompt)-budget+gen-1, got.Evicted, "%s at %.1f: down to the budget, then one per step", c.policy, c.budget)
	}

	o := so
	o.Config = config(m, keyformer.PolicyTOVA, keyformer.Fraction(0.5))
	_, err = p.Generate(m, o, generate.Options{MaxNew: gen})
	assert.ErrorContains(t, err, "not scored for policy tova")
}

// TestObserversNeedTheTrackersShape checks SetObservers' argument check.
func TestObserversNeedTheTrackersShape(t *testing.T) {
	m := model(t)
	s := newSession(t, m, 256, 64, config(m, keyformer.PolicyFull, keyformer.Fraction(1)))
	cfg := keyformer.DefaultConfig(keyformer.Shape{Layers: m.NLayer + 1, QueryHeads: m.NHead, KVHeads: m.NHeadKV})
	other, err := keyformer.NewTracker(cfg)
	require.NoError(t, err)
	assert.ErrorContains(t, s.Adapter.SetObservers(other), "observer 0 has shape")
}

// TestContextShiftKeepsTheFirstTokens feeds a prompt four times the context through llama.cpp's
// context shift: the kept tokens stay at positions 0..keep-1 and the context never overflows;
// without the shift the same run fails.
func TestContextShiftKeepsTheFirstTokens(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)
	const nCtx, ubatch, keep, gen = 256, 64, 4, 8
	require.Greater(t, len(prompt), 4*nCtx)
	s := newSession(t, m, nCtx, ubatch, nil)
	var maxPos int32
	res, err := s.Run(prompt, generate.Options{MaxNew: gen, ContextShift: nCtx, ShiftKeep: keep, AfterDecode: func() error {
		maxPos = max(maxPos, s.Ctx.SeqPosMax(0))
		return nil
	}})
	require.NoError(t, err)
	assert.Len(t, res.Tokens, gen)
	assert.Less(t, maxPos, int32(nCtx), "positions shifted down")
	assert.LessOrEqual(t, res.PeakCells, nCtx)
	assert.Equal(t, len(prompt)+gen-1-int(s.Ctx.SeqPosMax(0)+1), res.Evicted, "every discarded token counted")
	assert.Equal(t, int32(0), s.Ctx.SeqPosMin(0))

	_, err = newSession(t, m, nCtx, ubatch, nil).Run(prompt, generate.Options{MaxNew: gen})
	assert.Error(t, err, "without the shift the prompt does not fit")
}

// TestForcedRunsFollowTheTeacher generates greedily with the full cache (the teacher), then
// forces the same context and a policy's through the teacher's tokens: the full cache sees
// exactly the teacher's logits again, the policy takes the teacher's tokens whatever its own
// argmax, and the Logits hook sees every position, the first included.
func TestForcedRunsFollowTheTeacher(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)
	const gen, ubatch = 16, 256
	nCtx := len(prompt) + gen
	so := generate.SessionOptions{NCtx: nCtx, NUbatch: ubatch, Threads: 2}
	p, err := generate.ReadPrefix(m, prompt, *config(m, keyformer.PolicyFull, keyformer.Fraction(1)),
		[]keyformer.Policy{keyformer.PolicyStreaming}, so)
	require.NoError(t, err)
	record := func(into *[][]float32) func(int, []float32) error {
		return func(i int, logits []float32) error {
			require.Len(t, *into, i, "positions in order")
			*into = append(*into, append([]float32(nil), logits...))
			return nil
		}
	}
	var teacher, again, policy [][]float32
	greedy, err := p.Generate(m, so, generate.Options{MaxNew: gen, Logits: record(&teacher)})
	require.NoError(t, err)
	require.Len(t, teacher, len(greedy.Tokens))

	forced, err := p.Generate(m, so, generate.Options{Force: greedy.Tokens, MaxNew: 1, StopAtEOG: true, Logits: record(&again)})
	require.NoError(t, err)
	assert.Equal(t, greedy.Tokens, forced.Tokens, "Force sets the length, not MaxNew")
	assert.Equal(t, teacher, again, "the same cache predicts the same distributions")

	o := so
	o.Config = config(m, keyformer.PolicyStreaming, keyformer.Fraction(0.1))
	res, err := p.Generate(m, o, generate.Options{Force: greedy.Tokens, Logits: record(&policy)})
	require.NoError(t, err)
	assert.Equal(t, greedy.Tokens, res.Tokens, "forced through the teacher's tokens")
	require.Len(t, policy, len(greedy.Tokens))
	assert.Equal(t, teacher[0], policy[0], "the first token is predicted by the whole prompt")
	differs := 0
	for i := 1; i < len(policy); i++ {
		if llama.Argmax(policy[i]) != greedy.Tokens[i] {
			differs++
		}
	}
	assert.Positive(t, differs, "a 10% streaming cache disagrees with the full cache somewhere")
}

// TestBoundedPrefixContinuesLikeARun reads a prompt bounded (chunks, evictions, positions
// compacted) once and continues it: the continuation equals a run that reads the prompt and
// generates in one go, and a continuation with a suffix keeps the cache bounded.
func TestBoundedPrefixContinuesLikeARun(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)
	const gen, ubatch, cells = 12, 64, 384
	so := generate.SessionOptions{NCtx: cells, NUbatch: ubatch, Threads: 2, Config: config(m, keyformer.PolicyKeyformer, keyformer.Tokens(cells-ubatch))}
	so.Adapter.CompactPositions = true
	s, err := generate.NewSession(m, so)
	require.NoError(t, err)
	want, err := s.Run(prompt, generate.Options{MaxNew: gen})
	s.Close()
	require.NoError(t, err)

	p, err := generate.ReadBounded(m, prompt, so, generate.Options{})
	require.NoError(t, err)
	assert.Equal(t, want.Tokens[0], p.First)
	got, err := p.Generate(m, so, generate.Options{MaxNew: gen})
	require.NoError(t, err)
	assert.Equal(t, want.Tokens, got.Tokens)
	assert.Equal(t, want.PeakCells, got.PeakCells, "the peak counts the prefix's reading")
	assert.LessOrEqual(t, got.PeakCells, cells)

	suffix, err := m.Tokenize("\n\nAnswer in one word.", false, false)
	require.NoError(t, err)
	again, err := p.Continue(m, so, suffix, generate.Options{MaxNew: gen})
	require.NoError(t, err)
	assert.NotEmpty(t, again.Tokens)
	assert.LessOrEqual(t, again.PeakCells, cells, "the suffix is read inside the bounded cache")
	assert.Positive(t, again.Evicted)
}

// TestQuantizedKVCache reads the sample prompt into llama.cpp's q8_0 and q4_0 caches (flash
// attention on, as a quantized V cache needs) and compares the next-token distribution with the
// f16 cache's: q8_0 keeps the greedy token and stays closer than q4_0. A quantized cache leaves no
// attention to observe, so a session with an eviction config refuses it.
func TestQuantizedKVCache(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)
	next := func(kv generate.KVCache) []float32 {
		s, err := generate.NewSession(m, generate.SessionOptions{NCtx: len(prompt) + 8, NUbatch: 256, Threads: 2, KV: kv})
		require.NoError(t, err, kv)
		defer s.Close()
		var logits []float32
		_, err = s.Run(prompt, generate.Options{MaxNew: 1, Logits: func(_ int, l []float32) error {
			logits = append([]float32(nil), l...)
			return nil
		}})
		require.NoError(t, err, kv)
		return logits
	}
	f16, q8, q4 := next(generate.KVF16), next(generate.KVQ8_0), next(generate.KVQ4_0)
	assert.Equal(t, llama.Argmax(f16), llama.Argmax(q8), "q8_0 keeps the greedy token")
	klQ8, klQ4 := kl(f16, q8), kl(f16, q4)
	t.Logf("KL(f16 || q8_0) = %.5f, KL(f16 || q4_0) = %.5f nats", klQ8, klQ4)
	assert.Positive(t, klQ8, "the q8_0 cache is a different cache")
	assert.Less(t, klQ8, 0.05)
	assert.Less(t, klQ8, klQ4, "4 bits lose more than 8")

	_, err := generate.NewSession(m, generate.SessionOptions{NCtx: 256, NUbatch: 64, Threads: 2, KV: generate.KVQ8_0,
		Config: config(m, keyformer.PolicyKeyformer, keyformer.Fraction(0.5))})
	assert.ErrorContains(t, err, "a q8_0 KV cache needs flash attention")
}

// kl is KL(p || q) in nats for the distributions of logits p and q.
func kl(p, q []float32) float64 {
	lp, lq := logSoftmax(p), logSoftmax(q)
	var d float64
	for i := range lp {
		d += math.Exp(lp[i]) * (lp[i] - lq[i])
	}
	return d
}

// logSoftmax returns the log-probabilities of logits.
func logSoftmax(logits []float32) []float64 {
	hi := float64(slices.Max(logits))
	var sum float64
	for _, x := range logits {
		sum += math.Exp(float64(x) - hi)
	}
	out := make([]float64, len(logits))
	for i, x := range logits {
		out[i] = float64(x) - hi - math.Log(sum)
	}
	return out
}

// TestRepeatPassScoresByReconstruction reads a prompt bounded under the peak policy with a
// reconstruction pass after every chunk: after each chunk llama.cpp and the tracker hold the same
// tokens, none of the pass's; the pass's cells count in the peak; and the scores it leaves differ
// from those the reading alone leaves.
func TestRepeatPassScoresByReconstruction(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)
	repeat, err := generate.RepeatPrompt(m)
	require.NoError(t, err)
	const gen, ubatch, budget = 8, 64, 160
	cells := budget + 2*ubatch + len(repeat)
	read := func(o generate.Options) (generate.Result, []keyformer.Token) {
		s := newSession(t, m, cells, ubatch, config(m, keyformer.PolicyPeak, keyformer.Tokens(budget)))
		seq, err := s.Adapter.Tracker().Sequence(adapter.DefaultSequence)
		require.NoError(t, err)
		chunks := 0
		o.MaxNew, o.AfterDecode = gen, func() error {
			tokens := seq.Tokens()
			last := tokens[len(tokens)-1].Pos
			assert.Equal(t, s.Ctx.SeqPosMax(adapter.DefaultSequence), last, "llama.cpp and the tracker end at one position")
			if last < int32(len(prompt)) {
				chunks++
				assert.Equal(t, int32(min(chunks*ubatch, len(prompt))-1), last, "chunk %d: no repeated token is left", chunks)
			}
			return nil
		}
		res, err := s.Run(prompt, o)
		require.NoError(t, err)
		assert.Equal(t, (len(prompt)+ubatch-1)/ubatch, chunks)
		return res, seq.Tokens()
	}
	plain, plainTokens := read(generate.Options{})
	repeated, repeatedTokens := read(generate.Options{Repeat: repeat})
	assert.Greater(t, repeated.PeakCells, plain.PeakCells, "the pass holds its chunk beside the budget")
	assert.LessOrEqual(t, repeated.PeakCells, cells)
	assert.Len(t, repeated.Tokens, gen)
	assert.Positive(t, repeated.Evicted)
	var plainScores, repeatedScores []float32
	for _, tok := range plainTokens {
		plainScores = append(plainScores, tok.Score)
	}
	for _, tok := range repeatedTokens {
		repeatedScores = append(repeatedScores, tok.Score)
	}
	assert.NotEqual(t, plainScores, repeatedScores, "the repetition, not the reading, scores the chunks")
}

// TestProbeScoresARestoredPrefix reads a prompt whole under the peak policy, then continues it
// with and without a probe (the suffix and an answer): the probe's tokens sit in the cache beside
// the prompt while it scores, then leave llama.cpp and the tracker alike, and the cache comes down
// to the same budget.
func TestProbeScoresARestoredPrefix(t *testing.T) {
	m := model(t)
	prompt := samplePrompt(t, m)
	suffix, err := m.Tokenize("\n\nWho keeps the lighthouse?", false, false)
	require.NoError(t, err)
	answer, err := m.Tokenize("Marta keeps it.", false, false)
	require.NoError(t, err)
	probe := slices.Concat(suffix, answer)
	const gen, ubatch = 4, 128
	budget := len(prompt) / 4
	so := generate.SessionOptions{NCtx: len(prompt) + len(probe) + gen, NUbatch: ubatch, Threads: 2,
		Config: config(m, keyformer.PolicyPeak, keyformer.Tokens(budget))}
	p, err := generate.ReadBounded(m, prompt, so, generate.Options{Whole: true})
	require.NoError(t, err)
	for _, probe := range [][]int32{nil, probe} {
		res, err := p.Continue(m, so, suffix, generate.Options{MaxNew: gen, Probe: probe})
		require.NoError(t, err)
		assert.Len(t, res.Tokens, gen)
		assert.Equal(t, len(prompt)+len(probe), res.PeakCells, "the probe holds its cells while it scores")
		// Down to the budget once, then the suffix and each generated token but the last evict
		// their own number: a probe token left in the tracker would be one more to evict.
		assert.Equal(t, len(prompt)-budget+len(suffix)+gen-1, res.Evicted, "probe of %d tokens", len(probe))
	}
}
