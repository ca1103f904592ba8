package keyformer

import (
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestObservesLayerFollowsTheSchedule(t *testing.T) {
	observed := func(cfg Config) []int {
		var out []int
		for l := -1; l <= cfg.Shape.Layers; l++ {
			if cfg.ObservesLayer(l) {
				out = append(out, l)
			}
		}
		return out
	}
	cfg := DefaultConfig(Shape{Layers: 7, QueryHeads: 4, KVHeads: 2})
	assert.Equal(t, []int{0, 2, 4, 6}, observed(cfg), "the default reads every other layer")
	cfg.Observe = Schedule{}
	assert.Equal(t, []int{0, 1, 2, 3, 4, 5, 6}, observed(cfg))
	cfg.Observe.LayerStride = 3
	assert.Equal(t, []int{0, 3, 6}, observed(cfg))
	cfg.Observe.Layers = []int{5, 1}
	assert.Equal(t, []int{1, 5}, observed(cfg), "a list overrides the stride")
	for _, p := range []Policy{PolicyStreaming, PolicyWindow} {
		cfg.Policy = p
		assert.Empty(t, observed(cfg), p)
		assert.False(t, p.ReadsAttention())
	}
}

func TestTrackerKeepsItsOwnLayerList(t *testing.T) {
	cfg := testConfig(10, 3)
	cfg.Observe.Layers = []int{1}
	tr, err := NewTracker(cfg)
	require.NoError(t, err)
	cfg.Observe.Layers[0] = 0
	got := tr.Config()
	got.Observe.Layers[0] = 0
	assert.Equal(t, []int{1}, tr.Config().Observe.Layers)
}

func TestWantsAttentionEveryKthGeneratedToken(t *testing.T) {
	cfg := testConfig(100, 3)
	cfg.Observe.DecodeStride = 4
	s := newTestSequence(t, cfg, 0)
	require.NoError(t, s.SetPromptLength(6))
	e := newTestEngine(t, s, 1)
	var wants []bool
	for _, n := range []int{1, 1, 3, 1} { // the prompt: read whatever the chunking
		e.decode(n)
		wants = append(wants, s.WantsAttention(n))
	}
	assert.Equal(t, []bool{true, true, true, true}, wants)
	wants = wants[:0]
	for range 9 { // generated tokens 1..9
		e.decode(1)
		wants = append(wants, s.WantsAttention(1))
	}
	assert.Equal(t, []bool{false, false, false, true, false, false, false, true, false}, wants)
	assert.True(t, s.WantsAttention(2), "a chunk of generated tokens is read")

	cfg.Policy = PolicyStreaming
	assert.False(t, newTestSequence(t, cfg, 0).WantsAttention(5), "streaming reads no attention")
}

// A sequence with slack grows past its budget until it is slack cells over, then evicts back to the
// budget in one plan; the choice among the candidates is the one Plan makes without slack. The
// prompt is brought to the budget whatever the slack.
func TestSlackEvictsInBatches(t *testing.T) {
	for _, tc := range []struct {
		policy Policy
		g      Granularity
	}{{PolicyKeyformer, Shared}, {PolicyH2O, PerHead}, {PolicyTOVA, Shared}, {PolicyStreaming, Shared}, {PolicyWindow, Shared}} {
		t.Run(tc.policy.String()+"/"+tc.g.String(), func(t *testing.T) {
			cfg := testConfig(10, 3)
			cfg.Policy, cfg.Granularity, cfg.Observe.Slack = tc.policy, tc.g, 4
			s := newTestSequence(t, cfg, 0)
			e := newTestEngine(t, s, 2)
			held := func() int { return slices.Max(s.live) } // tokens per head (shared: one head)
			e.run(13, 13, 0)
			require.Equal(t, 10, held())
			var sizes []int
			for range 11 {
				e.decode(1)
				evs, err := s.Plan(nil)
				require.NoError(t, err)
				if len(evs) > 0 {
					// Without slack the same plan, from the same state.
					saved, err := s.MarshalBinary()
					require.NoError(t, err)
					strict := cfg
					strict.Observe.Slack = 0
					twin := newTestSequence(t, strict, 0)
					require.NoError(t, twin.UnmarshalBinary(saved))
					want, err := twin.Plan(nil)
					require.NoError(t, err)
					assert.ElementsMatch(t, want, evs)
				}
				e.forget(evs)
				sizes = append(sizes, held())
			}
			assert.Equal(t, []int{11, 12, 13, 10, 11, 12, 13, 10, 11, 12, 13}, sizes)
		})
	}
}

// TestPromptRowsReadsTheLastRows shows a prompt chunk of 12 rows to a sequence whose schedule reads
// the last 3 rows and the same chunk's last 3 rows to one that reads every row: the scores must be
// identical for each attention policy, though the rows left out hold invalid values; a
// single-token decode is read whole either way.
func TestPromptRowsReadsTheLastRows(t *testing.T) {
	for _, p := range []Policy{PolicyKeyformer, PolicyH2O, PolicyTOVA, PolicyFull} {
		cfg := testConfig(100, 3)
		cfg.Policy = p
		all := newTestSequence(t, cfg, 0)
		cfg.Observe.PromptRows = 3
		last := newTestSequence(t, cfg, 0)
		e := newTestEngine(t, all, 1)
		for _, n := range []int{12, 1, 12} {
			cells, pos := e.place(n)
			require.NoError(t, all.AddCells(cells, pos))
			require.NoError(t, last.AddCells(cells, pos))
			for layer := range cfg.Shape.Layers {
				a := e.attention(pos, int(e.next))
				tail := a
				if k := cfg.Observe.PromptRows; n > k {
					tail.Data, tail.Rows = a.Data[(n-k)*a.RowStride:], k
					for r := range n - k { // rows of the chunk's first tokens: never read
						a.Data[r*a.RowStride] = float32(math.NaN())
					}
				}
				require.NoError(t, last.ObserveAttention(layer, a), "%s", p)
				require.NoError(t, all.ObserveAttention(layer, tail), "%s", p)
			}
			assert.Equal(t, all.Tokens(), last.Tokens(), "%s after a ubatch of %d", p, n)
		}
	}
}
