package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/keyformer/keyformer/bindings/lab/generate"
	"github.com/keyformer/keyformer/keyformer"
)

// sequencesThatFit returns how many sequences of prompt + gen tokens a cache of cells holds, and
// the cells each takes: with the full prompt each (plain), or, at budget tokens, each holding at
// most budget + max(slack, 1) cells while decoding and budget + ubatch while reading its prompt.
// In a unified cache the sequences share the cells, and only one reads its prompt at a time; with
// a stream per sequence each stream holds the most its sequence ever holds, rounded up to 256 as
// llama.cpp rounds it.
func sequencesThatFit(cells, prompt, gen, budget, ubatch, slack int, unified bool) (n, perSeq int) {
	switch {
	case budget == 0:
		perSeq = prompt + gen
	case unified:
		perSeq = budget + max(slack, 1)
		n = cells / perSeq
		for n > 0 && (n-1)*budget+budget+ubatch > cells {
			n--
		}
		return n, perSeq
	default:
		perSeq = budget + max(slack+1, ubatch)
	}
	if !unified {
		perSeq = (perSeq + 255) / 256 * 256
	}
	return cells / perSeq, perSeq
}

// cacheLayout names a cache layout as the report does, and describes it for the table's header.
func cacheLayout(unified bool) (name, description string) {
	if unified {
		return "unified", "one unified cache that every sequence shares"
	}
	return "per-stream", "a KV stream per sequence"
}

// measureThroughput runs plain llama.cpp, then Keyformer at each budget, each with as many
// sequences of l.prompt as fit in cells, and writes the table (and with asJSON the report).
func measureThroughput(f *runFlags, l *loaded, cells, gen int, budgets []float64, unified bool, machine string, out, progress io.Writer, asJSON bool) error {
	layout, description := cacheLayout(unified)
	rep := throughputReport{Model: f.model, Machine: machine, Layout: layout, Cells: cells,
		PromptTokens: len(l.prompt), Gen: gen, NUbatch: f.ubatch}
	configs := []benchConfig{{name: "none"}}
	for _, b := range budgets {
		configs = append(configs, benchConfig{name: fmt.Sprintf("keyformer %g", b), policy: ptr(keyformer.PolicyKeyformer), budget: b})
	}
	for _, c := range configs {
		budget := 0
		if c.policy != nil {
			budget = int(c.budget*float64(len(l.prompt)) + 0.5)
		}
		n, perSeq := sequencesThatFit(cells, len(l.prompt), gen, budget, f.ubatch, f.observe.Slack, unified)
		if n == 0 {
			return fmt.Errorf("bench: throughput: %s: not one sequence of %d cells fits in %d", c.name, perSeq, cells)
		}
		fmt.Fprintf(progress, "bench: throughput: %s: %d sequences of %d cells in %d cells (%s) read %d prompt tokens each\n",
			c.name, n, perSeq, cells, rep.Layout, len(l.prompt))
		nCtx := cells
		if !unified {
			nCtx = n * perSeq
		}
		so := generate.SessionOptions{NCtx: nCtx, NUbatch: max(f.ubatch, n), Threads: f.threads, Poll: f.poll,
			Sequences: n, KVUnified: unified}
		if c.policy != nil {
			window, err := parseSize(f.window, "window")
			if err != nil {
				return err
			}
			cfg := f.config(*c.policy, keyformer.Fraction(c.budget), window, gen)
			so.Config = &cfg
		}
		s, err := generate.NewSession(l.model, so)
		if err != nil {
			return fmt.Errorf("bench: throughput: %s: %w", c.name, err)
		}
		prompts := make([][]int32, n)
		for i := range prompts {
			prompts[i] = l.prompt
		}
		res, err := generate.RunBatch(s, prompts, gen)
		s.Close()
		if err != nil {
			return fmt.Errorf("bench: throughput: %s: %w", c.name, err)
		}
		row := throughputRow{Config: c.name, Sequences: n, CellsPerSeq: perSeq,
			PrefillTokPerS: round(float64(n*len(l.prompt)) / res.Prefill.Seconds()),
			TokPerS:        round(res.TokensPerSecond()), SeqMsPerToken: round(1000 * res.MedianStep().Seconds()),
			PeakCells: res.PeakCells, Evicted: res.Evicted}
		if c.policy != nil {
			row.Budget = ptr(c.budget)
		}
		rep.Rows = append(rep.Rows, row)
	}
	if len(rep.Rows) > 1 && rep.Rows[0].TokPerS > 0 {
		rep.ThroughputRatio = ptr(round(rep.Rows[1].TokPerS / rep.Rows[0].TokPerS))
	}
	fmt.Fprintf(out, "model %s; %s; %d KV cells in %s, prompts of %d tokens, %d generated each\n\n",
		rep.Model, rep.Machine, cells, description, len(l.prompt), gen)
	fmt.Fprintf(out, "%-15s %9s %9s %9s %9s %12s %9s\n", "config", "sequences", "cells/seq", "prefill", "decode", "ms/token", "cells")
	fmt.Fprintf(out, "%-15s %9s %9s %9s %9s %12s %9s\n", "", "", "", "tok/s", "tok/s", "per sequence", "peak")
	for _, r := range rep.Rows {
		fmt.Fprintf(out, "%-15s %9d %9d %9.0f %9.1f %12.2f %9d\n", r.Config, r.Sequences, r.CellsPerSeq, r.PrefillTokPerS,
			r.TokPerS, r.SeqMsPerToken, r.PeakCells)
	}
	if rep.ThroughputRatio != nil {
		fmt.Fprintf(out, "\nthroughput ratio (%s over none, tokens/s): x%.3f\n", rep.Rows[1].Config, *rep.ThroughputRatio)
	}
	if asJSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		fmt.Fprintln(out, string(b))
	}
	return nil
}
