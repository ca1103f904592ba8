//go:build linux || darwin

package adapter

// After a decode: freeing the cells the tracker plans to evict, and renumbering positions.

import (
	"errors"
	"fmt"

	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// Apply finishes a llama_decode for sequence seq: it reports an error the callback met, or a
// ubatch whose attention was wanted but never shown (flash attention on), then frees the cells
// the tracker plans to evict, one llama_memory_seq_rm per run of consecutive positions, and
// forgets them. It returns the number of cells freed. Call it after every llama_decode, for every
// sequence the decode touched.
func (a *Adapter) Apply(seq int32) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mem == 0 {
		return 0, errors.New("adapter: apply before attach")
	}
	a.batch, a.batchOff = nil, 0
	a.checkKeysSeen()
	unseen, noInputs := a.unseen, a.asked && !a.inputs
	a.unseen, a.asked, a.inputs = 0, false, false
	if err := a.err; err != nil {
		a.err = nil
		return 0, err
	}
	if noInputs {
		return 0, fmt.Errorf("adapter: sequence %d: the decode read no ubatch's positions and cells: its graph had no node %q of op ROPE (%d) "+
			"and %q of op SET_ROWS (%d); the node names or ops differ from llama.cpp "+llama.PinnedLlamaCpp+"'s (bindings/llama/internals.go)",
			seq, llama.NodePositions, a.lib.Ops.Rope, llama.NodeCells, a.lib.Ops.SetRows)
	}
	if unseen > 0 {
		return 0, fmt.Errorf("adapter: sequence %d: %w", seq, ErrNoAttention)
	}
	s, err := a.tracker.Sequence(seq)
	if err != nil {
		return 0, fmt.Errorf("adapter: %w", err)
	}
	a.evictions, err = s.Plan(a.evictions[:0])
	if err != nil {
		return 0, fmt.Errorf("adapter: sequence %d: %w", seq, err)
	}
	if len(a.evictions) > 0 {
		if freed, err := a.free(seq, s); err != nil {
			if ferr := s.Forget(freed); ferr != nil {
				return len(freed), fmt.Errorf("adapter: sequence %d: %w (and %w)", seq, err, ferr)
			}
			return len(freed), fmt.Errorf("adapter: sequence %d: %w", seq, err)
		}
		if err := s.Forget(a.evictions); err != nil {
			return 0, fmt.Errorf("adapter: sequence %d: %w", seq, err)
		}
		a.stats.Evicted += len(a.evictions)
	}
	if a.opts.CompactPositions && (a.opts.CompactAt > 0 || len(a.evictions) > 0) {
		if err := a.compact(seq, s); err != nil {
			return len(a.evictions), err
		}
	}
	return len(a.evictions), nil
}

// free removes a.evictions from llama.cpp's memory: one llama_memory_seq_rm per run of tokens,
// consecutive in the sequence, that are all evicted. On a refusal it returns the evictions freed
// so far (a.mu held).
func (a *Adapter) free(id int32, s *keyformer.Sequence) ([]keyformer.Eviction, error) {
	evicted := make(map[int32]bool, len(a.evictions))
	for _, e := range a.evictions {
		evicted[e.Cell] = true
	}
	var freed []keyformer.Eviction
	toks := s.Tokens()
	for i := 0; i < len(toks); {
		if !evicted[toks[i].Cell] {
			i++
			continue
		}
		j := i + 1
		for j < len(toks) && evicted[toks[j].Cell] {
			j++
		}
		if !a.lib.MemorySeqRm(a.mem, id, toks[i].Pos, toks[j-1].Pos+1) {
			return freed, ErrUnsupportedMemory
		}
		for _, t := range toks[i:j] {
			freed = append(freed, keyformer.Eviction{Cell: t.Cell, Layer: -1, Head: -1})
		}
		i = j
	}
	return freed, nil
}

// compact renumbers the sequence's tokens 0..n-1 once its highest position reaches
// Options.CompactAt, shifting each run of consecutive positions down with one
// llama_memory_seq_add and the same shift in the tracker, which moves cells the sequence shares
// with others in theirs too (a.mu held).
func (a *Adapter) compact(id int32, s *keyformer.Sequence) error {
	toks := s.Tokens()
	if len(toks) == 0 || toks[len(toks)-1].Pos < a.opts.CompactAt {
		return nil
	}
	if !a.lib.MemoryCanShift(a.mem) {
		return fmt.Errorf("adapter: sequence %d: position compaction needs a memory that can shift (llama_memory_can_shift)", id)
	}
	a.stats.Compactions++
	for i := 0; i < len(toks); {
		j := i + 1
		for j < len(toks) && toks[j].Pos == toks[j-1].Pos+1 {
			j++
		}
		if delta := int32(i) - toks[i].Pos; delta != 0 {
			p0, p1 := toks[i].Pos, toks[j-1].Pos+1
			a.lib.MemorySeqAdd(a.mem, id, p0, p1, delta)
			if err := a.tracker.ShiftPositions(id, p0, p1, delta); err != nil {
				return fmt.Errorf("adapter: sequence %d: %w", id, err)
			}
		}
		i = j
	}
	return nil
}
