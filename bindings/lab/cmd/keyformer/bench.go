package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/keyformer/keyformer/bindings/internal/checkout"
	"github.com/keyformer/keyformer/bindings/lab/generate"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// bench is `keyformer bench`: prefill and decode speed, KV memory and the hook's overhead at
// several context lengths, for plain llama.cpp and for Keyformer at several budgets.
//
//	keyformer bench [--context 1024,2048,4096,8192] [--gen 256] [--budgets 1.0,0.5,0.25]
//	                [--repeats 1] [--out build/bench] [--plot=true] [--json] [generate's flags]
//
// For each context C the prompt is the built-in document (or --prompt-file), repeated and cut to
// C - gen tokens, so that prompt + generated tokens = C. The configurations are "none" (plain
// llama.cpp, no eval callback) and one per budget b of --budgets: b = 1 is the hook observing
// attention with policy full (it never evicts: the hook's overhead), b < 1 is Keyformer keeping
// the fraction b of the prompt in the product's default mode (the prompt read in ubatches with
// evictions after each, a cache of budget + n_ubatch cells, packed before decoding unless
// --pack=false). Each configuration reads the prompt in turn (prefill tokens/s); then all of them
// decode, one token each in turn, --gen tokens, so that the machine's noise falls on all alike
// (decode tokens/s = 1 / median step). --repeats N repeats the whole measurement of a context
// with fresh contexts and reports the median of every quantity. --context 4096 --gen 64
// --budgets 1.0,0.5 measures the hook's overhead at one context alone.
//
// The measured speedup of a configuration is none's decode step / its decode step. Beside it is
// the ideal speedup if decoding were bound by memory traffic alone: (W + KV) / (W + b·KV), with W
// the model's weight bytes (llama_model_size) and KV = C × the bytes of one f16 KV cell.
//
// Progress goes to progress (stderr). out gets a table, and with --json a last line holding one
// JSON object, the same one written to DIR/bench.json (--out DIR):
//
//	{"model": path, "machine": "linux/amd64, <cpu>, 2 CPUs, 2 threads", "gen": int,
//	 "repeats": int, "n_ubatch": int, "threads": int, "weight_bytes": int, "kv_bytes_per_cell": int,
//	 "rows": [{"context": int, "config": "none" | "full" | "keyformer 0.5", "budget": float | null,
//	           "prompt_tokens": int, "prefill_tok_per_s": float, "decode_tok_per_s": float,
//	           "decode_ms_per_token": float, "kv_cells": int (allocated, n_ctx), "kv_bytes": int
//	           (allocated: kv_cells × kv_bytes_per_cell), "kv_cells_peak": int, "kv_cells_end": int
//	           (held after decoding), "observe_ms_per_token": float | null (the adapter reading and
//	           scoring attention; null for none), "speedup": float, "ideal_speedup": float | null
//	           (null for none)}, ... one per context and configuration, contexts in order],
//	 "hook_overhead": {"1024": float, ...} (full's decode step / none's, per context; empty
//	                   without budget 1 in --budgets)}
//
// The plot DIR/bench.png is made by `python -m keyformer_eval plot-bench` (see plotBench);
// without a working plotting environment bench warns on progress and still succeeds.
func bench(args []string, out, progress io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var f runFlags
	f.register(fs)
	contextList := fs.String("context", "1024,2048,4096,8192", "comma-separated context lengths: prompt + generated tokens")
	gen := fs.Int("gen", 256, "tokens generated at each context (the decode speed is 1 / the median step)")
	budgetList := fs.String("budgets", "1.0,0.5,0.25", "comma-separated KV budgets, fractions of the prompt in (0, 1]: 1 is the hook observing with policy full, below 1 Keyformer")
	streamingList := fs.String("streaming", "0.5", "comma-separated budgets below 1 at which StreamingLLM is also measured (\"\": none)")
	repeats := fs.Int("repeats", 1, "measure every context this many times and report medians")
	outDir := fs.String("out", filepath.Join(checkout.Root(), "build", "bench"), "folder for bench.json and bench.png")
	plot := fs.Bool("plot", true, "plot DIR/bench.png with `python -m keyformer_eval plot-bench` (a warning if that fails)")
	asJSON := fs.Bool("json", false, "print the report as one JSON object on the last line")
	throughput := fs.Bool("throughput", false, "instead: throughput at a fixed KV memory, as many sequences as fit in --cells decoding "+
		"together, plain llama.cpp against Keyformer at each budget below 1 of --budgets (the first context only)")
	cells := fs.Int("cells", 0, "--throughput: KV cells all sequences share (default: 4 x the first context)")
	kvUnified := fs.Bool("kv-unified", false, "--throughput: one KV cache every sequence shares (llama.cpp's kv_unified), "+
		"instead of a stream per sequence, in which a token attends to its own sequence's cells only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	var err error
	fs.Visit(func(fl *flag.Flag) {
		if use, ok := map[string]string{"max-new": "--gen", "budget": "--budgets", "ctx": "--context"}[fl.Name]; ok && err == nil {
			err = fmt.Errorf("bench: --%s does not apply (use %s)", fl.Name, use)
		}
	})
	if err != nil {
		return err
	}
	if *gen < 2 {
		return fmt.Errorf("bench: --gen %d: at least 2 tokens are needed for one decode step", *gen)
	}
	if *repeats < 1 {
		return fmt.Errorf("bench: --repeats %d: must be at least 1", *repeats)
	}
	// The prompt is context - gen tokens: at least one.
	contexts, err := parseCounts(*contextList, "context", *gen+1)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	configs, err := parseBudgets(*budgetList, *streamingList, f.observe)
	if err != nil {
		return err
	}

	f.maxNew = *gen
	l, err := f.load()
	if err != nil {
		return err
	}
	prompt, err := benchPrompt(&f, l.model, slices.Max(contexts)-*gen)
	if err != nil {
		return err
	}
	threads := f.threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	machine := fmt.Sprintf("%s/%s, %s%d CPUs, %d threads", runtime.GOOS, runtime.GOARCH, cpuName(), runtime.NumCPU(), threads)
	if *throughput {
		l.prompt = prompt[:contexts[0]-*gen]
		var budgets []float64
		for _, c := range configs {
			if c.policy != nil && *c.policy == keyformer.PolicyKeyformer {
				budgets = append(budgets, c.budget)
			}
		}
		if *cells == 0 {
			*cells = 4 * contexts[0]
		}
		return measureThroughput(&f, l, *cells, *gen, budgets, *kvUnified, machine, out, progress, *asJSON)
	}
	rep := benchReport{Model: f.model, Gen: *gen, Repeats: *repeats, NUbatch: f.ubatch, Threads: threads,
		Machine:     machine,
		WeightBytes: l.model.Size(), KVBytesPerCell: generate.KVBytesPerCell(l.model, generate.KVF16), HookOverhead: map[string]float64{}}
	for _, c := range contexts {
		l.prompt = prompt[:c-*gen]
		samples := make([][]benchSample, len(configs)) // [config][repeat]
		for r := range *repeats {
			tag := fmt.Sprintf("context %d", c)
			if *repeats > 1 {
				tag += fmt.Sprintf(", repeat %d/%d", r+1, *repeats)
			}
			got, err := measureContext(&f, l, configs, tag, progress)
			if err != nil {
				return fmt.Errorf("bench: %s: %w", tag, err)
			}
			for i := range configs {
				samples[i] = append(samples[i], got[i])
			}
		}
		rep.addContext(c, len(l.prompt), configs, samples)
	}

	rep.printTable(out)
	b, jsonPath, err := rep.save(*outDir)
	if err != nil {
		return err
	}
	wrote := "wrote " + jsonPath + " (no plot: --plot=false)"
	if *plot {
		wrote = "wrote " + jsonPath + plotBench(progress, jsonPath, filepath.Join(*outDir, "bench.png"))
	}
	fmt.Fprintln(out, wrote)
	if *asJSON {
		fmt.Fprintln(out, string(b))
	}
	return nil
}

// benchConfig is one configuration bench measures at every context.
type benchConfig struct {
	name    string
	policy  *keyformer.Policy // nil: plain llama.cpp, no hook
	budget  float64           // the fraction of the prompt kept (0 for none)
	observe keyformer.Schedule
}

// parseBudgets reads --budgets and --streaming (see parseFractions) and returns the configurations
// to measure: none first, then per budget in the order given the hook observing with the
// schedule (full; and full all, observing everything, when the schedule reads less) or Keyformer,
// then StreamingLLM at each of its budgets.
func parseBudgets(list, streaming string, observe keyformer.Schedule) ([]benchConfig, error) {
	budgets, err := parseFractions(list, "budgets")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var stream []float64
	if streaming != "" {
		if stream, err = parseFractions(streaming, "streaming"); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	everything := observe.LayerStride <= 1 && len(observe.Layers) == 0 && observe.DecodeStride <= 1
	configs := []benchConfig{{name: "none"}}
	for _, b := range budgets {
		if b == 1 {
			configs = append(configs, benchConfig{name: "full", policy: ptr(keyformer.PolicyFull), budget: 1, observe: observe})
			if !everything {
				configs = append(configs, benchConfig{name: "full all", policy: ptr(keyformer.PolicyFull), budget: 1,
					observe: keyformer.Schedule{Slack: observe.Slack}})
			}
		} else {
			configs = append(configs, benchConfig{name: fmt.Sprintf("keyformer %g", b), policy: ptr(keyformer.PolicyKeyformer), budget: b, observe: observe})
		}
	}
	for _, b := range stream {
		if b == 1 {
			return nil, fmt.Errorf("bench: --streaming %q: StreamingLLM at budget 1 evicts nothing", streaming)
		}
		configs = append(configs, benchConfig{name: fmt.Sprintf("streaming %g", b), policy: ptr(keyformer.PolicyStreaming), budget: b, observe: observe})
	}
	return configs, nil
}

// benchPrompt returns at least n tokens of chat prompt: the document (the built-in one, or
// --prompt-file) repeated, and the question.
func benchPrompt(f *runFlags, m *llama.Model, n int) ([]int32, error) {
	doc, question := generate.SampleDocument, generate.SampleQuestion
	if f.promptFile != "" {
		b, err := os.ReadFile(f.promptFile)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		doc, question = string(b), ""
	}
	if f.question != "" {
		question = f.question
	}
	one, err := generate.ChatPrompt(m, doc, question)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	prompt, err := generate.ChatPrompt(m, strings.Repeat(doc+"\n\n", n/max(len(one), 1)+2), question)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if len(prompt) < n {
		return nil, fmt.Errorf("bench: the repeated document gives %d tokens, %d needed", len(prompt), n)
	}
	return prompt, nil
}
