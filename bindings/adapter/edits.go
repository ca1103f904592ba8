//go:build linux || darwin

package adapter

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/keyformer/keyformer/keyformer"
)

// A host that edits llama.cpp's cache itself (prefix reuse, truncation, regeneration, context
// shift) calls the method of the same name right after the llama.cpp call, with the same
// arguments, so that the tracker (and every observer) holds what llama.cpp holds: SeqRm after
// llama_memory_seq_rm, SeqAdd after llama_memory_seq_add, SeqCp after llama_memory_seq_cp,
// SeqKeep after llama_memory_seq_keep, Clear after llama_memory_clear. Positions follow llama.cpp:
// p0 < 0 means 0, p1 < 0 means no end. Sync repairs what a host could not mirror (a failed
// llama_decode, which rolls its ubatches back). None may run concurrently with a decode.

// llamaRange resolves llama.cpp's conventions for a position range [p0, p1) (p0 < 0: 0, p1 < 0:
// no end); an empty range becomes [0, 0).
func llamaRange(p0, p1 int32) (int32, int32) {
	if p0 < 0 {
		p0 = 0
	}
	if p1 < 0 {
		p1 = math.MaxInt32
	}
	if p1 <= p0 {
		return 0, 0
	}
	return p0, p1
}

// edit runs fn, under a.mu once the adapter is attached, on the tracker and then every observer;
// errors name name, the llama.cpp call mirrored.
func (a *Adapter) edit(name string, fn func(*keyformer.Tracker) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mem == 0 {
		return fmt.Errorf("adapter: %s before attach", name)
	}
	return a.eachTracker(name, fn)
}

// eachTracker runs fn on the tracker and then every observer (a.mu held).
func (a *Adapter) eachTracker(name string, fn func(*keyformer.Tracker) error) error {
	if err := fn(a.tracker); err != nil {
		return fmt.Errorf("adapter: %s: %w", name, err)
	}
	for i, tr := range a.observers {
		if err := fn(tr); err != nil {
			return fmt.Errorf("adapter: %s: observer %d: %w", name, i, err)
		}
	}
	return nil
}

// SeqRm follows llama_memory_seq_rm(mem, seq, p0, p1) when it returned true: the tokens of seq
// (of every sequence when seq < 0) at positions [p0, p1) are forgotten. A sequence left empty
// starts over as a new one (its budget resolves again at the next prompt).
func (a *Adapter) SeqRm(seq, p0, p1 int32) error {
	p0, p1 = llamaRange(p0, p1)
	return a.edit("seq_rm", func(tr *keyformer.Tracker) error { return tr.ForgetPositions(seq, p0, p1) })
}

// SeqAdd follows llama_memory_seq_add(mem, seq, p0, p1, delta): the positions of seq in [p0, p1)
// move by delta. As in llama.cpp a cell whose position falls below 0 is freed, and a cell seq
// shares with other sequences (SeqCp) moves in all of them. A shift that gives two tokens of a
// sequence one position is an error wrapping keyformer.ErrPositionConflict that changes nothing
// (llama.cpp allows it; the tracker cannot follow: reset the sequence, or remove it on both sides).
func (a *Adapter) SeqAdd(seq, p0, p1, delta int32) error {
	p0, p1 = llamaRange(p0, p1)
	return a.edit("seq_add", func(tr *keyformer.Tracker) error { return tr.ShiftPositions(seq, p0, p1, delta) })
}

// SeqCp follows llama_memory_seq_cp(mem, src, dst, p0, p1): in the unified cache dst now also
// holds src's cells in [p0, p1), the same cells. The dst sequence gets those tokens with a copy
// of their scores (a dst that held nothing continues src's budget and step count); from then on
// each sequence scores and evicts the shared cells on its own, and llama_memory_seq_rm of one
// leaves the cell to the other. In a cache of one stream per sequence llama.cpp copies src's
// whole stream into dst's (the range must be everything) after emptying it: dst then holds src's
// tokens with their scores in its own stream's cells (keyformer.Tracker.CopySequence).
func (a *Adapter) SeqCp(src, dst, p0, p1 int32) error {
	p0, p1 = llamaRange(p0, p1)
	return a.edit("seq_cp", func(tr *keyformer.Tracker) error {
		if a.kvSize > 0 {
			return tr.CopySequence(src, dst, (dst-src)*a.kvSize)
		}
		return tr.CopyPositions(src, dst, p0, p1)
	})
}

// SeqKeep follows llama_memory_seq_keep(mem, seq): every other sequence starts over empty. In a
// cache of one stream per sequence llama.cpp frees only what seq's own stream holds of other
// sequences, which is nothing: every sequence stays.
func (a *Adapter) SeqKeep(seq int32) error {
	return a.edit("seq_keep", func(tr *keyformer.Tracker) error {
		if a.kvSize > 0 {
			return nil
		}
		return tr.Keep(seq)
	})
}

// Clear follows llama_memory_clear: every sequence starts over empty.
func (a *Adapter) Clear() error {
	return a.edit("clear", func(tr *keyformer.Tracker) error {
		tr.Clear()
		return nil
	})
}

// Sync resynchronises sequence seq (every tracked sequence when seq < 0) with llama.cpp after a
// failed llama_decode, or any edit the host did not mirror that removed a head or a tail: it
// reads llama_memory_seq_pos_min/pos_max and forgets the tracked tokens outside [pos_min,
// pos_max] (all of them when llama.cpp holds none), and drops the decode state the adapter keeps
// between llama_decode and Apply (the batch declared with SetBatch, the ubatch bookkeeping, an
// error the eval callback kept), so that the next decode starts clean. It sees only llama.cpp's
// lowest and highest positions: a hole removed in the middle, a shift, or a copy is not
// detected, and must be mirrored with SeqRm, SeqAdd or SeqCp.
func (a *Adapter) Sync(seq int32) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mem == 0 {
		return errors.New("adapter: sync before attach")
	}
	a.batch, a.batchOff = nil, 0
	a.positions, a.cells, a.rowSeq = a.positions[:0], a.cells[:0], a.rowSeq[:0]
	a.read, a.fresh, a.pending, a.unseen, a.err = false, false, false, 0, nil
	ids := a.tracker.IDs()
	if seq >= 0 {
		if !slices.Contains(ids, seq) {
			return nil
		}
		ids = []int32{seq}
	}
	type held struct{ id, lo, hi int32 }
	var keep []held
	for _, id := range ids {
		// Only sequences holding tokens came from llama.cpp: other ids may be beyond its n_seq_max,
		// where llama_memory_seq_pos_min aborts.
		if s, err := a.tracker.Sequence(id); err == nil && s.Len() > 0 {
			keep = append(keep, held{id, a.lib.MemorySeqPosMin(a.mem, id), a.lib.MemorySeqPosMax(a.mem, id)})
		}
	}
	return a.eachTracker("sync", func(tr *keyformer.Tracker) error {
		for _, h := range keep {
			// llama.cpp reports -1, -1 for a sequence it holds nothing of: everything is outside.
			for _, r := range [][2]int32{{0, h.lo}, {h.hi + 1, math.MaxInt32}} {
				if r[0] >= r[1] {
					continue
				}
				if err := tr.ForgetPositions(h.id, r[0], r[1]); err != nil {
					return fmt.Errorf("sequence %d: %w", h.id, err)
				}
			}
		}
		return nil
	})
}
