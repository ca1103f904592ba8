package keyformer

import (
	"fmt"
	"math"
	"slices"
	"sync"
)

// Concentration measures how concentrated attention is, layer by layer: for every attention row
// (one query token and head), the share of its live cells (probability above zero) that holds
// Mass of the row's probability, taking the largest first. A small share is the sparsity that
// makes a small cache budget safe. It reads probabilities only (not logits). Its methods are safe
// for concurrent use.
type Concentration struct {
	mass   float64
	mu     sync.Mutex
	layers []LayerConcentration
	row    []float32
}

// LayerConcentration sums one layer's measurements.
type LayerConcentration struct {
	Rows  int     // attention rows measured
	Share float64 // sum over rows of the share of live cells holding the mass
	Cells float64 // sum over rows of the live cells
}

// MeanShare returns the mean share of live cells holding the mass (0 without rows).
func (l LayerConcentration) MeanShare() float64 { return l.Share / float64(max(l.Rows, 1)) }

// MeanCells returns the mean number of live cells per row (0 without rows).
func (l LayerConcentration) MeanCells() float64 { return l.Cells / float64(max(l.Rows, 1)) }

// NewConcentration returns a measurement of the share of cells holding mass (in (0, 1]) of each
// row's attention.
func NewConcentration(mass float64) (*Concentration, error) {
	if !(mass > 0 && mass <= 1) {
		return nil, fmt.Errorf("keyformer: concentration mass %v is not in (0, 1]", mass)
	}
	return &Concentration{mass: mass}, nil
}

// ObserveAttention measures every row of a's probabilities for layer (a.Cells is ignored: every
// column with a probability above zero is a live cell). Rows without live cells are skipped.
func (c *Concentration) ObserveAttention(layer int, a Attention) error {
	if layer < 0 {
		return fmt.Errorf("keyformer: concentration: layer %d", layer)
	}
	if a.Logits {
		return fmt.Errorf("keyformer: concentration: layer %d: needs probabilities, not logits", layer)
	}
	if err := a.checkExtent(); err != nil {
		return fmt.Errorf("keyformer: concentration: layer %d: %w", layer, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.layers) <= layer {
		c.layers = append(c.layers, LayerConcentration{})
	}
	l := &c.layers[layer]
	for h := range a.Heads {
		for r := range a.Rows {
			off := h*a.HeadStride + r*a.RowStride
			c.row = c.row[:0]
			var total float64
			for _, p := range a.Data[off : off+a.Cols] {
				if p > 0 && !math.IsInf(float64(p), 0) && !math.IsNaN(float64(p)) {
					c.row = append(c.row, p)
					total += float64(p)
				}
			}
			if len(c.row) == 0 {
				continue
			}
			slices.Sort(c.row)
			need, sum := 0, 0.0
			for i := len(c.row) - 1; i >= 0 && sum < c.mass*total; i-- {
				sum += float64(c.row[i])
				need++
			}
			l.Rows++
			l.Share += float64(need) / float64(len(c.row))
			l.Cells += float64(len(c.row))
		}
	}
	return nil
}

// Layers returns the sums so far, by layer (layers never observed have no rows).
func (c *Concentration) Layers() []LayerConcentration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.layers)
}

// Reset forgets every measurement.
func (c *Concentration) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.layers = c.layers[:0]
}
