package abitest

import (
	"testing"

	"github.com/keyformer/keyformer/keyformer"
)

// BenchmarkObserveGo is one observe call through the Go API for one layer of a SmolLM2-shaped
// model at 4k cells: n_kv = 4096 columns, 9 query heads (3 KV heads), 1 query row, Keyformer
// policy, probabilities: the workload of tests/c/bench_observe.c, so that `make bench-abi`
// compares the C ABI (and ctypes) with it.
func BenchmarkObserveGo(b *testing.B) {
	const nKV, heads, headsKV = 4096, 9, 3
	cfg := keyformer.DefaultConfig(keyformer.Shape{Layers: 1, QueryHeads: heads, KVHeads: headsKV})
	cfg.Policy = keyformer.PolicyKeyformer // the default (KeyDiff) reads keys, not attention
	cfg.Budget = keyformer.Tokens(nKV / 2)
	tr, err := keyformer.NewTracker(cfg)
	if err != nil {
		b.Fatal(err)
	}
	seq, err := tr.Sequence(0)
	if err != nil {
		b.Fatal(err)
	}
	cells, pos := make([]int32, nKV), make([]int32, nKV)
	for j := range cells {
		cells[j], pos[j] = int32(j), int32(j)
	}
	if err := seq.AddCells(cells, pos); err != nil {
		b.Fatal(err)
	}
	// the rows: weights 1 + (7919 j + 104729 h) mod 1000, normalised (as bench_observe.c)
	data := make([]float32, heads*nKV)
	for h := range heads {
		var sum float64
		for j := range nKV {
			data[h*nKV+j] = float32(1 + (7919*j+104729*h)%1000)
			sum += float64(data[h*nKV+j])
		}
		for j := range nKV {
			data[h*nKV+j] = float32(float64(data[h*nKV+j]) / sum)
		}
	}
	a := keyformer.Attention{Data: data, Rows: 1, Heads: heads, Cols: nKV, RowStride: nKV, HeadStride: nKV}
	for range 100 { // warm up, as bench_observe does
		if err := seq.ObserveAttention(0, a); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if err := seq.ObserveAttention(0, a); err != nil {
			b.Fatal(err)
		}
	}
}
