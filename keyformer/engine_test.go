package keyformer

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// testEngine simulates an engine's KV cache for one sequence: cells are refilled lowest-first,
// attention rows are a causal softmax over the live cells of random logits (plus a per-cell bias
// so that some tokens are key tokens), and freed cells are given back.
type testEngine struct {
	t     testing.TB
	seq   *Sequence
	shape Shape
	rnd   *rand.Rand
	bias  map[int32]float64 // by position
	used  map[int32]int32   // cell -> position
	next  int32             // next position
}

func newTestEngine(t testing.TB, seq *Sequence, seed uint64) *testEngine {
	return &testEngine{t: t, seq: seq, shape: seq.cfg.Shape, rnd: rand.New(rand.NewPCG(seed, 7)),
		bias: map[int32]float64{}, used: map[int32]int32{}}
}

// freeCells returns the n lowest free cells.
func (e *testEngine) freeCells(n int) []int32 {
	var out []int32
	for c := int32(0); len(out) < n; c++ {
		if _, ok := e.used[c]; !ok {
			out = append(out, c)
		}
	}
	return out
}

// decode adds n tokens, builds every layer's attention, observes it and returns the attention
// blocks (per layer) it showed.
func (e *testEngine) decode(n int) [][]float32 {
	cells, pos := e.place(n)
	require.NoError(e.t, e.seq.AddCells(cells, pos))
	cols := int32(0)
	for c := range e.used {
		cols = max(cols, c+1)
	}
	var blocks [][]float32
	for layer := range e.shape.Layers {
		a := e.attention(pos, int(cols))
		require.NoError(e.t, e.seq.ObserveAttention(layer, a))
		blocks = append(blocks, a.Data)
	}
	return blocks
}

// place puts n new tokens in the lowest free cells, each with a random bias, and returns their
// cells and positions (the sequence is not told).
func (e *testEngine) place(n int) (cells, pos []int32) {
	cells, pos = e.freeCells(n), make([]int32, n)
	for i := range pos {
		pos[i] = e.next
		e.bias[e.next] = 3 * e.rnd.NormFloat64()
		e.used[cells[i]] = e.next
		e.next++
	}
	return cells, pos
}

// attention returns a causal softmax block for query positions pos over cols cells.
func (e *testEngine) attention(pos []int32, cols int) Attention {
	h := e.shape.QueryHeads
	data := make([]float32, len(pos)*h*cols)
	for r, qp := range pos {
		for hd := range h {
			row := data[(hd*len(pos)+r)*cols : (hd*len(pos)+r+1)*cols]
			var sum float64
			x := make([]float64, cols)
			for c := range cols {
				p, ok := e.used[int32(c)]
				if !ok || p > qp {
					continue
				}
				x[c] = math.Exp(e.bias[p] + e.rnd.NormFloat64())
				sum += x[c]
			}
			for c := range cols {
				row[c] = float32(x[c] / sum)
			}
		}
	}
	return Attention{Data: data, Rows: len(pos), Heads: h, Cols: cols, RowStride: cols, HeadStride: cols * len(pos)}
}

// evict plans, frees the planned cells and forgets them; it returns the evictions.
func (e *testEngine) evict() []Eviction {
	evs, err := e.seq.Plan(nil)
	require.NoError(e.t, err)
	e.forget(evs)
	return evs
}

// forget frees the planned cells and forgets them.
func (e *testEngine) forget(evs []Eviction) {
	for _, ev := range evs {
		if ev.Layer == -1 {
			delete(e.used, ev.Cell)
		}
	}
	require.NoError(e.t, e.seq.Forget(evs))
	if e.seq.cfg.Granularity == PerHead {
		e.syncCells()
	}
}

// syncCells frees the engine cells the sequence no longer holds (PerHead granularity).
func (e *testEngine) syncCells() {
	held := map[int32]bool{}
	for _, t := range e.seq.Tokens() {
		held[t.Cell] = true
	}
	for c := range e.used {
		if !held[c] {
			delete(e.used, c)
		}
	}
}

// testConfig returns a small Keyformer config with a token budget that reads everything and
// evicts at every plan (schedule_test.go covers the schedules).
func testConfig(budget, window int) Config {
	cfg := DefaultConfig(Shape{Layers: 2, QueryHeads: 4, KVHeads: 2})
	cfg.Policy = PolicyKeyformer
	cfg.Budget, cfg.Window, cfg.Observe = Tokens(budget), Tokens(window), Schedule{}
	cfg.NewTokens = 16
	cfg.Seed = 42
	return cfg
}

// newTestSequence returns sequence id of a new tracker with cfg.
func newTestSequence(t testing.TB, cfg Config, id int32) *Sequence {
	tr, err := NewTracker(cfg)
	require.NoError(t, err)
	s, err := tr.Sequence(id)
	require.NoError(t, err)
	return s
}

// run drives a prompt of n tokens in ubatches of ub then gen generated tokens, evicting after each
// decode, and returns every eviction in order.
func (e *testEngine) run(prompt, ub, gen int) []Eviction {
	var all []Eviction
	for done := 0; done < prompt; done += ub {
		e.decode(min(ub, prompt-done))
		if done+ub >= prompt {
			all = append(all, e.evict()...)
		}
	}
	for range gen {
		e.decode(1)
		all = append(all, e.evict()...)
	}
	return all
}
