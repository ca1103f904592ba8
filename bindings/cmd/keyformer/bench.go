package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyformer/keyformer/bindings/generate"
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
// --budgets 1.0,0.5 is the single-context measurement of the former `keyformer bench-hook`.
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
// The plot DIR/bench.png is made by `python -m keyformer.evaluate plot-bench` (see runEvaluate);
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
	outDir := fs.String("out", filepath.Join(llama.RepoRoot(), "build", "bench"), "folder for bench.json and bench.png")
	plot := fs.Bool("plot", true, "plot DIR/bench.png with `python -m keyformer.evaluate plot-bench` (a warning if that fails)")
	asJSON := fs.Bool("json", false, "print the report as one JSON object on the last line")
	throughput := fs.Bool("throughput", false, "instead: throughput at a fixed KV memory, as many sequences as fit in --cells decoding "+
		"together, plain llama.cpp against Keyformer at each budget below 1 of --budgets (the first context only)")
	cells := fs.Int("cells", 0, "--throughput: KV cells all sequences share (default: 4 x the first context)")
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
		return measureThroughput(&f, l, *cells, *gen, budgets, machine, out, progress, *asJSON)
	}
	rep := benchReport{Model: f.model, Gen: *gen, Repeats: *repeats, NUbatch: f.ubatch, Threads: threads,
		Machine:     machine,
		WeightBytes: l.model.Size(), KVBytesPerCell: generate.KVBytesPerCell(l.model), HookOverhead: map[string]float64{}}
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
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	jsonPath, pngPath := filepath.Join(*outDir, "bench.json"), filepath.Join(*outDir, "bench.png")
	if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	wrote := "wrote " + jsonPath
	switch {
	case !*plot:
		wrote += " (no plot: --plot=false)"
	default:
		if err := runEvaluate(progress, "plot-bench", jsonPath, pngPath); err != nil {
			fmt.Fprintf(progress, "keyformer bench: warning: no plot: %v\n", err)
			wrote += " (no plot: see the warning on stderr)"
		} else {
			wrote += " and " + pngPath
		}
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

// benchSample is what one configuration measured at one context in one repeat.
type benchSample struct {
	prefill   float64 // prompt tokens/s
	step      float64 // median decode step, seconds
	observe   float64 // the adapter's time observing attention per decode step, seconds
	nCtx      int     // KV cells allocated
	peak, end int     // KV cells held at most, and after decoding
}

// measureContext creates a session per configuration for l.prompt, reads the prompt in each in
// turn, then decodes f.maxNew tokens in all of them, one token each in turn.
func measureContext(f *runFlags, l *loaded, configs []benchConfig, tag string, progress io.Writer) ([]benchSample, error) {
	type running struct {
		s      *generate.Session
		g      *generate.Generation
		before time.Duration
	}
	runs := make([]*running, len(configs))
	defer func() {
		for _, r := range runs {
			if r != nil {
				r.s.Close()
			}
		}
	}()
	observe := f.observe
	defer func() { f.observe = observe }()
	for i, c := range configs {
		f.observe = c.observe
		f.budget = "1.0"
		if c.policy != nil && c.budget < 1 {
			f.budget = strconv.FormatFloat(c.budget, 'f', -1, 64)
		}
		fmt.Fprintf(progress, "bench: %s: %s reads %d prompt tokens\n", tag, c.name, len(l.prompt))
		s, o, err := f.session(l, c.policy, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		o.Progress = readingProgress(progress, "  ", 0)
		r := &running{s: s}
		runs[i] = r
		o.StopAtEOG = false
		if r.g, err = generate.Start(s.Ctx, s.Adapter, l.prompt, o); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		r.before = observed(s)
	}
	fmt.Fprintf(progress, "bench: %s: %d configurations decode %d tokens in turns\n", tag, len(configs), f.maxNew)
	decoded := newProgressLine(progress)
	for step, more := 1, true; more; step++ {
		more = false
		for i, r := range runs {
			m, err := r.g.Next()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", configs[i].name, err)
			}
			more = more || m
		}
		if step%16 == 0 || !more {
			text := fmt.Sprintf("  decoded %d/%d tokens", min(step, f.maxNew), f.maxNew)
			if more {
				decoded.update(text)
			} else {
				decoded.end(text)
			}
		}
	}
	samples := make([]benchSample, len(runs))
	for i, r := range runs {
		res := r.g.Result()
		end, err := trackerLen(r.s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", configs[i].name, err)
		}
		samples[i] = benchSample{prefill: res.PrefillTokensPerSecond(), step: res.MedianStep().Seconds(),
			observe: (observed(r.s) - r.before).Seconds() / float64(max(len(res.Steps), 1)),
			nCtx:    r.s.Ctx.NCtx(), peak: res.PeakCells, end: end}
	}
	return samples, nil
}

// benchReport is bench's result, as --json prints it and bench.json holds it.
type benchReport struct {
	Model          string             `json:"model"`
	Machine        string             `json:"machine"`
	Gen            int                `json:"gen"`
	Repeats        int                `json:"repeats"`
	NUbatch        int                `json:"n_ubatch"`
	Threads        int                `json:"threads"`
	WeightBytes    int64              `json:"weight_bytes"`
	KVBytesPerCell int                `json:"kv_bytes_per_cell"`
	Rows           []benchRow         `json:"rows"`
	HookOverhead   map[string]float64 `json:"hook_overhead"`
	// HookOverheadAll is the overhead of observing every layer at every decode, when the schedule
	// reads less (the "full all" rows).
	HookOverheadAll map[string]float64 `json:"hook_overhead_all,omitempty"`
}

// benchRow is one configuration at one context: medians over the repeats.
type benchRow struct {
	Context           int      `json:"context"`
	Config            string   `json:"config"`
	Budget            *float64 `json:"budget"`
	PromptTokens      int      `json:"prompt_tokens"`
	PrefillTokPerS    float64  `json:"prefill_tok_per_s"`
	DecodeTokPerS     float64  `json:"decode_tok_per_s"`
	DecodeMsPerToken  float64  `json:"decode_ms_per_token"`
	KVCells           int      `json:"kv_cells"`
	KVBytes           int64    `json:"kv_bytes"`
	KVCellsPeak       int      `json:"kv_cells_peak"`
	KVCellsEnd        int      `json:"kv_cells_end"`
	ObserveMsPerToken *float64 `json:"observe_ms_per_token"`
	Speedup           float64  `json:"speedup"`
	IdealSpeedup      *float64 `json:"ideal_speedup"`
}

// addContext adds the rows of context c (samples[config][repeat], configs[0] being none) and its
// hook overhead.
func (rep *benchReport) addContext(c, promptTokens int, configs []benchConfig, samples [][]benchSample) {
	med := func(i int, get func(benchSample) float64) float64 {
		v := make([]float64, len(samples[i]))
		for r, s := range samples[i] {
			v[r] = get(s)
		}
		return median(v)
	}
	noneStep := med(0, func(s benchSample) float64 { return s.step })
	kv := float64(c) * float64(rep.KVBytesPerCell)
	for i, cfg := range configs {
		step := med(i, func(s benchSample) float64 { return s.step })
		row := benchRow{Context: c, Config: cfg.name, PromptTokens: promptTokens,
			PrefillTokPerS:   round(med(i, func(s benchSample) float64 { return s.prefill })),
			DecodeTokPerS:    round(1 / step),
			DecodeMsPerToken: round(1000 * step),
			KVCells:          samples[i][0].nCtx,
			KVBytes:          int64(samples[i][0].nCtx) * int64(rep.KVBytesPerCell),
			KVCellsPeak:      int(med(i, func(s benchSample) float64 { return float64(s.peak) })),
			KVCellsEnd:       int(med(i, func(s benchSample) float64 { return float64(s.end) })),
			Speedup:          round(noneStep / step)}
		if cfg.policy != nil {
			w := float64(rep.WeightBytes)
			row.Budget = ptr(cfg.budget)
			row.IdealSpeedup = ptr(round((w + kv) / (w + cfg.budget*kv)))
			row.ObserveMsPerToken = ptr(round(1000 * med(i, func(s benchSample) float64 { return s.observe })))
			switch cfg.name {
			case "full":
				rep.HookOverhead[strconv.Itoa(c)] = round(step / noneStep)
			case "full all":
				if rep.HookOverheadAll == nil {
					rep.HookOverheadAll = map[string]float64{}
				}
				rep.HookOverheadAll[strconv.Itoa(c)] = round(step / noneStep)
			}
		}
		rep.Rows = append(rep.Rows, row)
	}
}

// printTable writes the report as a table, then the hook overhead per context.
func (rep *benchReport) printTable(out io.Writer) {
	fmt.Fprintf(out, "model %s: %.1f MiB of weights, %.1f KiB of f16 KV per token; %s, n_ubatch %d\n",
		rep.Model, float64(rep.WeightBytes)/(1<<20), float64(rep.KVBytesPerCell)/(1<<10), rep.Machine, rep.NUbatch)
	fmt.Fprintf(out, "prompt = context - %d tokens, then %d tokens generated by all configurations in turns; medians over %d repeat(s)\n",
		rep.Gen, rep.Gen, rep.Repeats)
	fmt.Fprintf(out, "ideal = (weights + KV(context)) / (weights + budget x KV(context)): the speedup if decoding only moved memory\n\n")
	fmt.Fprintf(out, "%7s  %-15s %8s %8s %9s %8s %8s %8s %8s %6s %7s\n", "context", "config", "prefill", "decode",
		"ms/token", "cells", "cells", "KV MiB", "speedup", "ideal", "speedup")
	fmt.Fprintf(out, "%7s  %-15s %8s %8s %9s %8s %8s %8s %8s %6s %7s\n", "", "", "tok/s", "tok/s", "", "peak", "end",
		"alloc", "", "", "/ideal")
	for i, r := range rep.Rows {
		if i > 0 && r.Context != rep.Rows[i-1].Context {
			fmt.Fprintln(out)
		}
		ideal, ratio := "", ""
		if r.IdealSpeedup != nil {
			ideal, ratio = fmt.Sprintf("%.3f", *r.IdealSpeedup), fmt.Sprintf("%.3f", r.Speedup / *r.IdealSpeedup)
		}
		fmt.Fprintf(out, "%7d  %-15s %8.0f %8.1f %9.2f %8d %8d %8.1f %8.3f %6s %7s\n", r.Context, r.Config,
			r.PrefillTokPerS, r.DecodeTokPerS, r.DecodeMsPerToken, r.KVCellsPeak, r.KVCellsEnd,
			float64(r.KVBytes)/(1<<20), r.Speedup, ideal, ratio)
	}
	if len(rep.HookOverhead) == 0 {
		fmt.Fprintln(out, "\nhook overhead: not measured (no budget 1 in --budgets)")
		return
	}
	fmt.Fprintln(out, "\nhook overhead (full's decode step / none's; observing = the adapter reading and scoring attention):")
	for _, r := range rep.Rows {
		over := rep.HookOverhead
		if r.Config == "full all" {
			over = rep.HookOverheadAll
		} else if r.Config != "full" {
			continue
		}
		fmt.Fprintf(out, "  %7d %-8s: x%.3f, observing %.2f ms/token\n", r.Context, r.Config, over[strconv.Itoa(r.Context)],
			*r.ObserveMsPerToken)
	}
}

// median returns the median of v (the mean of the middle two for an even length).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// cpuName returns the CPU's model name from /proc/cpuinfo followed by ", ", or "" where that is
// not available.
func cpuName() string {
	fh, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v) + ", "
		}
	}
	return ""
}

// trackerLen returns the cells sequence 0 holds (the context size without an adapter).
func trackerLen(s *generate.Session) (int, error) {
	if s.Adapter == nil {
		return int(s.Ctx.SeqPosMax(0)) + 1, nil
	}
	seq, err := s.Adapter.Tracker().Sequence(0)
	if err != nil {
		return 0, err
	}
	return seq.Len(), nil
}

// ptr returns a pointer to a copy of v.
func ptr[T any](v T) *T { return &v }

// round rounds v to 3 decimals (for JSON).
func round(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
