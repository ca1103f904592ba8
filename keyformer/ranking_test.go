package keyformer

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rankingSequence returns a sequence of one layer and head, no noise, budget and window in tokens,
// with ranking r.
func rankingSequence(t *testing.T, budget, window int, r Ranking) *Sequence {
	cfg := testConfig(budget, window)
	cfg.Shape = Shape{Layers: 1, QueryHeads: 1, KVHeads: 1}
	cfg.Policy, cfg.Ranking, cfg.Sinks = PolicyH2O, r, 1
	return newTestSequence(t, cfg, 0)
}

// causalRows returns the attention of rows query tokens over cols columns: row i sees the first
// cols-rows+i+1 columns, with the probabilities p (cut to those it sees and renormalised).
func causalRows(rows, cols int, p []float32) Attention {
	d := make([]float32, rows*cols)
	for i := range rows {
		seen := cols - rows + i + 1
		var sum float32
		for j := range seen {
			sum += p[j]
		}
		for j := range seen {
			d[i*cols+j] = p[j] / sum
		}
	}
	return Attention{Data: d, Rows: rows, Heads: 1, Cols: cols, RowStride: cols}
}

func TestMeanAttentionRanksLateTokensFairly(t *testing.T) {
	// Tokens 0-3 are read first and seen by 8 rows; tokens 4-7 by 4 rows at most. Token 5 draws
	// twice the attention of every other token: summed, the early tokens still outrank it.
	p := []float32{1, 1, 1, 1, 1, 2, 1, 1}
	plan := func(r Ranking) []Eviction {
		s := rankingSequence(t, 4, 1, r)
		require.NoError(t, s.AddCells([]int32{0, 1, 2, 3}, []int32{0, 1, 2, 3}))
		require.NoError(t, s.ObserveAttention(0, causalRows(4, 4, p)))
		require.NoError(t, s.AddCells([]int32{4, 5, 6, 7}, []int32{4, 5, 6, 7}))
		require.NoError(t, s.ObserveAttention(0, causalRows(4, 8, p)))
		evs, err := s.Plan(nil)
		require.NoError(t, err)
		return evs
	}
	summed := plan(Ranking{})
	assert.Contains(t, summed, Eviction{5, -1, -1}, "summed attention favours the first chunk")
	mean := plan(Ranking{MeanAttention: true})
	assert.Len(t, mean, 4)
	assert.NotContains(t, mean, Eviction{5, -1, -1}, "per query, token 5 draws the most attention")
}

func TestSpanKeepsTheNeighboursOfAKeyToken(t *testing.T) {
	// Token 3 is the key token; 2 and 4 score below 0, 1, 5 and 6 but are its neighbours.
	scores := []float32{0.3, 0.2, 0.05, 0.9, 0.05, 0.2, 0.3, 0, 0}
	plan := func(r Ranking) []Eviction {
		s := rankingSequence(t, 5, 2, r)
		cells := []int32{0, 1, 2, 3, 4, 5, 6, 7, 8}
		require.NoError(t, s.AddCells(cells, cells))
		require.NoError(t, s.ObserveAttention(0, Attention{Data: scores, Rows: 1, Heads: 1, Cols: 9, RowStride: 9}))
		evs, err := s.Plan(nil)
		require.NoError(t, err)
		return evs
	}
	assert.ElementsMatch(t, []Eviction{{2, -1, -1}, {4, -1, -1}, {1, -1, -1}, {5, -1, -1}}, plan(Ranking{}))
	assert.ElementsMatch(t, []Eviction{{0, -1, -1}, {1, -1, -1}, {5, -1, -1}, {6, -1, -1}}, plan(Ranking{Span: 1}),
		"the key token keeps its neighbours 2 and 4")
}

func TestKeepSinksKeepsTheFirstTokens(t *testing.T) {
	scores := []float32{0, 0.3, 0.2, 0.4, 0.1, 0}
	s := rankingSequence(t, 3, 1, Ranking{KeepSinks: true})
	cells := []int32{0, 1, 2, 3, 4, 5}
	require.NoError(t, s.AddCells(cells, cells))
	require.NoError(t, s.ObserveAttention(0, Attention{Data: scores, Rows: 1, Heads: 1, Cols: 6, RowStride: 6}))
	evs, err := s.Plan(nil)
	require.NoError(t, err)
	assert.ElementsMatch(t, []Eviction{{4, -1, -1}, {2, -1, -1}, {1, -1, -1}}, evs, "token 0 scores lowest but is a sink")

	cfg := testConfig(3, 2)
	cfg.Ranking.KeepSinks, cfg.Sinks = true, 1
	assert.ErrorContains(t, cfg.Validate(), "sinks leave no room")
	cfg.Ranking = Ranking{Span: -1}
	assert.ErrorContains(t, cfg.Validate(), "ranking.span:")
}

func TestRankingOptionsLeaveThePublishedPolicyAlone(t *testing.T) {
	// With every option off, a run is the published method's: the same evictions as before the
	// options existed (pinned by TestH2OEqualsKeyformerWithoutNoise and the reference tests), and
	// each option changes them on the test engine's attention.
	base := testConfig(12, 3)
	ref := newTestEngine(t, newTestSequence(t, base, 1), 9).run(40, 8, 30)
	for _, r := range []Ranking{{MeanAttention: true}, {Span: 2}, {KeepSinks: true}} {
		cfg := base
		cfg.Ranking = r
		got := newTestEngine(t, newTestSequence(t, cfg, 1), 9).run(40, 8, 30)
		assert.NotEqual(t, ref, got, "%+v", r)
	}
}

// TestMeanAttentionStateVersion: a state with seen counts (version 2) is read only by a tracker
// that keeps them, and the other way round (TestStateRoundTripContinuesIdentically restores it).
func TestMeanAttentionStateVersion(t *testing.T) {
	cfg := testConfig(10, 3)
	cfg.Ranking.MeanAttention = true
	a := newTestSequence(t, cfg, 4)
	newTestEngine(t, a, 8).run(25, 8, 5)
	data, err := a.MarshalBinary()
	require.NoError(t, err)
	plain := testConfig(10, 3)
	assert.ErrorContains(t, newTestSequence(t, plain, 4).UnmarshalBinary(data), "state version 2")
	old, err := newTestSequence(t, plain, 4).MarshalBinary()
	require.NoError(t, err)
	assert.ErrorContains(t, newTestSequence(t, cfg, 4).UnmarshalBinary(old), "state version 1")
}

func TestMeanAttentionSeenCountsFollowEdits(t *testing.T) {
	cfg := testConfig(10, 3)
	cfg.Ranking.MeanAttention = true
	tr := newTestTracker(t, cfg)
	a := seq(t, tr, 0)
	newTestEngine(t, a, 3).run(20, 5, 4)
	checkConsistent(t, a)
	require.NoError(t, tr.CopyPositions(0, 1, 0, 1<<20))
	b := seq(t, tr, 1)
	checkConsistent(t, b)
	assert.Equal(t, a.seen, b.seen, "a copy keeps the seen counts")
	require.NoError(t, tr.ShiftPositions(1, 0, 6, 100))
	checkConsistent(t, b)
	require.NoError(t, tr.ForgetPositions(1, 100, 103))
	checkConsistent(t, b)
}
