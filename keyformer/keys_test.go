package keyformer

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// keyDiffSequence returns a keydiff sequence of 2 layers, 4 query and 2 KV heads.
func keyDiffSequence(t *testing.T, budget, window int, g Granularity) *Sequence {
	cfg := testConfig(budget, window)
	cfg.Policy, cfg.Granularity = PolicyKeyDiff, g
	return newTestSequence(t, cfg, 0)
}

// typicalKeys returns rows x heads keys of dim near one direction, with token odd (if >= 0)
// pointing elsewhere; llama.cpp's layout (HeadStride dim, RowStride heads*dim).
func typicalKeys(rnd *rand.Rand, rows, heads, dim, odd int) Keys {
	d := make([]float32, rows*heads*dim)
	for r := range rows {
		for h := range heads {
			k := d[(r*heads+h)*dim:][:dim]
			for i := range k {
				k[i] = 0.1 * float32(rnd.NormFloat64())
			}
			if r == odd {
				k[1] += 3
			} else {
				k[0] += 3
			}
		}
	}
	return Keys{Data: d, Rows: rows, Heads: heads, Dim: dim, RowStride: heads * dim, HeadStride: dim}
}

func TestKeyDiffKeepsTheTokenWithAnUnusualKey(t *testing.T) {
	for _, g := range []Granularity{Shared, PerHead} {
		t.Run(g.String(), func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(1, 2))
			s := keyDiffSequence(t, 4, 1, g)
			cells := []int32{0, 1, 2, 3, 4, 5, 6, 7}
			require.NoError(t, s.AddCells(cells, cells))
			require.True(t, s.WantsAttention(8))
			for layer := range 2 {
				require.NoError(t, s.ObserveKeys(layer, typicalKeys(rnd, 8, 2, 16, 2)))
			}
			evs, err := s.Plan(nil)
			require.NoError(t, err)
			for _, e := range evs {
				assert.NotEqual(t, int32(2), e.Cell, "the token with the unusual key stays")
			}
			require.NoError(t, s.Forget(evs))
			toks := s.Tokens()
			assert.Contains(t, cellsOf(toks), int32(2))
		})
	}
}

func TestKeyDiffScoresAreMinusTheCosineToTheMeanKey(t *testing.T) {
	s := keyDiffSequence(t, 4, 1, Shared)
	require.NoError(t, s.AddCells([]int32{0, 1}, []int32{0, 1}))
	// Two heads: head 0 keys (1,0) and (0,2), head 1 keys (3,0) and (3,0).
	k := Keys{Data: []float32{1, 0, 3, 0, 0, 2, 3, 0}, Rows: 2, Heads: 2, Dim: 2, RowStride: 4, HeadStride: 2}
	require.NoError(t, s.ObserveKeys(1, k))
	// Head 0's mean unit key is (1,1)/2: cosine 1/sqrt(2) for both; head 1's is (1,0): cosine 1.
	want := float32(-1/math.Sqrt2 - 1)
	toks := s.Tokens()
	assert.InDelta(t, want, toks[0].Score, 1e-6)
	assert.InDelta(t, want, toks[1].Score, 1e-6)
}

// Keys in a fused QKV projection's rows (each row Q, then K, then V; RowStride the whole row)
// score as the same keys packed.
func TestKeyDiffReadsStridedRows(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	packed := typicalKeys(rnd, 8, 2, 16, 5)
	const q, v = 64, 32 // values before and after the keys in each row
	row := q + 2*16 + v
	fused := Keys{Data: make([]float32, 8*row), Rows: 8, Heads: 2, Dim: 16, RowStride: row, HeadStride: 16}
	for r := range 8 {
		copy(fused.Data[r*row+q:][:2*16], packed.Data[r*2*16:][:2*16])
		fused.Data[r*row] = float32(r) // a query value, never read as a key
	}
	fused.Data = fused.Data[q:] // the view starts at the first row's keys
	var scores [2][]float32
	for i, k := range []Keys{packed, fused} {
		s := keyDiffSequence(t, 8, 1, Shared)
		cells := []int32{0, 1, 2, 3, 4, 5, 6, 7}
		require.NoError(t, s.AddCells(cells, cells))
		require.NoError(t, s.ObserveKeys(0, k))
		for _, tok := range s.Tokens() {
			scores[i] = append(scores[i], tok.Score)
		}
	}
	assert.Equal(t, scores[0], scores[1])
}

func TestKeyDiffInputErrorsChangeNothing(t *testing.T) {
	s := keyDiffSequence(t, 4, 1, Shared)
	require.NoError(t, s.AddCells([]int32{0, 1}, []int32{0, 1}))
	good := Keys{Data: make([]float32, 8), Rows: 2, Heads: 2, Dim: 2, RowStride: 4, HeadStride: 2}
	good.Data[0] = 1
	before, err := s.MarshalBinary()
	require.NoError(t, err)
	for _, tc := range []struct {
		layer int
		edit  func(*Keys)
		msg   string
	}{
		{2, func(*Keys) {}, "layer outside"},
		{0, func(k *Keys) { k.Heads = 1 }, "KV heads"},
		{0, func(k *Keys) { k.Rows = 3 }, "data holds"},
		{0, func(k *Keys) { k.Data = append(k.Data, make([]float32, 4)...); k.Rows = 3 }, "the sequence holds 2"},
		{0, func(k *Keys) { k.Dim = 0 }, "dimension"},
		{0, func(k *Keys) { k.Data[3] = float32(math.NaN()) }, "invalid key"},
		{0, func(k *Keys) { k.Data[5] = float32(math.Inf(-1)) }, "invalid key"},
	} {
		k := good
		k.Data = append([]float32(nil), good.Data...)
		tc.edit(&k)
		assert.ErrorContains(t, s.ObserveKeys(tc.layer, k), tc.msg)
		after, _ := s.MarshalBinary()
		assert.Equal(t, before, after, tc.msg)
	}
	require.NoError(t, s.ObserveKeys(0, good))
	wider := Keys{Data: make([]float32, 12), Rows: 2, Heads: 2, Dim: 3, RowStride: 6, HeadStride: 3}
	assert.ErrorContains(t, s.ObserveKeys(1, wider), "earlier keys 2")
	assert.ErrorContains(t, s.ObserveAttention(0, Attention{Data: make([]float32, 8), Rows: 1, Heads: 4, Cols: 2, RowStride: 2, HeadStride: 2}),
		"reads keys")

	h2o := newTestSequence(t, testConfig(4, 1), 0)
	require.NoError(t, h2o.AddCells([]int32{0, 1}, []int32{0, 1}))
	assert.ErrorContains(t, h2o.ObserveKeys(0, good), "reads no keys")
}

func TestKeyDiffStateRoundTripContinuesIdentically(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	drive := func(s *Sequence, from, n int32, rnd *rand.Rand) {
		for c := from; c < from+n; c += 4 {
			cells := []int32{c, c + 1, c + 2, c + 3}
			require.NoError(t, s.AddCells(cells, cells))
			require.NoError(t, s.ObserveKeys(0, typicalKeys(rnd, 4, 2, 8, int(c)%3)))
			evs, err := s.Plan(nil)
			require.NoError(t, err)
			require.NoError(t, s.Forget(evs))
		}
	}
	a := keyDiffSequence(t, 10, 2, Shared)
	empty, err := a.MarshalBinary()
	require.NoError(t, err)
	require.NoError(t, keyDiffSequence(t, 10, 2, Shared).UnmarshalBinary(empty), "a state before any keys")
	drive(a, 0, 24, rnd)
	data, err := a.MarshalBinary()
	require.NoError(t, err)
	b := keyDiffSequence(t, 10, 2, Shared)
	require.NoError(t, b.UnmarshalBinary(data))
	again, _ := b.MarshalBinary()
	require.Equal(t, data, again)
	drive(a, 24, 16, rand.New(rand.NewPCG(5, 6)))
	drive(b, 24, 16, rand.New(rand.NewPCG(5, 6)))
	assert.Equal(t, a.Tokens(), b.Tokens())

	assert.ErrorContains(t, newTestSequence(t, testConfig(10, 2), 0).UnmarshalBinary(data), "policy")
	assert.ErrorContains(t, b.UnmarshalBinary(data[:len(data)-4]), "need")
}
