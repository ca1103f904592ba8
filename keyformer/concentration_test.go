package keyformer

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConcentration(t *testing.T) {
	c, err := NewConcentration(0.9)
	require.NoError(t, err)
	// Two heads x two rows over five columns; zeros are free or masked cells.
	data := []float32{
		0.95, 0.05, 0, 0, 0, // head 0, row 0: 1 of 2 live cells holds 90%
		0.25, 0.25, 0.25, 0.25, 0, // head 0, row 1: 4 of 4 (0.75 < 0.9)
		0, 0, 0, 0, 0, // head 1, row 0: no live cell, skipped
		0.5, 0.3, 0.1, 0.05, 0.05, // head 1, row 1: 3 of 5 (0.5+0.3+0.1)
	}
	a := Attention{Data: data, Rows: 2, Heads: 2, Cols: 5, RowStride: 5, HeadStride: 10}
	require.NoError(t, c.ObserveAttention(2, a))
	l := c.Layers()
	require.Len(t, l, 3)
	assert.Zero(t, l[0].Rows)
	assert.Equal(t, 3, l[2].Rows)
	assert.InDelta(t, (0.5+1+0.6)/3, l[2].MeanShare(), 1e-9)
	assert.InDelta(t, (2.0+4+5)/3, l[2].MeanCells(), 1e-9)

	require.NoError(t, c.ObserveAttention(2, Attention{Data: []float32{1, 0}, Rows: 1, Heads: 1, Cols: 2, RowStride: 2}))
	assert.Equal(t, 4, c.Layers()[2].Rows)
	c.Reset()
	assert.Empty(t, c.Layers())
}

func TestConcentrationErrors(t *testing.T) {
	for _, mass := range []float64{0, -1, 1.5} {
		_, err := NewConcentration(mass)
		assert.Error(t, err, mass)
	}
	c, err := NewConcentration(0.5)
	require.NoError(t, err)
	ok := Attention{Data: make([]float32, 4), Rows: 1, Heads: 1, Cols: 4, RowStride: 4}
	short := ok
	short.Cols = 5
	logits := ok
	logits.Logits = true
	assert.ErrorContains(t, c.ObserveAttention(-1, ok), "layer -1")
	assert.ErrorContains(t, c.ObserveAttention(0, short), "data holds 4 values")
	assert.ErrorContains(t, c.ObserveAttention(0, logits), "not logits")
	assert.Empty(t, c.Layers(), "nothing measured from rejected input")
}
