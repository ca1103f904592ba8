package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyformer/keyformer/bindings/internal/checkout"
	"github.com/keyformer/keyformer/bindings/lab/generate"
	"github.com/keyformer/keyformer/keyformer"
)

// evalCmd is `keyformer eval`: for every record of a dataset, the full cache and every policy x
// budget (or, with --cache, every policy and llama.cpp's context shift at fixed cache sizes),
// results appended to DIR as they finish (an interrupted run resumes where it stopped), then
// scored by `python -m keyformer_eval`, which writes the tables and the plot. With --json the
// last line is the scorer's JSON summary.
//
// --metric rouge (the default) scores greedy generations with ROUGE (DIR/generations.jsonl);
// --metric fidelity forces every run through the full cache's greedy tokens and through the
// reference, and compares next-token distributions (DIR/fidelity.jsonl). A question-set file
// (records with "questions") reads each document once per run and answers every question from
// that compressed cache (DIR/answers.jsonl).
//
// Every run reads the document the way the product generates (--reading bounded: in ubatches,
// evicting after each, with the flags' schedule and slack) unless --reading whole asks for the
// paper's setting (the whole document with full attention, then one eviction). The instruction of
// a summary record is read after the document is compressed, as a question is, unless
// --instruction-in-prompt puts it inside the compressed prompt. Beside the policies, llama.cpp's
// own quantized KV caches (kv-q8_0, kv-q4_0: the whole prompt, nothing evicted) run as peers.
func evalCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	var o evalOptions
	o.register(fs)
	asJSON := fs.Bool("json", false, "print the scores as one JSON object on the last line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := o.run(nil)
	if err != nil {
		return err
	}
	args = []string{metricScorers[o.metric], dir}
	if *asJSON {
		args = append(args, "--json")
	}
	return runEvaluate(out, args...)
}

// evalOptions are the flags of eval (and tune).
type evalOptions struct {
	f                                                               runFlags
	data, policies, budgets, caches, outDir, metric, reading, tasks string
	limit, keep                                                     int
	instructionInPrompt                                             bool
}

// register registers the flags; tune gives other defaults afterwards.
func (o *evalOptions) register(fs *flag.FlagSet) {
	o.f.registerRuntime(fs)
	fs.StringVar(&o.data, "data", "", "dataset (JSONL: id, document, instruction, reference, max_new_tokens; or id, document, questions); required")
	fs.StringVar(&o.metric, "metric", metricROUGE, "rouge: ROUGE of greedy generations; fidelity: teacher-forced agreement with the full cache (top-1, KL, NLL)")
	fs.StringVar(&o.policies, "policies", strings.Join(append(evictingPolicies(), peerNames()...), ","),
		"eviction policies and llama.cpp's quantized KV caches (kv-q8_0, kv-q4_0; budget mode only) to compare with the full cache")
	fs.StringVar(&o.reading, "reading", readingBounded, "bounded: read each document in ubatches, evicting after each, as generation does; "+
		"whole: the whole document with full attention, then one eviction (the paper's setting; not with --cache)")
	fs.BoolVar(&o.instructionInPrompt, "instruction-in-prompt", false, "summaries: read the instruction inside the prompt that is compressed "+
		"(by default the document is compressed first and the instruction read after it, as a question is)")
	fs.StringVar(&o.budgets, "budgets", "0.2,0.3,0.5,0.7,0.9", "KV budgets, fractions of the prompt (quality mode)")
	fs.StringVar(&o.caches, "cache", "", "KV cache sizes in cells, e.g. 1024,2048: long-document mode (llama.cpp's context shift as a baseline)")
	fs.IntVar(&o.limit, "limit", 0, "evaluate the first N records only (0: all)")
	fs.StringVar(&o.tasks, "tasks", "", "question sets: ask only the questions of these tasks, e.g. niah_multikey,vt (their \"task\" field)")
	fs.StringVar(&o.outDir, "out", "", "output folder (default build/eval/<model>/<dataset name>[-fidelity][-cache][-<schedule>])")
	fs.IntVar(&o.keep, "keep", 4, "tokens llama.cpp's context shift keeps at the start (--cache mode)")
}

// run runs the evaluation the options describe (with probe, if non-nil, fed the full cache's
// attention while it generates the teacher) and returns the folder of its results.
func (o *evalOptions) run(probe *keyformer.Concentration) (string, error) {
	if o.data == "" {
		return "", errors.New("eval: --data is required")
	}
	if o.metric != metricROUGE && o.metric != metricFidelity {
		return "", fmt.Errorf("eval: --metric %q: want rouge or fidelity", o.metric)
	}
	policies, peers, err := parsePolicies(o.policies)
	if err != nil {
		return "", err
	}
	window, err := parseSize(o.f.window, "window")
	if err != nil {
		return "", err
	}
	if o.reading != readingBounded && o.reading != readingWhole {
		return "", fmt.Errorf("eval: --reading %q: want %s or %s", o.reading, readingBounded, readingWhole)
	}
	plan := evalPlan{policies: policies, peers: peers, window: window, keep: o.keep,
		setting: evalSetting{Reading: o.reading, InstructionInPrompt: o.instructionInPrompt}}
	if o.caches != "" {
		if plan.caches, err = parseCounts(o.caches, "cache", 64); err != nil {
			return "", err
		}
		if o.reading == readingWhole {
			return "", errors.New("eval: --reading whole needs a cache that holds the document: not with --cache")
		}
		plan.peers = nil // a quantized cache holds the whole document: it has no fixed size to compare at
	} else if plan.budgets, err = parseFractions(o.budgets, "budgets"); err != nil {
		return "", err
	}
	var tasks []string
	if o.tasks != "" {
		tasks = strings.Split(o.tasks, ",")
	}
	records, err := readRecords(o.data, o.limit, tasks)
	if err != nil {
		return "", err
	}
	metric := o.metric
	if records[0].Questions != nil {
		if o.metric == metricFidelity {
			return "", fmt.Errorf("eval: %s is a question set: it is scored by its answers, not --metric fidelity", o.data)
		}
		metric = metricQuestions
	}
	o.metric = metric
	plan.fullInCache = metric != metricROUGE
	dir := o.outDir
	if dir == "" {
		name := strings.TrimSuffix(filepath.Base(o.data), ".jsonl")
		if metric == metricFidelity {
			name += "-fidelity"
		}
		if plan.caches != nil {
			name += "-cache"
		}
		name += o.f.scheduleTag() + plan.setting.tag()
		model := strings.TrimSuffix(filepath.Base(o.f.model), ".gguf")
		dir = filepath.Join(checkout.Root(), "build", "eval", model, name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	done, full, w, err := openResults(filepath.Join(dir, metricFiles[metric]), plan.setting)
	if err != nil {
		return "", err
	}
	defer w.Close()
	l, err := o.f.load()
	if err != nil {
		return "", err
	}
	e := &evaluation{f: &o.f, plan: plan, model: l.model, w: w, done: done, fullAnswers: full, probe: probe,
		set:      strings.TrimSuffix(strings.TrimSuffix(filepath.Base(o.data), ".jsonl"), ".dev"),
		progress: newProgress(os.Stderr, records, plan.runs(), done)}
	if err := e.openSparsity(dir); err != nil {
		return "", err
	}
	defer e.closeSparsity()
	fmt.Fprintf(os.Stderr, "eval: %s: %d records x %d runs from %s into %s (%d already done; %s)\n",
		metric, len(records), len(plan.runs()), o.data, dir, e.progress.done, plan.setting)
	for i, r := range records {
		e.progress.record(i, r.ID)
		var err error
		switch metric {
		case metricROUGE:
			err = e.rouge(r)
		case metricFidelity:
			err = e.fidelity(r)
		default:
			err = e.questions(r)
		}
		if err != nil {
			return "", fmt.Errorf("eval: record %s: %w", r.ID, err)
		}
	}
	e.progress.finish()
	return dir, nil
}

// evalPlan is what to run for each record.
type evalPlan struct {
	policies    []string           // policies with their ranking options (parsePolicy)
	peers       []generate.KVCache // llama.cpp's quantized caches (quality mode)
	setting     evalSetting
	budgets     []float64 // quality mode
	caches      []int     // long-document mode
	window      keyformer.Size
	keep        int  // context shift's kept tokens
	fullInCache bool // long-document mode also runs the full cache where the document fits the model
}

// runs lists the runs of one record: the full cache, every policy x budget and every peer, or
// every policy and the context shift at every cache size (and the full cache, with fullInCache).
func (p evalPlan) runs() []evalRun {
	var runs []evalRun
	if p.caches == nil || p.fullInCache {
		runs = append(runs, evalRun{Policy: keyformer.PolicyFull.String()})
	}
	if p.caches == nil {
		for _, pol := range p.policies {
			for _, b := range p.budgets {
				runs = append(runs, evalRun{Policy: pol, Budget: &b})
			}
		}
		for _, kv := range p.peers {
			runs = append(runs, evalRun{Policy: peerName(kv)})
		}
		return runs
	}
	for _, c := range p.caches {
		for _, pol := range p.policies {
			runs = append(runs, evalRun{Policy: pol, Cache: &c})
		}
		runs = append(runs, evalRun{Policy: contextShift, Cache: &c})
	}
	return runs
}

// parsePolicies reads a comma-separated list of evicting policies and peers.
func parsePolicies(s string) ([]string, []generate.KVCache, error) {
	var out []string
	var peers []generate.KVCache
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		if kv, ok := parsePeer(name); ok {
			peers = append(peers, kv)
			continue
		}
		p, err := parsePolicy(name)
		if err != nil {
			return nil, nil, fmt.Errorf("--policies: %w (or a peer: %s)", err, strings.Join(peerNames(), ", "))
		}
		if p.policy == keyformer.PolicyFull {
			return nil, nil, errors.New("--policies: full always runs in quality mode; list evicting policies only")
		}
		out = append(out, name)
	}
	return out, peers, nil
}

// The peers: llama.cpp's quantized KV caches, the memory saving a llama.cpp user has without
// eviction. A peer run is plain llama.cpp with the cache of that type (flash attention on, as
// llama.cpp needs for a quantized V cache), holding the whole prompt.
var peers = []generate.KVCache{generate.KVQ8_0, generate.KVQ4_0}

// peerName is a peer's name as a policy of the sweep ("kv-q8_0").
func peerName(kv generate.KVCache) string { return "kv-" + kv.String() }

// peerNames lists the peers' names.
func peerNames() []string {
	var out []string
	for _, kv := range peers {
		out = append(out, peerName(kv))
	}
	return out
}

// parsePeer returns the peer named name, if it is one.
func parsePeer(name string) (generate.KVCache, bool) {
	for _, kv := range peers {
		if peerName(kv) == name {
			return kv, true
		}
	}
	return generate.KVF16, false
}

// How a run reads the document (--reading).
const (
	readingBounded = "bounded" // in ubatches, evicting after each: as generation does
	readingWhole   = "whole"   // whole with full attention, then one eviction: the paper's setting
)

// evalSetting is how an evaluation reads its records, written on every result line (all lines of
// a results file share it).
type evalSetting struct {
	Reading             string `json:"reading"`               // readingBounded or readingWhole
	InstructionInPrompt bool   `json:"instruction_in_prompt"` // summaries: the instruction inside the compressed prompt
}

// tag names a setting other than the default in an output folder's name, e.g. "-whole".
func (s evalSetting) tag() string {
	var tag string
	if s.Reading != readingBounded {
		tag += "-" + s.Reading
	}
	if s.InstructionInPrompt {
		tag += "-instruction-in-prompt"
	}
	return tag
}

// String describes the setting for the progress log.
func (s evalSetting) String() string {
	where := "question after the document"
	if s.InstructionInPrompt {
		where = "instruction inside the compressed prompt"
	}
	return s.Reading + " reading, " + where
}
