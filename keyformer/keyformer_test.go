package keyformer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/keyformer/keyformer/simd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*Config)
	}{
		{"policy", func(c *Config) { c.Policy = 9 }},
		{"granularity", func(c *Config) { c.Granularity = 5 }},
		{"granularity", func(c *Config) { c.Granularity, c.Policy = PerHead, PolicyWindow }},
		{"shape.layers", func(c *Config) { c.Shape.Layers = 0 }},
		{"shape.query_heads", func(c *Config) { c.Shape.QueryHeads = 0 }},
		{"shape.kv_heads", func(c *Config) { c.Shape.KVHeads = 5 }},
		{"shape.query_heads", func(c *Config) { c.Shape.QueryHeads, c.Shape.KVHeads = 6, 4 }},
		{"budget", func(c *Config) { c.Budget = Size{} }},
		{"budget", func(c *Config) { c.Budget = Fraction(1.5) }},
		{"budget", func(c *Config) { c.Budget = Fraction(-0.5) }},
		{"budget", func(c *Config) { c.Budget = Size{Tokens: 10, Fraction: 0.5} }},
		{"budget", func(c *Config) { c.Budget = Tokens(-3) }},
		{"window", func(c *Config) { c.Window = Fraction(1) }},
		{"window", func(c *Config) { c.Window = Fraction(math.NaN()) }},
		{"window", func(c *Config) { c.Budget, c.Window = Tokens(10), Tokens(10) }},
		{"window", func(c *Config) { c.Policy, c.Budget, c.Window, c.Sinks = PolicyStreaming, Tokens(10), Tokens(6), 4 }},
		{"sinks", func(c *Config) { c.Sinks = -1 }},
		{"tau_init", func(c *Config) { c.TauInit = 0 }},
		{"tau_init", func(c *Config) { c.TauInit = 1e-30 }},
		{"tau_end", func(c *Config) { c.TauEnd = 1e6 }},
		{"tau_end", func(c *Config) { c.TauEnd = math.Inf(1) }},
		{"tau_end", func(c *Config) { c.TauEnd = math.NaN() }},
		{"new_tokens", func(c *Config) { c.NewTokens = 0 }},
		{"observe.layer_stride", func(c *Config) { c.Observe.LayerStride = 1<<16 + 1 }},
		{"observe.layer_stride", func(c *Config) { c.Observe.LayerStride = -1 }},
		{"observe.layers", func(c *Config) { c.Observe.Layers = []int{0, 1, 1} }},
		{"observe.layers[1]", func(c *Config) { c.Observe.Layers = []int{1, 2} }},
		{"observe.layers[1]", func(c *Config) { c.Observe.Layers = []int{1, 1} }},
		{"observe.decode_stride", func(c *Config) { c.Observe.DecodeStride = -2 }},
		{"observe.slack", func(c *Config) { c.Observe.Slack = -1 }},
		{"observe.prompt_rows", func(c *Config) { c.Observe.PromptRows = -1 }},
	} {
		cfg := DefaultConfig(Shape{Layers: 2, QueryHeads: 4, KVHeads: 2})
		tc.edit(&cfg)
		err := cfg.Validate()
		require.Error(t, err, tc.field)
		assert.Contains(t, err.Error(), tc.field+":")
		_, err = NewTracker(cfg)
		assert.Error(t, err)
	}
	cfg := DefaultConfig(Shape{Layers: 30, QueryHeads: 9, KVHeads: 3})
	assert.NoError(t, cfg.Validate())
}

func TestParsePolicyRoundTrips(t *testing.T) {
	for p := PolicyFull; p <= PolicyWindow; p++ {
		got, err := ParsePolicy(p.String())
		require.NoError(t, err)
		assert.Equal(t, p, got)
	}
	_, err := ParsePolicy("lru")
	assert.ErrorContains(t, err, "unknown policy")
}

func TestTemperatureSchedule(t *testing.T) {
	cfg := testConfig(8, 2)
	cfg.NewTokens = 4
	assert.Equal(t, []float64{1, 1.25, 1.5, 1.75, 2, 2}, []float64{cfg.tau(0), cfg.tau(1), cfg.tau(2), cfg.tau(3), cfg.tau(4), cfg.tau(9)})
}

// referenceScores recomputes, in float64, the scores a Keyformer sequence accumulates for one
// observation: softmax((log p + g) / tau) per row with the noise the sequence drew.
func referenceScores(a Attention, base uint64, tau float64, groups int, perHead bool, logits bool) [][]float64 {
	n := 1
	if perHead {
		n = a.Heads / groups
	}
	out := make([][]float64, n)
	for k := range out {
		out[k] = make([]float64, a.Cols)
	}
	for r := range a.Rows {
		for h := range a.Heads {
			row := a.Data[r*a.RowStride+h*a.HeadStride:][:a.Cols]
			key := rowKey(base, r*a.Heads+h)
			q := make([]float64, a.Cols)
			m := math.Inf(-1)
			for j, v := range row {
				l := math.Log(float64(v))
				if logits {
					l = float64(v)
				}
				q[j] = (l + simd.Noise(key, j)) / tau
				if !math.IsInf(l, -1) {
					m = max(m, q[j])
				}
			}
			var sum float64
			for j := range q {
				q[j] = math.Exp(q[j] - m)
				sum += q[j]
			}
			k := 0
			if perHead {
				k = h / groups
			}
			for j := range q {
				out[k][j] += q[j] / sum
			}
		}
	}
	return out
}

func TestScoresMatchFloat64Reference(t *testing.T) {
	for _, tc := range []struct {
		name    string
		perHead bool
		logits  bool
	}{{"shared", false, false}, {"per_head", true, false}, {"logits", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(64, 4)
			cfg.Shape = Shape{Layers: 2, QueryHeads: 6, KVHeads: 2}
			if tc.perHead {
				cfg.Granularity = PerHead
			}
			s := newTestSequence(t, cfg, 3)
			require.NoError(t, s.SetPromptLength(5))
			e := newTestEngine(t, s, 1)
			e.decode(5)
			e.decode(1) // t = 1: tau = 1 + 1/16
			before := map[int32][]float64{}
			for _, tok := range s.Tokens() {
				before[tok.Cell] = headScores(s, tok.Cell)
			}
			a := e.attention([]int32{4, 5}, 6)
			if tc.logits {
				a.Logits = true
				for i, v := range a.Data {
					a.Data[i] = float32(math.Log(float64(v))) + 7
				}
			}
			want := referenceScores(a, peekDraw(s), cfg.tau(1), 3, tc.perHead, tc.logits)
			require.NoError(t, s.ObserveAttention(1, a))
			for _, tok := range s.Tokens() {
				got := headScores(s, tok.Cell)
				for k := range want {
					idx := k
					if tc.perHead {
						idx = cfg.Shape.KVHeads + k // layer 1
					}
					delta := got[idx] - before[tok.Cell][idx]
					assert.InDelta(t, want[k][tok.Cell], delta, 1e-5*math.Abs(want[k][tok.Cell])+1e-7, "cell %d acc %d", tok.Cell, k)
				}
			}
		})
	}
}

// headScores returns the scores arrays' entries for cell c.
func headScores(s *Sequence, c int32) []float64 {
	var out []float64
	for _, sc := range s.scores {
		out = append(out, float64(sc[s.slot(c)]))
	}
	return out
}

// peekDraw returns the noise draw the sequence's next observation will use.
func peekDraw(s *Sequence) uint64 {
	r := s.rng
	return r.next()
}

// TestHighScoreTokenLeavingWindowSurvives pins the paper's generation step where the published
// reference code freezes the key set after prefill: a token leaving the recent window with a high
// score must displace a lower-scoring key token.
func TestHighScoreTokenLeavingWindowSurvives(t *testing.T) {
	cfg := testConfig(4, 2)
	cfg.Shape = Shape{Layers: 1, QueryHeads: 1, KVHeads: 1}
	cfg.Noise, cfg.TauInit, cfg.TauEnd = false, 1, 1
	s := newTestSequence(t, cfg, 0)
	row := func(cols int, p ...float32) Attention {
		d := make([]float32, cols)
		copy(d, p)
		return Attention{Data: d, Rows: 1, Heads: 1, Cols: cols, RowStride: cols}
	}
	// Prompt: six tokens; token 0 is a strong key token, token 2 a weak one, 1 and 3 weaker.
	require.NoError(t, s.AddCells([]int32{0, 1, 2, 3, 4, 5}, []int32{0, 1, 2, 3, 4, 5}))
	require.NoError(t, s.ObserveAttention(0, row(6, 0.5, 0.05, 0.2, 0.05, 0.1, 0.1)))
	evs, err := s.Plan(nil)
	require.NoError(t, err)
	assert.ElementsMatch(t, []Eviction{{1, -1, -1}, {3, -1, -1}}, evs)
	require.NoError(t, s.Forget(evs))
	// Generation: token 6 lands in cell 1; token 4 leaves the window and attention favours it.
	require.NoError(t, s.AddCells([]int32{1}, []int32{6}))
	require.NoError(t, s.ObserveAttention(0, row(6, 0.1, 0.05, 0, 0, 0.8, 0.05)))
	evs, err = s.Plan(nil)
	require.NoError(t, err)
	assert.Equal(t, []Eviction{{2, -1, -1}}, evs, "the weak key token goes, the token that left the window stays")
}

func TestH2OEqualsKeyformerWithoutNoise(t *testing.T) {
	h2o := testConfig(12, 3)
	h2o.Policy = PolicyH2O
	kf := testConfig(12, 3)
	kf.Noise, kf.TauInit, kf.TauEnd = false, 1, 1
	a, b := newTestSequence(t, h2o, 1), newTestSequence(t, kf, 1)
	evA := newTestEngine(t, a, 9).run(30, 8, 20)
	evB := newTestEngine(t, b, 9).run(30, 8, 20)
	require.NotEmpty(t, evA)
	assert.Equal(t, evA, evB)
	assert.Equal(t, a.Tokens(), b.Tokens())
}

func TestNoiseChangesKeyformerChoices(t *testing.T) {
	kf := testConfig(12, 3)
	plain := kf
	plain.Noise = false
	evA := newTestEngine(t, newTestSequence(t, kf, 1), 9).run(40, 8, 30)
	evB := newTestEngine(t, newTestSequence(t, plain, 1), 9).run(40, 8, 30)
	assert.NotEqual(t, evA, evB)
}

func TestRecencyPolicies(t *testing.T) {
	for _, tc := range []struct {
		policy Policy
		sinks  int
	}{{PolicyStreaming, 4}, {PolicyWindow, 0}} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			cfg := testConfig(10, 3)
			cfg.Policy, cfg.Sinks = tc.policy, 4
			s := newTestSequence(t, cfg, 0)
			e := newTestEngine(t, s, 3)
			e.run(25, 7, 0)
			check := func() {
				var pos []int32
				for _, tok := range s.Tokens() {
					pos = append(pos, tok.Pos)
				}
				var want []int32
				for p := range int32(tc.sinks) {
					want = append(want, p)
				}
				for p := e.next - int32(10-tc.sinks); p < e.next; p++ {
					want = append(want, p)
				}
				assert.Equal(t, want, pos)
			}
			check()
			for range 5 {
				e.decode(1)
				e.evict()
				check()
			}
		})
	}
}

func TestFullNeverEvicts(t *testing.T) {
	cfg := testConfig(5, 1)
	cfg.Policy = PolicyFull
	s := newTestSequence(t, cfg, 0)
	assert.Empty(t, newTestEngine(t, s, 3).run(20, 6, 5))
	assert.Equal(t, 25, s.Len())
	assert.NotZero(t, s.Tokens()[0].Score, "full still scores")
}

func TestTOVAScoresTheNewestQueryOnly(t *testing.T) {
	cfg := testConfig(3, 1)
	cfg.Policy = PolicyTOVA
	cfg.Shape = Shape{Layers: 1, QueryHeads: 2, KVHeads: 1}
	s := newTestSequence(t, cfg, 0)
	require.NoError(t, s.AddCells([]int32{0, 1, 2, 3}, []int32{0, 1, 2, 3}))
	// Two rows x two heads over four cells; only the last row counts, averaged over heads.
	data := []float32{
		1, 0, 0, 0 /* row 0 head 0 */, 0.1, 0.2, 0.3, 0.4, /* row 1 head 0 */
		1, 0, 0, 0 /* row 0 head 1 */, 0.3, 0.0, 0.3, 0.4, /* row 1 head 1 */
	}
	require.NoError(t, s.ObserveAttention(0, Attention{Data: data, Rows: 2, Heads: 2, Cols: 4, RowStride: 4, HeadStride: 8}))
	var got []float32
	for _, tok := range s.Tokens() {
		got = append(got, tok.Score)
	}
	assert.InDeltaSlice(t, []float32{0.2, 0.1, 0.3, 0.4}, got, 1e-6)
	evs, err := s.Plan(nil)
	require.NoError(t, err)
	assert.Equal(t, []Eviction{{1, -1, -1}}, evs)
	require.NoError(t, s.Forget(evs))
	// A new step replaces the scores instead of adding to them.
	require.NoError(t, s.AddCells([]int32{1}, []int32{4}))
	require.NoError(t, s.ObserveAttention(0, Attention{Data: []float32{0.5, 0.5, 0, 0, 0, 0.5, 0.5, 0, 0, 0}[:4], Rows: 1, Heads: 2, Cols: 4, RowStride: 4, HeadStride: 0}))
	got = got[:0]
	for _, tok := range s.Tokens() {
		got = append(got, tok.Score)
	}
	assert.InDeltaSlice(t, []float32{0.5, 0, 0, 0.5}, got, 1e-6)
}

func TestBudgetAndWindowHoldThroughALongRun(t *testing.T) {
	for _, g := range []Granularity{Shared, PerHead} {
		t.Run(g.String(), func(t *testing.T) {
			cfg := testConfig(16, 5)
			cfg.Granularity = g
			s := newTestSequence(t, cfg, 0)
			e := newTestEngine(t, s, 5)
			e.run(40, 16, 0)
			for range 60 {
				e.decode(1)
				evs, err := s.Plan(nil)
				require.NoError(t, err)
				toks := s.Tokens()
				window := toks[len(toks)-5:]
				for _, ev := range evs {
					for _, w := range window {
						require.NotEqual(t, w.Cell, ev.Cell, "window token evicted")
					}
				}
				if g == Shared {
					require.Len(t, evs, 1)
					// The evicted token has the lowest score among the candidates.
					for _, c := range toks[:len(toks)-5] {
						if c.Cell == evs[0].Cell {
							continue
						}
						lowest := slices.MinFunc(toks[:len(toks)-5], func(a, b Token) int { return cmpFloat(a.Score, b.Score) })
						require.Equal(t, lowest.Cell, evs[0].Cell)
					}
				}
				require.NoError(t, s.Forget(evs))
				if g == PerHead {
					e.syncCells()
				} else {
					for _, ev := range evs {
						delete(e.used, ev.Cell)
					}
				}
				for h := range s.live {
					require.LessOrEqual(t, s.live[h], 16)
				}
			}
		})
	}
}

func cmpFloat(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestPerHeadReducesQueryHeadsToKVHeads(t *testing.T) {
	cfg := testConfig(2, 0)
	cfg.Granularity, cfg.Noise, cfg.TauInit, cfg.TauEnd = PerHead, false, 1, 1
	cfg.Shape = Shape{Layers: 1, QueryHeads: 4, KVHeads: 2}
	s := newTestSequence(t, cfg, 0)
	require.NoError(t, s.AddCells([]int32{0, 1, 2}, []int32{0, 1, 2}))
	// Query heads 0 and 1 (KV head 0) like cell 0; query heads 2 and 3 (KV head 1) like cell 2.
	data := []float32{0.8, 0.1, 0.1, 0.6, 0.3, 0.1, 0.1, 0.1, 0.8, 0.1, 0.3, 0.6}
	require.NoError(t, s.ObserveAttention(0, Attention{Data: data, Rows: 1, Heads: 4, Cols: 3, RowStride: 3, HeadStride: 3}))
	evs, err := s.Plan(nil)
	require.NoError(t, err)
	assert.ElementsMatch(t, []Eviction{{Cell: 2, Layer: 0, Head: 0}, {Cell: 0, Layer: 0, Head: 1}}, evs)
	require.NoError(t, s.Forget(evs))
	assert.Equal(t, 3, s.Len(), "every cell is still held by some head")
	require.NoError(t, s.Forget([]Eviction{{Cell: 1, Layer: 0, Head: 0}, {Cell: 1, Layer: 0, Head: 1}}))
	assert.Equal(t, []int32{0, 2}, cellsOf(s.Tokens()), "a cell no head holds is gone")
	assert.ErrorContains(t, s.Forget([]Eviction{{Cell: 2, Layer: 0, Head: 0}}), "already evicted")
}

func cellsOf(toks []Token) []int32 {
	var out []int32
	for _, t := range toks {
		out = append(out, t.Cell)
	}
	return out
}

func TestDeterminismAndIndependentNoise(t *testing.T) {
	cfg := testConfig(12, 3)
	tr, err := NewTracker(cfg)
	require.NoError(t, err)
	a, _ := tr.Sequence(1)
	b, _ := tr.Sequence(2)
	evA := newTestEngine(t, a, 11).run(30, 10, 10)
	newTestEngine(t, b, 11).run(30, 10, 10)
	c := newTestSequence(t, cfg, 1)
	evC := newTestEngine(t, c, 11).run(30, 10, 10)
	assert.Equal(t, evA, evC, "same seed and inputs, same evictions")
	assert.Equal(t, a.Tokens(), c.Tokens())
	assert.NotEqual(t, a.Tokens(), b.Tokens(), "different sequences draw different noise")
}

func TestInvalidInputIsAnErrorAndChangesNothing(t *testing.T) {
	cfg := testConfig(8, 2)
	s := newTestSequence(t, cfg, 0)
	ref := newTestSequence(t, cfg, 0)
	es, eref := newTestEngine(t, s, 4), newTestEngine(t, ref, 4)
	es.run(12, 4, 3)
	eref.run(12, 4, 3)
	before, _ := s.MarshalBinary()
	good := Attention{Data: slices.Repeat([]float32{0.25}, 16), Rows: 1, Heads: 4, Cols: 4, RowStride: 4, HeadStride: 4}
	bad := func(v float32) Attention {
		a := good
		a.Data = slices.Clone(good.Data)
		a.Data[len(a.Data)-1] = v
		return a
	}
	for name, err := range map[string]error{
		"nan":        s.ObserveAttention(0, bad(float32(math.NaN()))),
		"inf":        s.ObserveAttention(0, bad(float32(math.Inf(1)))),
		"negative":   s.ObserveAttention(0, bad(-0.5)),
		"above one":  s.ObserveAttention(0, bad(3)),
		"layer":      s.ObserveAttention(2, good),
		"heads":      s.ObserveAttention(0, Attention{Data: good.Data, Rows: 1, Heads: 3, Cols: 4, RowStride: 4, HeadStride: 4}),
		"short data": s.ObserveAttention(0, Attention{Data: good.Data[:5], Rows: 1, Heads: 4, Cols: 4, RowStride: 4, HeadStride: 4}),
		"cells":      s.ObserveAttention(0, Attention{Data: good.Data, Rows: 1, Heads: 4, Cols: 4, RowStride: 4, HeadStride: 4, Cells: []int32{1}}),
		"stride":     s.ObserveAttention(0, Attention{Data: good.Data, Rows: 1, Heads: 4, Cols: 4, RowStride: -4, HeadStride: 4}),
		"add len":    s.AddCells([]int32{20}, nil),
		"add held":   s.AddCells([]int32{s.Tokens()[0].Cell}, []int32{100}),
		"add pos":    s.AddCells([]int32{50}, []int32{1}),
		"add dup":    s.AddCells([]int32{50, 50}, []int32{100, 101}),
		"add neg":    s.AddCells([]int32{-1}, []int32{100}),
		"forget":     s.Forget([]Eviction{{Cell: s.Tokens()[0].Cell, Layer: -1, Head: -1}, {Cell: 999, Layer: -1, Head: -1}}),
		"forget dup": s.Forget([]Eviction{{Cell: s.Tokens()[0].Cell, Layer: -1, Head: -1}, {Cell: s.Tokens()[0].Cell, Layer: -1, Head: -1}}),
		"forget hd":  s.Forget([]Eviction{{Cell: s.Tokens()[0].Cell, Layer: 0, Head: 0}}),
		"prompt":     s.SetPromptLength(3),
		"restore":    s.UnmarshalBinary(before[:len(before)-1]),
	} {
		assert.Error(t, err, name)
		after, _ := s.MarshalBinary()
		require.Equal(t, before, after, "%s changed the state", name)
	}
	// The failed calls did not consume noise: both sequences continue alike.
	es.run(0, 1, 4)
	eref.run(0, 1, 4)
	assert.Equal(t, ref.Tokens(), s.Tokens())
}

func TestStateRoundTripContinuesIdentically(t *testing.T) {
	for _, tc := range []struct {
		g Granularity
		r Ranking
	}{{Shared, Ranking{}}, {PerHead, Ranking{}}, {Shared, Ranking{MeanAttention: true, Span: 1, KeepSinks: true}}} {
		t.Run(fmt.Sprintf("%s%+v", tc.g, tc.r), func(t *testing.T) {
			cfg := testConfig(10, 3)
			cfg.Granularity, cfg.Ranking = tc.g, tc.r
			a := newTestSequence(t, cfg, 4)
			e := newTestEngine(t, a, 8)
			e.run(25, 8, 5)
			data, err := a.MarshalBinary()
			require.NoError(t, err)
			b := newTestSequence(t, cfg, 4)
			require.NoError(t, b.UnmarshalBinary(data))
			again, _ := b.MarshalBinary()
			require.Equal(t, data, again)
			// Drive both with the same engine input from here on.
			eb := *e
			eb.seq, eb.rnd = b, rand.New(rand.NewPCG(1, 2))
			eb.used, eb.bias = cloneMap(e.used), cloneMap(e.bias)
			e.rnd = rand.New(rand.NewPCG(1, 2))
			assert.Equal(t, e.run(0, 1, 10), eb.run(0, 1, 10))
			assert.Equal(t, a.Tokens(), b.Tokens())

			other := cfg
			other.Policy = PolicyH2O
			assert.ErrorContains(t, newTestSequence(t, other, 4).UnmarshalBinary(data), "policy")
		})
	}
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestBoundedPrefillWithDeclaredPrompt(t *testing.T) {
	cfg := testConfig(0, 0)
	cfg.Budget, cfg.Window = Fraction(0.25), Fraction(0.3)
	s := newTestSequence(t, cfg, 0)
	require.NoError(t, s.SetPromptLength(80))
	e := newTestEngine(t, s, 2)
	for range 10 {
		e.decode(8)
		e.evict()
		require.LessOrEqual(t, s.Len(), 20)
	}
	budget, window, ok := s.Limits()
	assert.True(t, ok)
	assert.Equal(t, []int{20, 6}, []int{budget, window})
	assert.Equal(t, 0, s.step())
	e.decode(1)
	assert.Equal(t, 1, s.step())
}

func TestManySequencesFromManyGoroutines(t *testing.T) {
	cfg := testConfig(12, 3)
	tr, err := NewTracker(cfg)
	require.NoError(t, err)
	var wg sync.WaitGroup
	results := make([][]Eviction, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := tr.Sequence(int32(i % 8))
			if err != nil {
				t.Error(err)
				return
			}
			if i >= 8 {
				_, _ = s.MarshalBinary() // a reader racing the writer of the same sequence
				_ = s.Tokens()
				return
			}
			results[i] = newTestEngine(t, s, uint64(i)).run(40, 9, 15)
		}()
	}
	wg.Wait()
	assert.Equal(t, 8, tr.Len())
	for i := range 8 {
		assert.NotEmpty(t, results[i])
	}
	assert.True(t, tr.Remove(3))
	assert.False(t, tr.Remove(3))
	_, err = tr.Sequence(-1)
	assert.Error(t, err)
}

func TestLargeObservationIsSplitAcrossWorkers(t *testing.T) {
	// Enough elements for several workers; the result must not depend on the split.
	cfg := testConfig(600, 100)
	cfg.Shape = Shape{Layers: 1, QueryHeads: 8, KVHeads: 2}
	s := newTestSequence(t, cfg, 0)
	e := newTestEngine(t, s, 3)
	e.decode(700)
	par := s.Tokens()
	serial := newTestSequence(t, cfg, 0)
	old := runtime.GOMAXPROCS(1)
	newTestEngine(t, serial, 3).decode(700)
	runtime.GOMAXPROCS(old)
	for i := range par {
		assert.InDelta(t, serial.Tokens()[i].Score, par[i].Score, 1e-4*math.Abs(float64(par[i].Score)))
	}
}

func TestMoveCells(t *testing.T) {
	s := newTestSequence(t, testConfig(8, 2), 0)
	require.NoError(t, s.AddCells([]int32{4, 7, 9}, []int32{0, 3, 5}))
	before := s.Tokens()
	require.NoError(t, s.MoveCells([]int32{4, 7, 9}, []int32{0, 1, 4}), "a target may be a cell the move frees")
	after := s.Tokens()
	assert.Equal(t, []int32{0, 1, 4}, cellsOf(after))
	for i := range after {
		assert.Equal(t, before[i].Pos, after[i].Pos)
	}
	_, ok := s.Position(9)
	assert.False(t, ok)
	for name, err := range map[string]error{
		"length":  s.MoveCells([]int32{0}, nil),
		"missing": s.MoveCells([]int32{3}, []int32{5}),
		"clash":   s.MoveCells([]int32{0}, []int32{1}),
		"twice":   s.MoveCells([]int32{0, 0}, []int32{5, 6}),
		"range":   s.MoveCells([]int32{0}, []int32{-2}),
	} {
		assert.Error(t, err, name)
	}
	assert.Equal(t, after, s.Tokens(), "failed moves change nothing")
}
