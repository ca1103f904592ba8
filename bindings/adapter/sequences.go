//go:build linux || darwin

package adapter

// Splitting a ubatch across sequences: which sequence each row belongs to, and adding the
// ubatch's cells to those sequences.

import (
	"fmt"

	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// forEachRun calls fn for every run [r0, r1) of consecutive ubatch rows that belong to one
// sequence, with that sequence of the tracker and then of each observer (a.mu held); errors name
// the sequence.
func (a *Adapter) forEachRun(fn func(seq *keyformer.Sequence, r0, r1 int) error) error {
	for r0 := 0; r0 < len(a.rowSeq); {
		r1 := r0 + 1
		for r1 < len(a.rowSeq) && a.rowSeq[r1] == a.rowSeq[r0] {
			r1++
		}
		for i := -1; i < len(a.observers); i++ {
			tr, who := a.tracker, ""
			if i >= 0 {
				tr, who = a.observers[i], fmt.Sprintf("observer %d: ", i)
			}
			seq, err := tr.Sequence(a.rowSeq[r0])
			if err == nil {
				err = fn(seq, r0, r1)
			}
			if err != nil {
				return fmt.Errorf("%ssequence %d: %w", who, a.rowSeq[r0], err)
			}
		}
		r0 = r1
	}
	return nil
}

// addUbatch assigns the ubatch's n tokens to sequences and adds their cells (a.mu held).
func (a *Adapter) addUbatch(n int) error {
	if len(a.cells) != n || len(a.positions) < n {
		return fmt.Errorf("ubatch of %d tokens, but %d cells (node %q) and %d positions (node %q) were read: "+
			"the graph's node names or layout differ from llama.cpp "+llama.PinnedLlamaCpp+"'s (bindings/llama/internals.go)",
			n, len(a.cells), llama.NodeCells, len(a.positions), llama.NodePositions)
	}
	perStream := a.kvSize > 0
	if a.batch != nil && !perStream && a.batchOff+n > len(a.batch) {
		return fmt.Errorf("the decode has more tokens than the %d declared with SetBatch", len(a.batch))
	}
	for i := range n {
		s := int32(DefaultSequence)
		switch {
		case perStream: // sequence s is stream s: the cell says
			s = a.cells[i] / a.kvSize
		case a.batch != nil:
			s = a.batch[a.batchOff+i]
		}
		a.rowSeq = append(a.rowSeq, s)
	}
	a.batchOff += n
	return a.forEachRun(func(seq *keyformer.Sequence, r0, r1 int) error {
		return seq.AddCells(a.cells[r0:r1], a.positions[r0:r1])
	})
}
