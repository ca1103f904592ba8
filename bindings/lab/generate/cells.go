//go:build linux || darwin

package generate

// The count of KV cells the sequences of a context hold: the one source of Result.PeakCells and
// BatchResult.PeakCells.

import (
	"fmt"

	"github.com/keyformer/keyformer/bindings/adapter"
)

// cellCount counts the KV cells each sequence holds and the most that the sequences a caller
// names held together after a llama_decode, before its evictions. With an adapter the tracker is
// the count (it holds what llama.cpp holds: additions, evictions, restores, host edits); without
// one nothing is evicted but what a context shift removes, and the count is kept here.
type cellCount struct {
	ad   *adapter.Adapter
	own  map[int32]int // cells per sequence, without an adapter
	peak int
}

// newCellCount returns a count of the cells of ad's tracker, or of its own without an adapter.
func newCellCount(ad *adapter.Adapter) *cellCount {
	return &cellCount{ad: ad, own: map[int32]int{}}
}

// add records n cells added to (n < 0: removed from) sequence seq; the adapter's tracker already
// holds its own additions and removals.
func (c *cellCount) add(seq int32, n int) {
	if c.ad == nil {
		c.own[seq] += n
	}
}

// held returns the cells sequence seq holds.
func (c *cellCount) held(seq int32) (int, error) {
	if c.ad == nil {
		return c.own[seq], nil
	}
	s, err := c.ad.Tracker().Sequence(seq)
	if err != nil {
		return 0, fmt.Errorf("generate: cell count: %w", err)
	}
	return s.Len(), nil
}

// record raises the peak to the cells seqs hold together (call it after a llama_decode, before
// its evictions).
func (c *cellCount) record(seqs ...int32) error {
	total := 0
	for _, q := range seqs {
		n, err := c.held(q)
		if err != nil {
			return err
		}
		total += n
	}
	c.peak = max(c.peak, total)
	return nil
}
