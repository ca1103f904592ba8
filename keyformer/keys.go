package keyformer

import (
	"fmt"
	"math"
)

// Keys is one layer's keys for one ubatch: Rows tokens x Heads KV heads x Dim values, best before
// the positional rotation (RoPE): a rotated key depends on its position, so the mean key of the
// first ubatches differs from that of the later ones, and tokens read early look typical and are
// evicted first. Element (r, h, d) is Data[r*RowStride + h*HeadStride + d]. llama.cpp's
// Kcur-<layer> tensor before its ROPE (ne = [head_dim, n_head_kv, n_tokens]) has HeadStride =
// head_dim and RowStride = head_dim * n_head_kv, or the QKV row's length for a fused projection.
type Keys struct {
	Data                  []float32
	Rows, Heads, Dim      int
	RowStride, HeadStride int
}

// maxHeadDim bounds Keys.Dim (models use 64 to 256).
const maxHeadDim = 1 << 12

// checkExtent validates the shape and strides of k against its data.
func (k *Keys) checkExtent() error {
	switch {
	case k.Rows <= 0 || k.Rows > maxCells:
		return fmt.Errorf("keys rows %d outside [1, %d]", k.Rows, maxCells)
	case k.Dim <= 0 || k.Dim > maxHeadDim:
		return fmt.Errorf("keys dimension %d outside [1, %d]", k.Dim, maxHeadDim)
	case k.RowStride < 0 || k.HeadStride < 0 || k.RowStride > maxCells*maxHeadDim || k.HeadStride > maxCells*maxHeadDim:
		return fmt.Errorf("keys strides (%d, %d) out of range", k.RowStride, k.HeadStride)
	}
	last := int64(k.Rows-1)*int64(k.RowStride) + int64(k.Heads-1)*int64(k.HeadStride) + int64(k.Dim)
	if last > int64(len(k.Data)) {
		return fmt.Errorf("keys data holds %d values, the shape and strides need %d", len(k.Data), last)
	}
	return nil
}

// ErrInvalidKeys is wrapped by the errors of ObserveKeys for a NaN or infinite key value.
var ErrInvalidKeys = fmt.Errorf("invalid key value (NaN or infinite)")

// ObserveKeys scores the sequence's newest k.Rows tokens (the ubatch's, added with AddCells) by
// how unlike the average key their keys of layer are: per KV head, minus the cosine between the
// token's key and the mean of the unit keys the sequence has read in that layer and head (this
// ubatch's included), summed over the heads and the layers observed (per layer and head in
// PerHead granularity). A token's score is fixed when it is read; the mean goes on with every
// key read, the evicted ones' included. Only the keydiff policy reads keys: for any other it is
// an error. Invalid keys are an error and change nothing.
func (s *Sequence) ObserveKeys(layer int, k Keys) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkKeys(layer, &k); err != nil {
		return fmt.Errorf("layer %d: %w", layer, err)
	}
	sh := s.cfg.Shape
	if s.anchor == nil {
		s.anchor, s.dim = make([]float32, sh.Layers*sh.KVHeads*k.Dim), k.Dim
	}
	unit := make([]float32, k.Rows*k.Heads*k.Dim)
	for r := range k.Rows {
		for h := range k.Heads {
			off := r*k.RowStride + h*k.HeadStride
			u := unit[(r*k.Heads+h)*k.Dim:][:k.Dim]
			normalise(u, k.Data[off:off+k.Dim])
			anchor := s.anchorOf(layer, h)
			for d, v := range u {
				anchor[d] += v
			}
		}
	}
	first := len(s.cells) - k.Rows
	for h := range k.Heads {
		anchor := s.anchorOf(layer, h)
		var norm float64
		for _, v := range anchor {
			norm += float64(v) * float64(v)
		}
		if norm == 0 {
			continue
		}
		inv := 1 / math.Sqrt(norm)
		sc := s.scores[0]
		if s.cfg.Granularity == PerHead {
			sc = s.scores[layer*sh.KVHeads+h]
		}
		for r := range k.Rows {
			var dot float64
			for d, v := range unit[(r*k.Heads+h)*k.Dim:][:k.Dim] {
				dot += float64(v) * float64(anchor[d])
			}
			sc[first+r] -= float32(dot * inv)
		}
	}
	return nil
}

// anchorOf returns the sum of the unit keys read in layer and KV head h (s.mu held, s.anchor set).
func (s *Sequence) anchorOf(layer, h int) []float32 {
	return s.anchor[(layer*s.cfg.Shape.KVHeads+h)*s.dim:][:s.dim]
}

// normalise writes v / |v| to dst (zeros for a zero vector).
func normalise(dst, v []float32) {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		clear(dst)
		return
	}
	inv := float32(1 / math.Sqrt(sum))
	for i, x := range v {
		dst[i] = x * inv
	}
}

// checkKeys validates k against the configuration and the sequence (s.mu held).
func (s *Sequence) checkKeys(layer int, k *Keys) error {
	sh := s.cfg.Shape
	switch {
	case !s.cfg.Policy.ReadsKeys():
		return fmt.Errorf("policy %s reads no keys", s.cfg.Policy)
	case layer < 0 || layer >= sh.Layers:
		return fmt.Errorf("layer outside [0, %d)", sh.Layers)
	case k.Heads != sh.KVHeads:
		return fmt.Errorf("keys have %d heads, the model %d KV heads", k.Heads, sh.KVHeads)
	case s.anchor != nil && k.Dim != s.dim:
		return fmt.Errorf("keys have dimension %d, earlier keys %d", k.Dim, s.dim)
	}
	if err := k.checkExtent(); err != nil {
		return err
	}
	if k.Rows > len(s.cells) {
		return fmt.Errorf("keys of %d tokens, the sequence holds %d", k.Rows, len(s.cells))
	}
	for r := range k.Rows {
		for h := range k.Heads {
			off := r*k.RowStride + h*k.HeadStride
			for _, v := range k.Data[off : off+k.Dim] {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return fmt.Errorf("row %d head %d: %w", r, h, ErrInvalidKeys)
				}
			}
		}
	}
	return nil
}
