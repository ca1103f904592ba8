package keyformer

import (
	"math"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// positionsOf returns the tokens' positions.
func positionsOf(toks []Token) []int32 {
	pos := make([]int32, len(toks))
	for i, t := range toks {
		pos[i] = t.Pos
	}
	return pos
}

// checkConsistent asserts the sequence's invariants: positions strictly increasing, slotOf naming
// each cell's slot and no other, one score per token in every array, live counts matching.
func checkConsistent(t *testing.T, s *Sequence) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Len(t, s.pos, len(s.cells))
	for i, c := range s.cells {
		require.Equal(t, i, s.slot(c), "cell %d", c)
		if i > 0 {
			require.Less(t, s.pos[i-1], s.pos[i], "position order")
		}
	}
	held := 0
	for _, sl := range s.slotOf {
		if sl >= 0 {
			held++
		}
	}
	require.Equal(t, len(s.cells), held, "slotOf holds only the sequence's cells")
	for h, sc := range s.scores {
		require.Len(t, sc, len(s.cells))
		live := 0
		for _, v := range sc {
			if !math.IsInf(float64(v), 1) {
				live++
			}
		}
		require.Equal(t, live, s.live[h], "live count of array %d", h)
	}
	if s.cfg.Ranking.MeanAttention {
		require.Len(t, s.seen, len(s.cells), "one seen count per token")
	} else {
		require.Nil(t, s.seen)
	}
}

// newTestTracker returns a tracker with cfg.
func newTestTracker(t *testing.T, cfg Config) *Tracker {
	tr, err := NewTracker(cfg)
	require.NoError(t, err)
	return tr
}

// seq returns sequence id of tr.
func seq(t *testing.T, tr *Tracker, id int32) *Sequence {
	s, err := tr.Sequence(id)
	require.NoError(t, err)
	return s
}

func TestForgetPositions(t *testing.T) {
	tr := newTestTracker(t, testConfig(8, 2))
	a, b := seq(t, tr, 0), seq(t, tr, 1)
	require.NoError(t, a.AddCells([]int32{0, 1, 2, 3, 4}, []int32{0, 1, 2, 5, 6}))
	require.NoError(t, b.AddCells([]int32{7, 8}, []int32{1, 2}))
	require.NoError(t, tr.ForgetPositions(0, 1, 6))
	assert.Equal(t, []int32{0, 6}, positionsOf(a.Tokens()))
	assert.Equal(t, []int32{0, 4}, cellsOf(a.Tokens()))
	assert.Equal(t, []int32{1, 2}, positionsOf(b.Tokens()), "another sequence keeps its tokens")
	checkConsistent(t, a)
	require.NoError(t, a.AddCells([]int32{1}, []int32{7}), "a forgotten cell can be added again")

	require.NoError(t, tr.ForgetPositions(-1, 0, 2))
	assert.Equal(t, []int32{6, 7}, positionsOf(a.Tokens()), "a negative id forgets in every sequence")
	assert.Equal(t, []int32{2}, positionsOf(b.Tokens()))

	assert.ErrorContains(t, tr.ForgetPositions(0, 3, 2), "bad range")
	assert.ErrorContains(t, tr.ForgetPositions(0, -1, 2), "bad range")
	assert.ErrorContains(t, tr.ForgetPositions(maxSequences, 0, 2), "outside")
	require.NoError(t, tr.ForgetPositions(9, 0, 100), "an unknown sequence holds nothing")
	assert.Equal(t, 2, tr.Len(), "and is not created")
}

func TestForgetAllStartsOverKeepingADeclaredPrompt(t *testing.T) {
	cfg := testConfig(4, 1)
	tr := newTestTracker(t, cfg)
	s := seq(t, tr, 0)
	require.NoError(t, s.SetPromptLength(6))
	require.NoError(t, s.AddCells([]int32{0, 1, 2}, []int32{0, 1, 2}))
	require.NoError(t, tr.ForgetPositions(0, 0, math.MaxInt32))
	assert.Zero(t, s.Len())
	require.NoError(t, s.SetPromptLength(6), "the declared prompt stays")
	assert.ErrorContains(t, s.SetPromptLength(0), "outside")

	e := newTestEngine(t, s, 1)
	e.run(6, 6, 3)
	budget, _, ok := s.Limits()
	require.True(t, ok)
	assert.Equal(t, 4, budget)
	require.NoError(t, tr.ForgetPositions(0, 0, math.MaxInt32))
	_, _, ok = s.Limits()
	assert.False(t, ok, "emptied after its first plan, the sequence resolves its budget again")
	require.NoError(t, s.SetPromptLength(9), "and takes a new prompt length")
	require.NoError(t, s.AddCells([]int32{3}, []int32{0}), "positions start over")
}

func TestShiftPositions(t *testing.T) {
	tr := newTestTracker(t, testConfig(8, 2))
	s := seq(t, tr, 0)
	require.NoError(t, s.AddCells([]int32{0, 1, 2, 3}, []int32{0, 2, 5, 6}))
	require.NoError(t, tr.ShiftPositions(0, 2, 100, -1))
	assert.Equal(t, []int32{0, 1, 4, 5}, positionsOf(s.Tokens()))
	before := s.Tokens()
	assert.ErrorIs(t, tr.ShiftPositions(0, 4, 100, -4), ErrPositionConflict)
	assert.ErrorContains(t, tr.ShiftPositions(0, 5, 2, 1), "bad range")
	assert.ErrorContains(t, tr.ShiftPositions(0, 0, 2, math.MaxInt32), "position range")
	assert.ErrorContains(t, tr.ShiftPositions(-1, 0, 2, 1), "outside")
	assert.Equal(t, before, s.Tokens(), "failed shifts change nothing")
	require.NoError(t, tr.ShiftPositions(0, 50, 60, 3), "an empty range is a no-op")
	require.NoError(t, tr.ShiftPositions(7, 0, 60, 3), "an unknown sequence holds nothing")

	require.NoError(t, tr.ShiftPositions(0, 4, 6, -6))
	assert.Equal(t, []int32{0, 1}, cellsOf(s.Tokens()), "positions below 0 are removed")
	assert.Equal(t, []int32{0, 1}, positionsOf(s.Tokens()))
	require.NoError(t, s.AddCells([]int32{2}, []int32{3}))
	require.NoError(t, tr.ShiftPositions(0, 3, 4, -1))
	require.NoError(t, tr.ShiftPositions(0, 0, 2, 10))
	assert.Equal(t, []int32{2, 0, 1}, cellsOf(s.Tokens()), "shifted past others, the order is restored")
	assert.Equal(t, []int32{2, 10, 11}, positionsOf(s.Tokens()))
	checkConsistent(t, s)
	require.Error(t, s.AddCells([]int32{9}, []int32{11}), "new tokens still come after the last position")

	require.NoError(t, tr.ShiftPositions(0, 0, math.MaxInt32, -20))
	assert.Zero(t, s.Len(), "everything below 0: the sequence is empty")
	require.NoError(t, s.AddCells([]int32{9}, []int32{0}))
}

func TestCopyPositionsSharesCellsAndScores(t *testing.T) {
	cfg := testConfig(10, 2)
	tr := newTestTracker(t, cfg)
	src := seq(t, tr, 0)
	e := newTestEngine(t, src, 3)
	e.run(16, 8, 4)
	require.NoError(t, tr.CopyPositions(0, 1, 0, math.MaxInt32))
	dst := seq(t, tr, 1)
	assert.Equal(t, src.Tokens(), dst.Tokens(), "same cells, positions and scores")
	checkConsistent(t, dst)
	sb, sw, _ := src.Limits()
	db, dw, ok := dst.Limits()
	require.True(t, ok, "a new destination continues the source's budget")
	assert.Equal(t, [2]int{sb, sw}, [2]int{db, dw})
	assert.Equal(t, src.step(), dst.step())

	// Each sequence evicts on its own: the shared cell leaves one and stays in the other.
	shared := src.Tokens()[0].Cell
	require.NoError(t, dst.Forget([]Eviction{{Cell: shared, Layer: -1, Head: -1}}))
	_, inSrc := src.Position(shared)
	_, inDst := dst.Position(shared)
	assert.True(t, inSrc)
	assert.False(t, inDst)
	require.NoError(t, src.AddCells([]int32{100}, []int32{50}))
	require.NoError(t, dst.AddCells([]int32{101}, []int32{50}), "each sequence adds its own cells after the copy")

	// Copying again skips the cells dst holds and adds back the one it forgot.
	require.NoError(t, tr.CopyPositions(0, 1, 0, 50))
	_, inDst = dst.Position(shared)
	assert.True(t, inDst)
	assert.Equal(t, src.Len(), dst.Len())
	checkConsistent(t, dst)

	// A position dst holds in another cell is refused, and nothing changes.
	before := dst.Tokens()
	assert.ErrorIs(t, tr.CopyPositions(0, 1, 50, 51), ErrPositionConflict)
	assert.Equal(t, before, dst.Tokens())
	assert.ErrorContains(t, tr.CopyPositions(0, 1, 2, 1), "bad range")
	assert.ErrorContains(t, tr.CopyPositions(0, -1, 0, 1), "outside")
	require.NoError(t, tr.CopyPositions(0, 0, 0, 100), "onto itself: nothing")

	// A shared cell shifted in one sequence moves in both (llama.cpp keeps one position per cell).
	first := src.Tokens()[0]
	require.NoError(t, tr.ShiftPositions(0, first.Pos, first.Pos+1, -first.Pos-1))
	_, inSrc = src.Position(shared)
	_, inDst = dst.Position(shared)
	assert.False(t, inSrc || inDst, "shifted below 0, the cell leaves both")
	require.NoError(t, tr.ShiftPositions(0, 0, 50, 1000))
	for _, s := range []*Sequence{src, dst} {
		checkConsistent(t, s)
	}
	moved := 0
	for _, tok := range src.Tokens() {
		if p, ok := dst.Position(tok.Cell); ok {
			assert.Equal(t, tok.Pos, p, "cell %d", tok.Cell)
			moved++
		}
	}
	assert.Equal(t, src.Len()-1, moved, "every shared cell moved in dst too")
	assert.Equal(t, []int32{101}, cellsOf(dst.Tokens()[:1]), "dst's own cell at 50 stayed, before the moved ones")
}

func TestCopySequenceMovesCellsToTheOtherStream(t *testing.T) {
	cfg := testConfig(10, 2)
	tr := newTestTracker(t, cfg)
	src := seq(t, tr, 0)
	e := newTestEngine(t, src, 3)
	e.run(16, 8, 4)
	dst := seq(t, tr, 2)
	require.NoError(t, dst.AddCells([]int32{2000, 2001}, []int32{0, 1}), "what dst held before is gone after the copy")
	const shift = 2 * 1024 // two streams of 1024 cells on
	require.NoError(t, tr.CopySequence(0, 2, shift))
	want := src.Tokens()
	for i := range want {
		want[i].Cell += shift
	}
	assert.Equal(t, want, dst.Tokens(), "src's positions and scores, in cells moved by the shift")
	checkConsistent(t, dst)
	sb, sw, _ := src.Limits()
	db, dw, ok := dst.Limits()
	require.True(t, ok, "dst continues the source's budget")
	assert.Equal(t, [2]int{sb, sw}, [2]int{db, dw})
	assert.Equal(t, src.step(), dst.step())

	// The cells are the destination's own: forgetting one leaves the source whole.
	require.NoError(t, dst.Forget([]Eviction{{Cell: want[0].Cell, Layer: -1, Head: -1}}))
	assert.Equal(t, len(want), src.Len())
	assert.Equal(t, len(want)-1, dst.Len())

	before := dst.Tokens()
	assert.ErrorContains(t, tr.CopySequence(0, 2, maxCells), "outside")
	assert.Equal(t, before, dst.Tokens(), "a refused copy changes nothing")
	assert.ErrorContains(t, tr.CopySequence(0, -1, 0), "outside")
	require.NoError(t, tr.CopySequence(2, 2, 5), "onto itself: nothing")
	assert.Equal(t, before, dst.Tokens())
	require.NoError(t, tr.CopySequence(7, 2, 0), "from a sequence never seen: dst is emptied, as its stream is")
	assert.Zero(t, dst.Len())
}

func TestCopyIntoAUsedSequenceCountsAsAdded(t *testing.T) {
	tr := newTestTracker(t, testConfig(8, 2))
	src, dst := seq(t, tr, 0), seq(t, tr, 3)
	require.NoError(t, src.AddCells([]int32{0, 1, 2}, []int32{0, 1, 2}))
	require.NoError(t, dst.AddCells([]int32{5}, []int32{9}))
	require.NoError(t, tr.CopyPositions(0, 3, 1, 3))
	assert.Equal(t, []int32{1, 2, 5}, cellsOf(dst.Tokens()))
	assert.Equal(t, 3, dst.added)

	require.NoError(t, tr.CopyPositions(0, 4, 7, 7), "an empty range")
	assert.Zero(t, seq(t, tr, 4).added, "copies nothing, and inherits nothing")
}

func TestKeepAndClear(t *testing.T) {
	tr := newTestTracker(t, testConfig(8, 2))
	for id := int32(0); id < 3; id++ {
		require.NoError(t, seq(t, tr, id).AddCells([]int32{10 * id}, []int32{0}))
	}
	require.NoError(t, tr.Keep(1))
	for id := int32(0); id < 3; id++ {
		want := 0
		if id == 1 {
			want = 1
		}
		assert.Equal(t, want, seq(t, tr, id).Len(), "sequence %d", id)
	}
	assert.ErrorContains(t, tr.Keep(-1), "outside")
	tr.Clear()
	assert.Zero(t, seq(t, tr, 1).Len())
	require.NoError(t, seq(t, tr, 1).AddCells([]int32{10}, []int32{0}), "a cleared sequence starts over")
}

// TestEditsRaceWithSequenceCalls runs tracker edits while other goroutines drive the sequences
// (go test -race).
func TestEditsRaceWithSequenceCalls(t *testing.T) {
	tr := newTestTracker(t, testConfig(12, 2))
	var wg sync.WaitGroup
	for id := int32(0); id < 3; id++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _ := tr.Sequence(id)
			for i := int32(0); i < 200; i++ {
				_ = s.AddCells([]int32{1000*id + i}, []int32{i})
				_, _ = s.Plan(nil)
				_ = s.Tokens()
			}
		}()
	}
	for i := range int32(200) {
		_ = tr.ForgetPositions(i%3-1, i, i+3)
		_ = tr.ShiftPositions(i%3, 0, 50, 1)
		_ = tr.CopyPositions(i%3, (i+1)%3, 0, 10)
		if i%50 == 0 {
			_ = tr.Keep(i % 3)
		}
	}
	wg.Wait()
	for id := int32(0); id < 3; id++ {
		checkConsistent(t, seq(t, tr, id))
	}
}
