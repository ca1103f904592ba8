package keyformer

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Edits an engine makes to its own cache (remove, shift or copy positions, keep one sequence,
// clear), mirrored position by position. An engine whose cells can be shared by several sequences
// (llama.cpp's unified cache after llama_memory_seq_cp) holds one position per cell: a shift moves
// the cell in every sequence that holds it.

// ErrPositionConflict is wrapped by the errors of ShiftPositions and CopyPositions for an edit that
// would give two tokens of one sequence the same position: an engine may allow it, the tracker
// cannot follow (it removes and evicts by position).
var ErrPositionConflict = errors.New("two tokens of a sequence at one position")

// checkRange validates a position range [p0, p1).
func checkRange(p0, p1 int32) error {
	if p0 < 0 || p1 < p0 {
		return fmt.Errorf("bad range [%d, %d)", p0, p1)
	}
	return nil
}

// inRange marks the slots whose position is in [p0, p1) and returns how many it marked (s.mu held).
func (s *Sequence) inRange(p0, p1 int32) ([]bool, int) {
	marked, n := make([]bool, len(s.pos)), 0
	for i, p := range s.pos {
		if p >= p0 && p < p1 {
			marked[i] = true
			n++
		}
	}
	return marked, n
}

// drop removes the n slots marked; a sequence left empty starts over (s.mu held).
func (s *Sequence) drop(removed []bool, n int) {
	if n == 0 {
		return
	}
	s.compact(removed)
	if len(s.cells) == 0 {
		prompt := 0
		if s.budget == 0 {
			prompt = s.prompt
		}
		s.reset()
		s.prompt = prompt
	}
}

// shifted returns the sequence's positions after adding delta to those of the marked slots, -1
// for a slot whose position falls below 0; two tokens at one position, or a position past the
// int32 range, are errors (s.mu held).
func (s *Sequence) shifted(marked []bool, delta int32) ([]int32, error) {
	pos := slices.Clone(s.pos)
	kept := make([]int32, 0, len(pos))
	for i, p := range pos {
		if marked[i] {
			q := int64(p) + int64(delta)
			if q > math.MaxInt32 {
				return nil, fmt.Errorf("position %d (cell %d) leaves the position range", p, s.cells[i])
			}
			pos[i] = int32(max(q, -1))
		}
		if pos[i] >= 0 {
			kept = append(kept, pos[i])
		}
	}
	slices.Sort(kept)
	for i := 1; i < len(kept); i++ {
		if kept[i] == kept[i-1] {
			return nil, fmt.Errorf("sequence %d, position %d: %w", s.id, kept[i], ErrPositionConflict)
		}
	}
	return pos, nil
}

// setPositions gives the slots the positions pos that shifted returned: slots at -1 are removed,
// the others put back in position order (s.mu held).
func (s *Sequence) setPositions(pos []int32) {
	copy(s.pos, pos)
	removed, n := s.inRange(math.MinInt32, 0)
	s.drop(removed, n)
	s.sortByPosition()
}

// sortByPosition restores the position order of the slots (s.mu held).
func (s *Sequence) sortByPosition() {
	if slices.IsSorted(s.pos) {
		return
	}
	order := make([]int, len(s.pos))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(s.pos[a], s.pos[b]) })
	cells, pos := make([]int32, len(order)), make([]int32, len(order))
	for k, i := range order {
		cells[k], pos[k] = s.cells[i], s.pos[i]
		s.slotOf[cells[k]] = int32(k)
	}
	permute := func(v []float32) []float32 {
		sorted := make([]float32, len(v))
		for k, i := range order {
			sorted[k] = v[i]
		}
		return sorted
	}
	for h, sc := range s.scores {
		s.scores[h] = permute(sc)
	}
	if s.seen != nil {
		s.seen = permute(s.seen)
	}
	s.cells, s.pos = cells, pos
}

// checkID validates a sequence id.
func checkID(id int32) error {
	if id < 0 || id >= maxSequences {
		return fmt.Errorf("sequence id %d outside [0, %d)", id, maxSequences)
	}
	return nil
}

// lockAll locks the tracker and every sequence in id order and returns the sequences and the
// function that unlocks them all.
func (t *Tracker) lockAll() ([]*Sequence, func()) {
	t.mu.Lock()
	ids := make([]int32, 0, len(t.seqs))
	for id := range t.seqs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	seqs := make([]*Sequence, len(ids))
	for i, id := range ids {
		seqs[i] = t.seqs[id]
		seqs[i].mu.Lock()
	}
	return seqs, func() {
		for _, s := range seqs {
			s.mu.Unlock()
		}
		t.mu.Unlock()
	}
}

// ForgetPositions removes the tokens at positions [p0, p1) from sequence id, or from every
// sequence when id is negative, as an engine that freed them (llama_memory_seq_rm). A sequence
// left empty starts over as a new one (see Sequence.Reset) but keeps a prompt length declared
// before its first Plan.
func (t *Tracker) ForgetPositions(id, p0, p1 int32) error {
	if err := checkRange(p0, p1); err != nil {
		return fmt.Errorf("forget positions: %w", err)
	}
	if id >= 0 {
		if err := checkID(id); err != nil {
			return fmt.Errorf("forget positions: %w", err)
		}
	}
	seqs, unlock := t.lockAll()
	defer unlock()
	for _, s := range seqs {
		if id < 0 || s.id == id {
			s.drop(s.inRange(p0, p1))
		}
	}
	return nil
}

// ShiftPositions adds delta to the positions in [p0, p1) of sequence id, as llama_memory_seq_add
// does: a token whose position falls below 0 is removed (llama.cpp frees its cell), a cell other
// sequences share moves (or leaves) in all of them, and a sequence whose shifted tokens pass
// others is put back in position order. A shift that gives two tokens of a sequence one position,
// or leaves the int32 range, is an error and changes nothing. A sequence left empty starts over as
// after ForgetPositions.
func (t *Tracker) ShiftPositions(id, p0, p1, delta int32) error {
	if err := checkRange(p0, p1); err != nil {
		return fmt.Errorf("shift positions: %w", err)
	}
	if err := checkID(id); err != nil {
		return fmt.Errorf("shift positions: %w", err)
	}
	seqs, unlock := t.lockAll()
	defer unlock()
	src := t.seqs[id]
	if src == nil {
		return nil
	}
	marked, _ := src.inRange(p0, p1)
	moved := map[int32]bool{}
	for i, c := range src.cells {
		if marked[i] {
			moved[c] = true
		}
	}
	plans := make([][]int32, len(seqs))
	for k, s := range seqs {
		m := marked
		if s != src {
			m = make([]bool, len(s.cells))
			for i, c := range s.cells {
				m[i] = moved[c]
			}
		}
		pos, err := s.shifted(m, delta)
		if err != nil {
			return fmt.Errorf("shift positions: [%d, %d) of sequence %d by %d: %w", p0, p1, id, delta, err)
		}
		plans[k] = pos
	}
	for k, s := range seqs {
		s.setPositions(plans[k])
	}
	return nil
}

// CopyPositions gives sequence dst the tokens of sequence src at positions [p0, p1), as
// llama_memory_seq_cp does in a unified cache: the same cells and positions (shared by both
// sequences from then on: each evicts and forgets them on its own), with a copy of their scores.
// A dst that never held a token continues src (its prompt length, budget, window and step counter);
// otherwise the copied tokens count as added. Cells dst holds already are skipped; a copied
// position dst holds in another cell is an error and changes nothing.
func (t *Tracker) CopyPositions(src, dst, p0, p1 int32) error {
	if err := checkRange(p0, p1); err != nil {
		return fmt.Errorf("copy positions: %w", err)
	}
	if copies, err := t.copyEnds("copy positions", src, dst); !copies {
		return err
	}
	_, unlock := t.lockAll()
	defer unlock()
	from, to := t.seqs[src], t.seqs[dst]
	if from == nil {
		return nil
	}
	marked, _ := from.inRange(p0, p1)
	held := make(map[int32]int32, len(to.pos))
	for i, p := range to.pos {
		held[p] = to.cells[i]
	}
	var slots []int
	for i, c := range from.cells {
		if !marked[i] || to.slot(c) >= 0 {
			continue
		}
		if other, ok := held[from.pos[i]]; ok {
			return fmt.Errorf("copy positions: sequence %d holds position %d in cell %d, sequence %d in cell %d: %w",
				dst, from.pos[i], other, src, c, ErrPositionConflict)
		}
		slots = append(slots, i)
	}
	if len(slots) == 0 {
		return nil
	}
	if len(to.cells)+len(slots) > maxCells {
		return fmt.Errorf("copy positions: sequence %d would hold more than %d tokens", dst, maxCells)
	}
	copyTokens(from, to, slots, 0)
	return nil
}

// CopySequence empties sequence dst and gives it every token of sequence src in src's cell moved
// by cellShift, with a copy of its score: what llama_memory_seq_cp does between two streams of a
// cache with one stream per sequence (it copies src's stream into dst's, cell for cell, and dst's
// stream held dst alone). dst continues src (its prompt length, budget, window and step counter).
// A moved cell outside [0, 2^24) is an error and changes nothing.
func (t *Tracker) CopySequence(src, dst, cellShift int32) error {
	if copies, err := t.copyEnds("copy sequence", src, dst); !copies {
		return err
	}
	_, unlock := t.lockAll()
	defer unlock()
	from, to := t.seqs[src], t.seqs[dst]
	var slots []int
	if from != nil {
		for i, c := range from.cells {
			if c := int64(c) + int64(cellShift); c < 0 || c >= maxCells {
				return fmt.Errorf("copy sequence: cell %d of sequence %d moved by %d is outside [0, %d)", from.cells[i], src, cellShift, maxCells)
			}
			slots = append(slots, i)
		}
	}
	to.reset()
	if len(slots) > 0 {
		copyTokens(from, to, slots, cellShift)
	}
	return nil
}

// copyEnds checks a copy's source and destination ids and creates the destination sequence; it
// reports whether there is anything to copy (src != dst, no error). op names the edit in errors.
func (t *Tracker) copyEnds(op string, src, dst int32) (bool, error) {
	for _, id := range []int32{src, dst} {
		if err := checkID(id); err != nil {
			return false, fmt.Errorf("%s: %w", op, err)
		}
	}
	if src == dst {
		return false, nil
	}
	if _, err := t.Sequence(dst); err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	return true, nil
}

// copyTokens gives to the tokens of from at slots, in from's cells moved by shift, with a copy of
// their scores; a to that never held a token continues from, otherwise they count as added (the
// locks of both held).
func copyTokens(from, to *Sequence, slots []int, shift int32) {
	if to.added == 0 && to.budget == 0 && to.prompt == 0 {
		to.prompt, to.budget, to.window, to.added, to.tovaAt = from.prompt, from.budget, from.window, from.added, from.tovaAt
		to.anchor, to.dim = slices.Clone(from.anchor), from.dim
	} else {
		to.added += len(slots)
	}
	for _, i := range slots {
		c := from.cells[i] + shift
		to.growSlots(c)
		to.slotOf[c] = int32(len(to.cells))
		to.cells = append(to.cells, c)
		to.pos = append(to.pos, from.pos[i])
		for h, sc := range from.scores {
			to.scores[h] = append(to.scores[h], sc[i])
			if !math.IsInf(float64(sc[i]), 1) {
				to.live[h]++
			}
		}
		if to.seen != nil {
			to.seen = append(to.seen, from.seen[i])
		}
	}
	to.sortByPosition()
}

// Keep resets every sequence but id (see Sequence.Reset), as llama_memory_seq_keep frees their
// cells.
func (t *Tracker) Keep(id int32) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("keep: %w", err)
	}
	seqs, unlock := t.lockAll()
	defer unlock()
	for _, s := range seqs {
		if s.id != id {
			s.reset()
		}
	}
	return nil
}

// Clear resets every sequence (see Sequence.Reset), as llama_memory_clear empties the cache.
func (t *Tracker) Clear() {
	seqs, unlock := t.lockAll()
	defer unlock()
	for _, s := range seqs {
		s.reset()
	}
}
