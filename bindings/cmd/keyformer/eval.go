package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/keyformer/keyformer/bindings/adapter"
	"github.com/keyformer/keyformer/bindings/generate"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// evalRecord is one line of an evaluation dataset (the format of ../shared/datasets/*.jsonl): a
// document with an instruction, a reference and a generation length (summaries), or a document
// with a list of questions (question sets).
type evalRecord struct {
	ID           string         `json:"id"`
	Document     string         `json:"document"`
	Instruction  string         `json:"instruction"`
	Reference    string         `json:"reference"`
	MaxNewTokens int            `json:"max_new_tokens"`
	Questions    []evalQuestion `json:"questions"`
}

// evalQuestion is one question of a question-set record: the question (with its lettered options
// for multiple choice), the published reference answer, and for multiple choice the correct letter.
type evalQuestion struct {
	ID          string `json:"id"`
	Instruction string `json:"instruction"`
	Reference   string `json:"reference"`
	Answer      string `json:"answer"`
}

// units returns the ids a record's results are written under: its questions', or its own.
func (r evalRecord) units() []string {
	if r.Questions == nil {
		return []string{r.ID}
	}
	ids := make([]string, len(r.Questions))
	for i, q := range r.Questions {
		ids[i] = q.ID
	}
	return ids
}

// evalRun names one generation of a record: a policy (a keyformer policy, "full" or
// "context-shift") at a budget (a fraction of the prompt, quality mode) or a cache size in cells
// (long-document mode). The full cache has neither.
type evalRun struct {
	Policy string   `json:"policy"`
	Budget *float64 `json:"budget"`
	Cache  *int     `json:"cache"`
}

// key identifies the run of a record or question id.
func (r evalRun) key(id string) string {
	b, c := "-", "-"
	if r.Budget != nil {
		b = strconv.FormatFloat(*r.Budget, 'g', -1, 64)
	}
	if r.Cache != nil {
		c = strconv.Itoa(*r.Cache)
	}
	return id + "|" + r.Policy + "/" + b + "/" + c
}

// full reports whether the run is the full cache.
func (r evalRun) full() bool { return r.Policy == keyformer.PolicyFull.String() }

// evalGeneration is one line of DIR/generations.jsonl, what keyformer.evaluate scores.
type evalGeneration struct {
	ID string `json:"id"`
	evalRun
	PromptTokens    int     `json:"prompt_tokens"`
	KVCells         int     `json:"kv_cells"`
	GeneratedTokens int     `json:"generated_tokens"`
	DecodeTokPerS   float64 `json:"decode_tok_per_s"`
	Text            string  `json:"text"`
	Reference       string  `json:"reference"`
}

// contextShift names llama.cpp's own context shift, the long-document baseline.
const contextShift = "context-shift"

// The metrics of `keyformer eval`, and the file each writes its results to (one JSON line per
// record or question and run) and the keyformer.evaluate command that scores them.
const (
	metricROUGE     = "rouge"     // greedy generations scored with ROUGE
	metricFidelity  = "fidelity"  // teacher-forced agreement with the full cache
	metricQuestions = "questions" // question sets (chosen by the data, not by --metric)
)

var metricFiles = map[string]string{
	metricROUGE: "generations.jsonl", metricFidelity: "fidelity.jsonl", metricQuestions: "answers.jsonl",
}

var metricScorers = map[string]string{
	metricROUGE: "score", metricFidelity: "fidelity", metricQuestions: "questions",
}

// evalCmd is `keyformer eval`: for every record of a dataset, the full cache and every policy x
// budget (or, with --cache, every policy and llama.cpp's context shift at fixed cache sizes),
// results appended to DIR as they finish (an interrupted run resumes where it stopped), then
// scored by `python -m keyformer.evaluate`, which writes the tables and the plot. With --json the
// last line is the scorer's JSON summary.
//
// --metric rouge (the default) scores greedy generations with ROUGE (DIR/generations.jsonl);
// --metric fidelity forces every run through the full cache's greedy tokens and through the
// reference, and compares next-token distributions (DIR/fidelity.jsonl). A question-set file
// (records with "questions") reads each document once per run and answers every question from
// that compressed cache (DIR/answers.jsonl).
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
	f                                               runFlags
	data, policies, budgets, caches, outDir, metric string
	limit, keep                                     int
}

// register registers the flags; tune gives other defaults afterwards.
func (o *evalOptions) register(fs *flag.FlagSet) {
	o.f.registerRuntime(fs)
	fs.StringVar(&o.data, "data", "", "dataset (JSONL: id, document, instruction, reference, max_new_tokens; or id, document, questions); required")
	fs.StringVar(&o.metric, "metric", metricROUGE, "rouge: ROUGE of greedy generations; fidelity: teacher-forced agreement with the full cache (top-1, KL, NLL)")
	fs.StringVar(&o.policies, "policies", "keyformer,h2o,tova,streaming,window", "eviction policies to compare")
	fs.StringVar(&o.budgets, "budgets", "0.2,0.3,0.5,0.7,0.9", "KV budgets, fractions of the prompt (quality mode)")
	fs.StringVar(&o.caches, "cache", "", "KV cache sizes in cells, e.g. 1024,2048: long-document mode (llama.cpp's context shift as a baseline)")
	fs.IntVar(&o.limit, "limit", 0, "evaluate the first N records only (0: all)")
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
	policies, err := parsePolicies(o.policies)
	if err != nil {
		return "", err
	}
	window, err := parseSize(o.f.window, "window")
	if err != nil {
		return "", err
	}
	plan := evalPlan{policies: policies, window: window, keep: o.keep}
	if o.caches != "" {
		if plan.caches, err = parseCounts(o.caches, "cache", 64); err != nil {
			return "", err
		}
	} else if plan.budgets, err = parseFractions(o.budgets, "budgets"); err != nil {
		return "", err
	}
	records, err := readRecords(o.data, o.limit)
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
		name += o.f.scheduleTag()
		model := strings.TrimSuffix(filepath.Base(o.f.model), ".gguf")
		dir = filepath.Join(llama.RepoRoot(), "build", "eval", model, name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	done, w, err := openResults(filepath.Join(dir, metricFiles[metric]))
	if err != nil {
		return "", err
	}
	defer w.Close()
	l, err := o.f.load()
	if err != nil {
		return "", err
	}
	e := &evaluation{f: &o.f, plan: plan, model: l.model, w: w, done: done, probe: probe,
		set:      strings.TrimSuffix(strings.TrimSuffix(filepath.Base(o.data), ".jsonl"), ".dev"),
		progress: newProgress(os.Stderr, records, plan.runs(), done)}
	if err := e.openSparsity(dir); err != nil {
		return "", err
	}
	defer e.closeSparsity()
	fmt.Fprintf(os.Stderr, "eval: %s: %d records x %d runs from %s into %s (%d already done)\n",
		metric, len(records), len(plan.runs()), o.data, dir, e.progress.done)
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
	policies    []keyformer.Policy
	budgets     []float64 // quality mode
	caches      []int     // long-document mode
	window      keyformer.Size
	keep        int  // context shift's kept tokens
	fullInCache bool // long-document mode also runs the full cache where the document fits the model
}

// runs lists the runs of one record: the full cache and every policy x budget, or every policy
// and the context shift at every cache size (and the full cache, with fullInCache).
func (p evalPlan) runs() []evalRun {
	var runs []evalRun
	if p.caches == nil || p.fullInCache {
		runs = append(runs, evalRun{Policy: keyformer.PolicyFull.String()})
	}
	if p.caches == nil {
		for _, pol := range p.policies {
			for _, b := range p.budgets {
				runs = append(runs, evalRun{Policy: pol.String(), Budget: &b})
			}
		}
		return runs
	}
	for _, c := range p.caches {
		for _, pol := range p.policies {
			runs = append(runs, evalRun{Policy: pol.String(), Cache: &c})
		}
		runs = append(runs, evalRun{Policy: contextShift, Cache: &c})
	}
	return runs
}

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
// prompt.
func (e *evaluation) summaryPrompt(r evalRecord) ([]evalRun, []int32, error) {
	runs := e.missing(r)
	if len(runs) == 0 {
		return nil, nil, nil
	}
	prompt, err := generate.ChatPrompt(e.model, r.Document, r.Instruction)
	return runs, prompt, err
}

// rouge runs the record's missing greedy generations and appends them.
func (e *evaluation) rouge(r evalRecord) error {
	runs, prompt, err := e.summaryPrompt(r)
	if len(runs) == 0 || err != nil {
		return err
	}
	if e.plan.caches == nil && !e.fits(r, len(prompt)+r.MaxNewTokens, runs) {
		return nil
	}
	rd := e.reading(prompt, r.MaxNewTokens, r.MaxNewTokens)
	for _, run := range runs {
		res, err := rd.continuation(run, nil, generate.Options{MaxNew: r.MaxNewTokens, StopAtEOG: true})
		if err != nil {
			return fmt.Errorf("run %s: %w", run.key(r.ID), err)
		}
		g := evalGeneration{ID: r.ID, evalRun: run, PromptTokens: len(prompt), KVCells: res.PeakCells,
			GeneratedTokens: len(res.Tokens), DecodeTokPerS: res.DecodeTokensPerSecond(),
			Text: e.model.Detokenize(res.Tokens, true, false), Reference: r.Reference}
		if err := e.write(g); err != nil {
			return err
		}
	}
	return nil
}

// reading runs the continuations of one prompt: the full cache and quality-mode runs continue one
// reading of the whole prompt, made once and scored by every policy (generate.ReadPrefix);
// long-document runs each read the prompt bounded, the way they generate (generate.ReadBounded),
// and that reading is kept for the run's further continuations.
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
	if run.Cache == nil {
		if rd.whole == nil {
			var observers []keyformer.Policy
			if rd.e.plan.caches == nil {
				observers = rd.e.plan.policies
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
// holds the prompt and the room after it, at the run's budget; long-document runs in exactly
// *run.Cache cells, evicting down to the cache less one ubatch after every ubatch with positions
// compacted, or making room the way llama.cpp's context shift does.
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
	if run.full() {
		if rd.probe != nil { // the probe measures every layer of every token, whatever the schedule
			cfg := rd.fullConfig()
			cfg.Observe = keyformer.Schedule{}
			so.Config, so.Adapter.Probe = &cfg, rd.probe
		}
		return so, o, nil
	}
	pol, err := keyformer.ParsePolicy(run.Policy)
	if err != nil {
		return so, o, err
	}
	cfg := rd.e.f.config(pol, budget, rd.e.plan.window, rd.newTokens)
	so.Config = &cfg
	return so, o, nil
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

// readRecords reads the first limit records (0: all) of a dataset, checking every field.
func readRecords(path string, limit int) ([]evalRecord, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	var records []evalRecord
	for n, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if limit > 0 && len(records) == limit {
			break
		}
		var r evalRecord
		dec := json.NewDecoder(bytes.NewReader(line))
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("eval: %s:%d: %w", path, n+1, err)
		}
		if err := r.check(); err != nil {
			return nil, fmt.Errorf("eval: %s:%d: record %q: %w", path, n+1, r.ID, err)
		}
		if len(records) > 0 && (r.Questions == nil) != (records[0].Questions == nil) {
			return nil, fmt.Errorf("eval: %s:%d: record %q: a question set and a summary set mixed in one file", path, n+1, r.ID)
		}
		records = append(records, r)
	}
	if len(records) == 0 {
		return nil, fmt.Errorf("eval: %s holds no records", path)
	}
	return records, nil
}

// check reports what is missing from a record.
func (r evalRecord) check() error {
	switch {
	case r.ID == "":
		return errors.New("no id")
	case strings.TrimSpace(r.Document) == "":
		return errors.New("empty document")
	case r.Questions != nil:
		if len(r.Questions) == 0 {
			return errors.New("an empty list of questions")
		}
		for i, q := range r.Questions {
			switch {
			case q.ID == "":
				return fmt.Errorf("question %d: no id", i)
			case strings.TrimSpace(q.Instruction) == "":
				return fmt.Errorf("question %s: no instruction", q.ID)
			case q.Reference == "":
				return fmt.Errorf("question %s: no reference", q.ID)
			case q.Answer != "" && !strings.Contains("ABCD", q.Answer) || len(q.Answer) > 1:
				return fmt.Errorf("question %s: answer %q is not a letter A to D", q.ID, q.Answer)
			}
		}
		return nil
	case r.Reference == "":
		return errors.New("no reference")
	case r.MaxNewTokens <= 0:
		return fmt.Errorf("max_new_tokens %d is not positive", r.MaxNewTokens)
	}
	return nil
}

// openResults opens a results file (generations.jsonl and the like) for appending and returns
// the runs it holds, by id and run. A last line cut short by an interrupted run is removed.
func openResults(path string) (map[string]bool, *os.File, error) {
	done := map[string]bool{}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	complete := bytes.LastIndexByte(b, '\n') + 1
	sc := bufio.NewScanner(bytes.NewReader(b[:complete]))
	sc.Buffer(nil, 1<<24)
	for n := 1; sc.Scan(); n++ {
		var g struct {
			ID string `json:"id"`
			evalRun
		}
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			return nil, nil, fmt.Errorf("eval: %s:%d: %w (delete the file to start over)", path, n, err)
		}
		done[g.key(g.ID)] = true
	}
	w, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		if err = w.Truncate(int64(complete)); err == nil {
			_, err = w.Seek(int64(complete), io.SeekStart)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("eval: %w", err)
	}
	return done, w, nil
}

// writeResult appends one line and syncs it, so that a resumed run finds it.
func writeResult(w *os.File, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	return w.Sync()
}

// parsePolicies reads a comma-separated list of evicting policies.
func parsePolicies(s string) ([]keyformer.Policy, error) {
	var out []keyformer.Policy
	for _, name := range strings.Split(s, ",") {
		p, err := keyformer.ParsePolicy(strings.TrimSpace(name))
		if err != nil {
			return nil, fmt.Errorf("--policies: %w", err)
		}
		if p == keyformer.PolicyFull {
			return nil, errors.New("--policies: full always runs in quality mode; list evicting policies only")
		}
		out = append(out, p)
	}
	return out, nil
}
