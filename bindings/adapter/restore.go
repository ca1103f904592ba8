//go:build linux || darwin

package adapter

// Restoring a sequence's tracker state after the host restored llama.cpp's state of it.

import (
	"errors"
	"fmt"
	"slices"

	"github.com/keyformer/keyformer/keyformer"
)

// RestoreSequence restores sequence id's tracker state (keyformer.Sequence.MarshalBinary, saved
// together with llama_state_seq_get_data) right after the host restored llama.cpp's state of the
// sequence with llama_state_seq_set_data. llama.cpp packs a restored sequence into cells 0, 1, ...
// in the saved (cell) order when no other sequence holds cells; with other sequences it searches
// from a position it does not report, so the restore is refused (ErrRestoreBesideOthers, the
// tracker unchanged), as it is in a cache of one stream per sequence (ErrRestorePerStream). The
// tracker's cells are renamed accordingly and the positions llama.cpp reports are checked
// against the tracker's.
func (a *Adapter) RestoreSequence(id int32, state []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mem == 0 {
		return errors.New("adapter: restore before attach")
	}
	seq, err := a.tracker.Sequence(id)
	if err != nil {
		return fmt.Errorf("adapter: %w", err)
	}
	if a.kvSize > 0 {
		return fmt.Errorf("adapter: sequence %d: %w", id, ErrRestorePerStream)
	}
	for _, other := range a.tracker.IDs() {
		if s, _ := a.tracker.Sequence(other); other != id && s.Len() > 0 {
			return fmt.Errorf("adapter: sequence %d: sequence %d holds %d cells: %w", id, other, s.Len(), ErrRestoreBesideOthers)
		}
	}
	if err := seq.UnmarshalBinary(state); err != nil {
		return fmt.Errorf("adapter: %w", err)
	}
	toks := seq.Tokens()
	if len(toks) == 0 {
		return nil
	}
	from := cellsSorted(toks)
	to := make([]int32, len(from))
	for i := range to {
		to[i] = int32(i)
	}
	if err := seq.MoveCells(from, to); err != nil {
		return fmt.Errorf("adapter: sequence %d: %w", id, err)
	}
	lo, hi := a.lib.MemorySeqPosMin(a.mem, id), a.lib.MemorySeqPosMax(a.mem, id)
	if lo != toks[0].Pos || hi != toks[len(toks)-1].Pos {
		seq.Reset()
		return fmt.Errorf("adapter: sequence %d: llama.cpp holds positions [%d, %d], the saved state [%d, %d]: restore the llama.cpp state of the same moment first",
			id, lo, hi, toks[0].Pos, toks[len(toks)-1].Pos)
	}
	return nil
}

// cellsSorted returns the tokens' cells in increasing order.
func cellsSorted(toks []keyformer.Token) []int32 {
	cells := make([]int32, len(toks))
	for i, t := range toks {
		cells[i] = t.Cell
	}
	slices.Sort(cells)
	return cells
}
