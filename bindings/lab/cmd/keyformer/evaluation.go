package main

// What `keyformer eval` measures: for each record, the runs of its plan, each continuing one reading
// of the record's prompt, and their results appended as they finish.

import (
	"fmt"
	"os"

	"github.com/keyformer/keyformer/bindings/adapter"
	"github.com/keyformer/keyformer/bindings/lab/generate"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// contextShift names llama.cpp's own context shift, the long-document baseline.
const contextShift = "context-shift"

// evaluation runs the plan record by record.
type evaluation struct {
	f        *runFlags
	plan     evalPlan
	model    *llama.Model
	w        *os.File
	done     map[string]bool // record or question id + run key of the results already written
	progress *progress
	probe    *keyformer.Concentration // fed the teacher's attention (tune), or nil
	set      string                   // the dataset's name
	// fullAnswers are the full cache's answers by question id, which the oracle's runs score by
	fullAnswers map[string]string
	// sparsity is DIR/sparsity.jsonl, where tune writes the probe's measurements, and
	// sparsityDone the records it holds
	sparsity     *os.File
	sparsityDone map[string]bool
}

// missing returns the runs that have not been written for some unit of r.
func (e *evaluation) missing(r evalRecord) []evalRun {
	var out []evalRun
	for _, run := range e.plan.runs() {
		for _, id := range r.units() {
			if !e.done[run.key(id)] {
				out = append(out, run)
				break
			}
		}
	}
	return out
}

// fits reports whether a full cache of n cells is possible for the model; if not, it says so and
// counts the record's runs as done.
func (e *evaluation) fits(r evalRecord, n int, runs []evalRun) bool {
	if n <= e.model.NCtxTrain {
		return true
	}
	fmt.Fprintf(os.Stderr, "\neval: skipping record %s: %d tokens exceed the model's context of %d (a full cache is impossible; use --cache)\n",
		r.ID, n, e.model.NCtxTrain)
	e.progress.add(len(runs) * len(r.units()))
	return false
}

// summaryPrompt returns the runs of summary record r that are missing and, if any are, its chat
// prompt: the part that is read and compressed (the document), and the part read after it (the
// instruction), or all of it compressed and nothing after with --instruction-in-prompt.
func (e *evaluation) summaryPrompt(r evalRecord) (runs []evalRun, doc, instruction []int32, err error) {
	if runs = e.missing(r); len(runs) == 0 {
		return nil, nil, nil, nil
	}
	if e.plan.setting.InstructionInPrompt {
		doc, err = generate.ChatPrompt(e.model, r.Document, r.Instruction)
	} else {
		doc, instruction, err = generate.ChatPromptParts(e.model, r.Document, r.Instruction)
	}
	return runs, doc, instruction, err
}

// kvBytes is the KV cache of cells cells at run's cache type, in bytes.
func (e *evaluation) kvBytes(run evalRun, cells int) int64 {
	kv, peer := parsePeer(run.Policy)
	if spec, err := parsePolicy(run.Policy); !peer && err == nil {
		kv = spec.kv
	}
	return int64(cells) * int64(generate.KVBytesPerCell(e.model, kv))
}

// rouge runs the record's missing greedy generations and appends them.
func (e *evaluation) rouge(r evalRecord) error {
	runs, doc, instruction, err := e.summaryPrompt(r)
	if len(runs) == 0 || err != nil {
		return err
	}
	room := len(instruction) + r.MaxNewTokens
	if e.plan.caches == nil && !e.fits(r, len(doc)+room, runs) {
		return nil
	}
	rd := e.reading(doc, room, r.MaxNewTokens)
	for _, run := range runs {
		res, err := rd.continuation(run, instruction, generate.Options{MaxNew: r.MaxNewTokens, StopAtEOG: true})
		if err != nil {
			return fmt.Errorf("run %s: %w", run.key(r.ID), err)
		}
		g := evalGeneration{ID: r.ID, evalRun: run, evalSetting: e.plan.setting, PromptTokens: len(doc) + len(instruction),
			KVCells: res.PeakCells, KVBytes: e.kvBytes(run, res.PeakCells),
			GeneratedTokens: len(res.Tokens), DecodeTokPerS: res.DecodeTokensPerSecond(),
			Text: e.model.Detokenize(res.Tokens, true, false), Reference: r.Reference}
		if err := e.write(g); err != nil {
			return err
		}
	}
	return nil
}

// reading runs the continuations of one prompt. The full cache continues one reading of the whole
// prompt (generate.ReadPrefix), which with --reading whole every quality-mode policy shares too,
// each scoring it as it is read. Every other run reads the prompt its own way, as it generates
// (generate.ReadBounded: in chunks, evicting after each; a peer in its quantized cache), and
// that reading is kept for the run's further continuations.
type reading struct {
	e         *evaluation
	prompt    []int32
	room      int // cells after the prompt: the most tokens a continuation adds
	newTokens int // the planned number of new tokens (the temperature schedule's T)
	whole     *generate.Prefix
	bounded   *generate.Prefix
	boundedOf evalRun
	// probe, when set, sees the attention of the full cache's continuations (which then run with
	// the hook observing, policy full, instead of plain llama.cpp)
	probe adapter.Probe
}

// reading starts the continuations of prompt.
func (e *evaluation) reading(prompt []int32, room, newTokens int) *reading {
	return &reading{e: e, prompt: prompt, room: room, newTokens: newTokens}
}

// continuation continues the prompt under run: it reads suffix after it (nil: none) and then
// generates as o says.
func (rd *reading) continuation(run evalRun, suffix []int32, o generate.Options) (generate.Result, error) {
	so, base, err := rd.setup(run)
	if err != nil {
		return generate.Result{}, err
	}
	o.ContextShift, o.ShiftKeep = base.ContextShift, base.ShiftKeep
	p, err := rd.prefix(run, so, base)
	if err != nil {
		return generate.Result{}, err
	}
	return p.Continue(rd.e.model, so, suffix, o)
}

// prefix returns the prompt as read for run.
func (rd *reading) prefix(run evalRun, so generate.SessionOptions, o generate.Options) (*generate.Prefix, error) {
	var err error
	_, peer := parsePeer(run.Policy)
	plan := rd.e.plan
	if run.full() || run.Cache == nil && !peer && plan.setting.Reading == readingWhole {
		if rd.whole == nil {
			var observers []keyformer.Policy
			if plan.caches == nil && plan.setting.Reading == readingWhole {
				for _, name := range plan.policies {
					spec, err := parsePolicy(name)
					if err != nil {
						return nil, err
					}
					if spec != (policySpec{policy: spec.policy}) || !spec.policy.ReadsAttention() {
						return nil, fmt.Errorf("policy %s: --reading whole scores one reading of the document for the policies that read attention, without +options", name)
					}
					observers = append(observers, spec.policy)
				}
			}
			rd.whole, err = generate.ReadPrefix(rd.e.model, rd.prompt, rd.fullConfig(), observers,
				rd.e.session(len(rd.prompt)+rd.room, rd.e.f.ubatch))
		}
		return rd.whole, err
	}
	if rd.bounded == nil || rd.boundedOf.key("") != run.key("") {
		rd.boundedOf = run
		rd.bounded, err = generate.ReadBounded(rd.e.model, rd.prompt, so, o)
	}
	return rd.bounded, err
}

// setup returns the session and generation options of run: quality-mode runs in a cache that
// holds the prompt and the room after it, at the run's budget (a peer with its cache type and no
// eviction); long-document runs in exactly *run.Cache cells, evicting down to the cache less one
// ubatch after every ubatch with positions compacted, or making room the way llama.cpp's context
// shift does.
func (rd *reading) setup(run evalRun) (generate.SessionOptions, generate.Options, error) {
	var o generate.Options
	var budget keyformer.Size
	so := rd.e.session(len(rd.prompt)+rd.room, rd.e.f.ubatch)
	if run.Cache != nil {
		ubatch := min(rd.e.f.ubatch, *run.Cache/4)
		so = rd.e.session(*run.Cache, ubatch)
		so.Adapter = rd.e.f.compaction(rd.e.model, ubatch, true)
		budget = keyformer.Tokens(*run.Cache - rd.e.f.room(ubatch))
		if run.Policy == contextShift {
			o.ContextShift, o.ShiftKeep = *run.Cache, rd.e.plan.keep
			return so, o, nil
		}
	} else if run.Budget != nil {
		budget = keyformer.Fraction(*run.Budget)
	}
	if kv, ok := parsePeer(run.Policy); ok {
		so.KV = kv
		return so, o, nil
	}
	if run.full() {
		if rd.probe != nil { // the probe measures every layer of every token, whatever the schedule
			cfg := rd.fullConfig()
			cfg.Observe = keyformer.Schedule{}
			so.Config, so.Adapter.Probe = &cfg, rd.probe
		}
		return so, o, nil
	}
	spec, err := parsePolicy(run.Policy)
	if err != nil {
		return so, o, err
	}
	cfg := rd.e.f.config(spec.policy, budget, rd.e.plan.window, rd.newTokens)
	cfg.Ranking, so.KV = spec.ranking, spec.kv
	so.Config = &cfg
	o.Whole = spec.oracle // the oracle scores the whole document, then evicts once
	if spec.repeat {      // the cache holds the repeated chunk too while a chunk is read
		o.Repeat, err = generate.RepeatPrompt(rd.e.model)
		so.NCtx += so.NUbatch + len(o.Repeat)
	}
	return so, o, err
}

// fullConfig is the configuration of policy full (the hook observing, nothing evicted) for the
// prompt's continuations.
func (rd *reading) fullConfig() keyformer.Config {
	return rd.e.f.config(keyformer.PolicyFull, keyformer.Fraction(1), rd.e.plan.window, rd.newTokens)
}

// session returns the options of a session of nCtx cells and ubatch tokens per ubatch, with the
// flags' threads and polling level (no eviction configured).
func (e *evaluation) session(nCtx, ubatch int) generate.SessionOptions {
	return generate.SessionOptions{NCtx: nCtx, NUbatch: ubatch, Threads: e.f.threads, Poll: e.f.poll}
}

// write appends one result line and counts it done.
func (e *evaluation) write(v any) error {
	if err := writeResult(e.w, v); err != nil {
		return err
	}
	e.progress.add(1)
	return nil
}
