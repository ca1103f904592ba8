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
	"time"

	"github.com/keyformer/keyformer/bindings/generate"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// evalRecord is one line of an evaluation dataset (the format of ../shared/datasets/*.jsonl).
type evalRecord struct {
	ID           string `json:"id"`
	Document     string `json:"document"`
	Instruction  string `json:"instruction"`
	Reference    string `json:"reference"`
	MaxNewTokens int    `json:"max_new_tokens"`
}

// evalRun names one generation of a record: a policy (a keyformer policy, "full" or
// "context-shift") at a budget (a fraction of the prompt, quality mode) or a cache size in cells
// (long-document mode).
type evalRun struct {
	Policy string   `json:"policy"`
	Budget *float64 `json:"budget"`
	Cache  *int     `json:"cache"`
}

// key identifies the run of record id.
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

// evalCmd is `keyformer eval`: greedy generations for every record of a dataset with the full
// cache and every policy x budget (or, with --cache, every policy and llama.cpp's context shift at
// fixed cache sizes), appended to DIR/generations.jsonl as they finish (an interrupted run resumes
// where it stopped), then scored with ROUGE by `python -m keyformer.evaluate score DIR`, which
// writes the tables and the plot. With --json the last line is the scorer's JSON summary.
func evalCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	var f runFlags
	f.registerRuntime(fs)
	data := fs.String("data", "", "dataset (JSONL: id, document, instruction, reference, max_new_tokens); required")
	policyList := fs.String("policies", "keyformer,h2o,tova,streaming,window", "eviction policies to compare")
	budgetList := fs.String("budgets", "0.2,0.3,0.5,0.7,0.9", "KV budgets, fractions of the prompt (quality mode)")
	cacheList := fs.String("cache", "", "KV cache sizes in cells, e.g. 1024,2048: long-document mode (no full cache; llama.cpp's context shift as a baseline)")
	limit := fs.Int("limit", 0, "evaluate the first N records only (0: all)")
	outDir := fs.String("out", "", "output folder (default build/eval/<dataset name>)")
	keep := fs.Int("keep", 4, "tokens llama.cpp's context shift keeps at the start (--cache mode)")
	asJSON := fs.Bool("json", false, "print the scores as one JSON object on the last line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" {
		return errors.New("eval: --data is required")
	}
	policies, err := parsePolicies(*policyList)
	if err != nil {
		return err
	}
	window, err := parseSize(f.window, "window")
	if err != nil {
		return err
	}
	plan := evalPlan{policies: policies, window: window, keep: *keep}
	if *cacheList != "" {
		if plan.caches, err = parseCounts(*cacheList, "cache", 64); err != nil {
			return err
		}
	} else if plan.budgets, err = parseFractions(*budgetList, "budgets"); err != nil {
		return err
	}
	records, err := readRecords(*data, *limit)
	if err != nil {
		return err
	}
	dir := *outDir
	if dir == "" {
		name := strings.TrimSuffix(filepath.Base(*data), ".jsonl")
		if plan.caches != nil {
			name += "-cache"
		}
		dir = filepath.Join(llama.RepoRoot(), "build", "eval", name)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	done, w, err := openGenerations(filepath.Join(dir, "generations.jsonl"))
	if err != nil {
		return err
	}
	defer w.Close()
	l, err := f.load()
	if err != nil {
		return err
	}
	e := &evaluation{f: &f, plan: plan, model: l.model, w: w, done: done,
		progress: newProgress(os.Stderr, records, plan.runs(), done)}
	fmt.Fprintf(os.Stderr, "eval: %d records x %d runs from %s into %s (%d already done)\n",
		len(records), len(plan.runs()), *data, dir, e.progress.done)
	for i, r := range records {
		if err := e.record(i, r); err != nil {
			return fmt.Errorf("eval: record %s: %w", r.ID, err)
		}
	}
	e.progress.finish()
	args = []string{"score", dir}
	if *asJSON {
		args = append(args, "--json")
	}
	return runEvaluate(out, args...)
}

// evalPlan is what to run for each record.
type evalPlan struct {
	policies []keyformer.Policy
	budgets  []float64 // quality mode
	caches   []int     // long-document mode
	window   keyformer.Size
	keep     int // context shift's kept tokens
}

// runs lists the runs of one record: the full cache and every policy x budget, or every policy
// and the context shift at every cache size.
func (p evalPlan) runs() []evalRun {
	var runs []evalRun
	if p.caches == nil {
		runs = append(runs, evalRun{Policy: keyformer.PolicyFull.String()})
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
	done     map[string]bool // record id + run key of the generations already written
	progress *progress
}

// record runs the record's missing runs and appends their generations.
func (e *evaluation) record(i int, r evalRecord) error {
	var missing []evalRun
	for _, run := range e.plan.runs() {
		if !e.done[run.key(r.ID)] {
			missing = append(missing, run)
		}
	}
	e.progress.record(i, r.ID)
	if len(missing) == 0 {
		return nil
	}
	prompt, err := generate.ChatPrompt(e.model, r.Document, r.Instruction)
	if err != nil {
		return err
	}
	if e.plan.caches == nil && len(prompt)+r.MaxNewTokens > e.model.NCtxTrain {
		fmt.Fprintf(os.Stderr, "\neval: skipping record %s: %d prompt + %d new tokens exceed the model's context of %d (a full cache is impossible; use --cache)\n",
			r.ID, len(prompt), r.MaxNewTokens, e.model.NCtxTrain)
		e.progress.add(len(missing))
		return nil
	}
	var prefix *generate.Prefix
	for _, run := range missing {
		var res generate.Result
		if e.plan.caches == nil {
			if prefix == nil {
				so := e.session(len(prompt)+r.MaxNewTokens, e.f.ubatch)
				if prefix, err = generate.ReadPrefix(e.model, prompt, e.config(keyformer.PolicyFull, keyformer.Fraction(1), r), e.plan.policies, so); err != nil {
					return err
				}
			}
			res, err = e.fromPrefix(prefix, run, r)
		} else {
			res, err = e.bounded(prompt, run, r)
		}
		if err != nil {
			return fmt.Errorf("run %s: %w", run.key(r.ID), err)
		}
		g := evalGeneration{ID: r.ID, evalRun: run, PromptTokens: len(prompt), KVCells: res.PeakCells,
			GeneratedTokens: len(res.Tokens), DecodeTokPerS: res.DecodeTokensPerSecond(),
			Text: e.model.Detokenize(res.Tokens, true, false), Reference: r.Reference}
		if err := writeGeneration(e.w, g); err != nil {
			return err
		}
		e.progress.add(1)
	}
	return nil
}

// session returns the options of a session of nCtx cells and ubatch tokens per ubatch, with the
// flags' threads and polling level (no eviction configured).
func (e *evaluation) session(nCtx, ubatch int) generate.SessionOptions {
	return generate.SessionOptions{NCtx: nCtx, NUbatch: ubatch, Threads: e.f.threads, Poll: e.f.poll}
}

// config is the eviction configuration of policy at budget for record r.
func (e *evaluation) config(policy keyformer.Policy, budget keyformer.Size, r evalRecord) keyformer.Config {
	return e.f.config(policy, budget, e.plan.window, r.MaxNewTokens)
}

// fromPrefix generates run (quality mode) from the record's shared prompt reading.
func (e *evaluation) fromPrefix(p *generate.Prefix, run evalRun, r evalRecord) (generate.Result, error) {
	so := e.session(p.Prompt+r.MaxNewTokens, e.f.ubatch)
	if run.Policy != keyformer.PolicyFull.String() {
		pol, err := keyformer.ParsePolicy(run.Policy)
		if err != nil {
			return generate.Result{}, err
		}
		cfg := e.config(pol, keyformer.Fraction(*run.Budget), r)
		so.Config = &cfg
	}
	return p.Generate(e.model, so, generate.Options{MaxNew: r.MaxNewTokens, StopAtEOG: true})
}

// bounded generates run (long-document mode) in a cache of *run.Cache cells: a policy evicts down
// to the cache less one ubatch after every ubatch, with positions compacted; the context shift
// makes room the way llama.cpp does.
func (e *evaluation) bounded(prompt []int32, run evalRun, r evalRecord) (generate.Result, error) {
	ubatch := min(e.f.ubatch, *run.Cache/4)
	so := e.session(*run.Cache, ubatch)
	so.Adapter.CompactPositions = true
	o := generate.Options{MaxNew: r.MaxNewTokens, StopAtEOG: true}
	if run.Policy == contextShift {
		o.ContextShift, o.ShiftKeep = *run.Cache, e.plan.keep
	} else {
		pol, err := keyformer.ParsePolicy(run.Policy)
		if err != nil {
			return generate.Result{}, err
		}
		cfg := e.config(pol, keyformer.Tokens(*run.Cache-ubatch), r)
		so.Config = &cfg
	}
	s, err := generate.NewSession(e.model, so)
	if err != nil {
		return generate.Result{}, err
	}
	defer s.Close()
	return s.Run(prompt, o)
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
		switch {
		case r.ID == "":
			err = errors.New("no id")
		case strings.TrimSpace(r.Document) == "":
			err = errors.New("empty document")
		case r.Reference == "":
			err = errors.New("no reference")
		case r.MaxNewTokens <= 0:
			err = fmt.Errorf("max_new_tokens %d is not positive", r.MaxNewTokens)
		}
		if err != nil {
			return nil, fmt.Errorf("eval: %s:%d: record %q: %w", path, n+1, r.ID, err)
		}
		records = append(records, r)
	}
	if len(records) == 0 {
		return nil, fmt.Errorf("eval: %s holds no records", path)
	}
	return records, nil
}

// openGenerations opens DIR/generations.jsonl for appending and returns the runs it holds. A last
// line cut short by an interrupted run is removed.
func openGenerations(path string) (map[string]bool, *os.File, error) {
	done := map[string]bool{}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	complete := bytes.LastIndexByte(b, '\n') + 1
	sc := bufio.NewScanner(bytes.NewReader(b[:complete]))
	sc.Buffer(nil, 1<<24)
	for n := 1; sc.Scan(); n++ {
		var g evalGeneration
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

// writeGeneration appends one line and syncs it, so that a resumed run finds it.
func writeGeneration(w *os.File, g evalGeneration) error {
	b, err := json.Marshal(g)
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

// progress draws a progress bar with an estimate of the time left on a terminal (a line per
// record elsewhere). The estimate extrapolates from the runs done in this invocation.
type progress struct {
	w        io.Writer
	tty      bool
	total    int
	done     int // runs done, including those a resumed run found
	ran      int // runs done by this invocation
	start    time.Time
	recordNo int
	records  int
	id       string
}

// newProgress starts the progress of running runs for every record, some of them done already.
func newProgress(w *os.File, records []evalRecord, runs []evalRun, done map[string]bool) *progress {
	st, err := w.Stat()
	p := &progress{w: w, tty: err == nil && st.Mode()&os.ModeCharDevice != 0, total: len(records) * len(runs),
		records: len(records), start: time.Now()}
	for _, r := range records {
		for _, run := range runs {
			if done[run.key(r.ID)] {
				p.done++
			}
		}
	}
	return p
}

// record notes that record i (id) starts.
func (p *progress) record(i int, id string) {
	if !p.tty && p.ran > 0 {
		fmt.Fprintln(p.w, p.line())
	}
	p.recordNo, p.id = i+1, id
	if p.tty {
		fmt.Fprint(p.w, "\r"+p.line())
	}
}

// add counts n runs done.
func (p *progress) add(n int) {
	p.done += n
	p.ran += n
	if p.tty {
		fmt.Fprint(p.w, "\r"+p.line())
	}
}

// finish ends the bar.
func (p *progress) finish() {
	fmt.Fprintln(p.w, "\r"+p.line())
}

// line renders the bar.
func (p *progress) line() string {
	const width = 30
	frac := float64(p.done) / float64(max(p.total, 1))
	bar := strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width))
	elapsed := time.Since(p.start)
	eta := "--"
	if p.ran > 0 {
		eta = (time.Duration(float64(elapsed) / float64(p.ran) * float64(p.total-p.done))).Round(time.Second).String()
	}
	return fmt.Sprintf("[%s] %3.0f%% %d/%d runs, record %d/%d %-12s %s elapsed, ETA %s   ",
		bar, 100*frac, p.done, p.total, p.recordNo, p.records, p.id, elapsed.Round(time.Second), eta)
}
