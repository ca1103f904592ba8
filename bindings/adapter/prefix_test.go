//go:build linux || darwin

package adapter_test

import (
	"testing"

	"github.com/keyformer/keyformer/bindings/generate"
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
