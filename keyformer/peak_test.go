package keyformer

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// peakSequence returns a peak-policy sequence of the given layers, two query heads sharing one KV
// head, no noise, budget and window in tokens.
func peakSequence(t *testing.T, layers, budget, window int, g Granularity) *Sequence {
	cfg := testConfig(budget, window)
	cfg.Shape = Shape{Layers: layers, QueryHeads: 2, KVHeads: 1}
	cfg.Policy, cfg.Granularity = PolicyPeak, g
	return newTestSequence(t, cfg, 0)
}

// twoHeads returns one query row per entry of rows over cols columns, each row given for head 0
// and head 1 in turn.
func twoHeads(cols int, rows ...[2][]float32) Attention {
	var d []float32
	for _, r := range rows {
		d = append(append(d, r[0]...), r[1]...)
	}
	return Attention{Data: d, Rows: len(rows), Heads: 2, Cols: cols, RowStride: 2 * cols, HeadStride: cols}
}

func TestPeakKeepsTheLargestAttentionNotTheSum(t *testing.T) {
	// Token 1 draws 0.6 from one query of head 1; tokens 0 and 2 draw 0.4 from every query of
	// both heads. Summed (H2O) they outrank token 1; by their peak it outranks them.
	flat := []float32{0.4, 0.2, 0.4, 0}
	sharp := []float32{0.2, 0.6, 0.2, 0}
	a := twoHeads(4, [2][]float32{flat, flat}, [2][]float32{flat, sharp}, [2][]float32{flat, flat})
	s := peakSequence(t, 1, 3, 1, Shared)
	cells := []int32{0, 1, 2, 3}
	require.NoError(t, s.AddCells(cells, cells))
	require.NoError(t, s.ObserveAttention(0, a))
	require.NoError(t, s.ObserveAttention(0, a), "a second look at the same attention changes no peak")
	evs, err := s.Plan(nil)
	require.NoError(t, err)
	assert.Equal(t, []Eviction{{0, -1, -1}}, evs, "token 0 (peak 0.4, ties with token 2) goes first")
	tokens := s.Tokens()
	assert.InDeltaSlice(t, []float32{0.4, 0.6, 0.4, 0}, []float32{tokens[0].Score, tokens[1].Score, tokens[2].Score, tokens[3].Score}, 1e-6)
	assert.Equal(t, 1, tokens[1].Heads)
}

func TestPeakTakesTheLargestLayer(t *testing.T) {
	// Summed over the layers token 1 would rank first (0.75) and token 0 last (0.6); by their
	// largest layer token 1 (0.45) goes.
	s := peakSequence(t, 2, 3, 1, Shared)
	cells := []int32{0, 1, 2, 3}
	require.NoError(t, s.AddCells(cells, cells))
	row := func(p ...float32) [2][]float32 { return [2][]float32{p, p} }
	require.NoError(t, s.ObserveAttention(0, twoHeads(4, row(0.5, 0.45, 0.05, 0))))
	require.NoError(t, s.ObserveAttention(1, twoHeads(4, row(0.1, 0.3, 0.6, 0))))
	evs, err := s.Plan(nil)
	require.NoError(t, err)
	assert.Equal(t, []Eviction{{1, -1, -1}}, evs)

	data, err := s.MarshalBinary()
	require.NoError(t, err)
	restored := peakSequence(t, 2, 3, 1, Shared)
	require.NoError(t, restored.UnmarshalBinary(data))
	assert.Equal(t, s.Tokens(), restored.Tokens(), "the per-layer peaks survive a round trip")
}

func TestPeakPerHeadKeepsEachHeadsPeak(t *testing.T) {
	s := peakSequence(t, 1, 2, 1, PerHead)
	cells := []int32{0, 1, 2}
	require.NoError(t, s.AddCells(cells, cells))
	require.NoError(t, s.ObserveAttention(0, twoHeads(3, [2][]float32{{0.2, 0.7, 0.1}, {0.5, 0.4, 0.1}})))
	evs, err := s.Plan(nil)
	require.NoError(t, err)
	assert.Equal(t, []Eviction{{0, 0, 0}}, evs, "token 0's peak 0.5 is below token 1's 0.7")
}

func TestPeakRefusesMeanAttention(t *testing.T) {
	cfg := testConfig(4, 1)
	cfg.Policy, cfg.Ranking.MeanAttention = PolicyPeak, true
	_, err := NewTracker(cfg)
	assert.ErrorContains(t, err, "peak scores do not grow")
}

func TestScoreFromLeavesEarlierTokensAlone(t *testing.T) {
	s := peakSequence(t, 1, 3, 1, Shared)
	cells := []int32{0, 1, 2, 3}
	require.NoError(t, s.AddCells(cells, []int32{10, 11, 12, 13}))
	row := [2][]float32{{0.5, 0.3, 0.1, 0.1}, {0.5, 0.3, 0.1, 0.1}}
	s.ScoreFrom(12)
	require.NoError(t, s.ObserveAttention(0, twoHeads(4, row)))
	s.ScoreFrom(math.MaxInt32)
	require.NoError(t, s.ObserveAttention(0, twoHeads(4, [2][]float32{{0, 0, 0, 1}, {0, 0, 0, 1}})))
	var scores []float32
	for _, tok := range s.Tokens() {
		scores = append(scores, tok.Score)
	}
	assert.InDeltaSlice(t, []float32{0, 0, 0.1, 0.1}, scores, 1e-6, "positions 12 and 13 only, and nothing once hidden")
	s.ScoreFrom(0)
	require.NoError(t, s.ObserveAttention(0, twoHeads(4, row)))
	assert.InDelta(t, 0.5, s.Tokens()[0].Score, 1e-6, "0 scores every token again")
}

func TestClearScoresForgetsTheReading(t *testing.T) {
	s := peakSequence(t, 1, 2, 1, Shared)
	cells := []int32{0, 1, 2}
	require.NoError(t, s.AddCells(cells, cells))
	require.NoError(t, s.ObserveAttention(0, twoHeads(3, [2][]float32{{0.2, 0.7, 0.1}, {0.5, 0.4, 0.1}})))
	s.ClearScores()
	for _, tok := range s.Tokens() {
		assert.Zero(t, tok.Score, "cell %d", tok.Cell)
	}
	require.NoError(t, s.ObserveAttention(0, twoHeads(3, [2][]float32{{0.8, 0.1, 0.1}, {0.8, 0.1, 0.1}})))
	evs, err := s.Plan(nil)
	require.NoError(t, err)
	assert.Equal(t, []Eviction{{1, -1, -1}}, evs, "only what is observed afterwards ranks")
}
