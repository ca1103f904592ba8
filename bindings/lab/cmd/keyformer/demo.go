package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/keyformer/keyformer/keyformer"
)

// demo runs each policy over the same synthetic attention stream: a prompt in which a few tokens
// draw most of the attention (the "key tokens"), then generation. It prints, per policy, which
// prompt positions survive and how much of the key tokens' attention mass the kept cache holds.
func demo(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	prompt := fs.Int("prompt", 96, "prompt tokens")
	budget := fs.Float64("budget", 0.5, "cache budget as a fraction of the prompt")
	gen := fs.Int("gen", 32, "generated tokens")
	seed := fs.Uint64("seed", 1, "seed of the synthetic stream and of the noise")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *prompt < 8 || *prompt > 4096 || *gen < 0 || *gen > 4096 {
		return fmt.Errorf("--prompt must be in [8, 4096] and --gen in [0, 4096]")
	}
	shape := keyformer.Shape{Layers: 4, QueryHeads: 4, KVHeads: 2}
	// Token importance: a heavy-tailed logit bias per position, fixed for the whole run.
	rnd := rand.New(rand.NewPCG(*seed, 0))
	bias := make([]float64, *prompt+*gen)
	for i := range bias {
		bias[i] = rnd.NormFloat64()
		if rnd.IntN(10) == 0 {
			bias[i] += 4
		}
	}
	fmt.Fprintf(out, "synthetic stream: %d prompt tokens, %d generated, budget %.0f%% of the prompt (%d layers x %d heads)\n",
		*prompt, *gen, 100**budget, shape.Layers, shape.QueryHeads)
	fmt.Fprintf(out, "# = prompt token still cached at the end, . = evicted; mass = share of the tokens' attention weight that the cache keeps\n\n")
	for _, p := range []keyformer.Policy{keyformer.PolicyFull, keyformer.PolicyKeyformer, keyformer.PolicyH2O,
		keyformer.PolicyTOVA, keyformer.PolicyStreaming, keyformer.PolicyWindow} {
		cfg := keyformer.DefaultConfig(shape)
		cfg.Policy, cfg.Budget, cfg.NewTokens, cfg.Seed = p, keyformer.Fraction(*budget), *gen, *seed
		kept, mass, evicted, err := demoRun(cfg, bias, *prompt, *gen, *seed)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		var line strings.Builder
		for i := range *prompt {
			if kept[int32(i)] {
				line.WriteByte('#')
			} else {
				line.WriteByte('.')
			}
		}
		fmt.Fprintf(out, "%-9s %s  mass %5.1f%%  evicted %d\n", p, line.String(), 100*mass, evicted)
	}
	return nil
}

// demoRun drives one policy: the prompt in one ubatch, then gen single-token steps, freeing the
// planned cells after every decode. It returns the surviving positions, their share of the
// tokens' attention weight, and the number of evictions.
func demoRun(cfg keyformer.Config, bias []float64, prompt, gen int, seed uint64) (map[int32]bool, float64, int, error) {
	tr, err := keyformer.NewTracker(cfg)
	if err != nil {
		return nil, 0, 0, err
	}
	seq, err := tr.Sequence(0)
	if err != nil {
		return nil, 0, 0, err
	}
	if err := seq.SetPromptLength(prompt); err != nil {
		return nil, 0, 0, err
	}
	rnd := rand.New(rand.NewPCG(seed, 1))
	cellPos := map[int32]int32{} // cells in use -> position
	evicted := 0
	step := func(from, n int) error {
		cells, pos := make([]int32, n), make([]int32, n)
		for i, c := 0, int32(0); i < n; c++ {
			if _, used := cellPos[c]; !used {
				cells[i], pos[i] = c, int32(from+i)
				cellPos[c] = pos[i]
				i++
			}
		}
		if err := seq.AddCells(cells, pos); err != nil {
			return err
		}
		cols := 0
		for c := range cellPos {
			cols = max(cols, int(c)+1)
		}
		for layer := range cfg.Shape.Layers {
			a := keyformer.Attention{Rows: n, Heads: cfg.Shape.QueryHeads, Cols: cols, RowStride: cols, HeadStride: cols * n}
			a.Data = make([]float32, n*a.Heads*cols)
			for r := range n {
				for h := range a.Heads {
					demoRow(a.Data[(h*n+r)*cols:][:cols], cellPos, pos[r], bias, rnd)
				}
			}
			if err := seq.ObserveAttention(layer, a); err != nil {
				return err
			}
		}
		evs, err := seq.Plan(nil)
		if err != nil {
			return err
		}
		for _, e := range evs {
			delete(cellPos, e.Cell)
		}
		evicted += len(evs)
		return seq.Forget(evs)
	}
	if err := step(0, prompt); err != nil {
		return nil, 0, 0, err
	}
	for t := range gen {
		if err := step(prompt+t, 1); err != nil {
			return nil, 0, 0, err
		}
	}
	kept := map[int32]bool{}
	for _, p := range cellPos {
		kept[p] = true
	}
	var mass, total float64
	for p := range int32(prompt + gen) {
		w := math.Exp(bias[p])
		total += w
		if kept[p] {
			mass += w
		}
	}
	return kept, mass / total, evicted, nil
}

// demoRow fills one causal attention row for the query at position q: softmax over the cached
// tokens at or before q of their importance plus noise.
func demoRow(row []float32, cellPos map[int32]int32, q int32, bias []float64, rnd *rand.Rand) {
	var sum float64
	x := make([]float64, len(row))
	for c, p := range cellPos {
		if p <= q {
			x[c] = math.Exp(bias[p] + 0.5*rnd.NormFloat64())
			sum += x[c]
		}
	}
	for c := range row {
		row[c] = float32(x[c] / sum)
	}
}
