package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keyformer/keyformer/bindings/adapter"
	"github.com/keyformer/keyformer/bindings/internal/checkout"
	"github.com/keyformer/keyformer/bindings/lab/generate"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// runFlags are the flags shared by generate and compare.
type runFlags struct {
	model, libDir, promptFile, question string
	maxNew, ctx, ubatch, threads, poll  int
	budget, window                      string
	seed                                uint64
	whole, compact, pack                bool
	observe                             keyformer.Schedule
}

func (f *runFlags) register(fs *flag.FlagSet) {
	f.registerRuntime(fs)
	fs.StringVar(&f.promptFile, "prompt-file", "", "document to read (default: a built-in one)")
	fs.StringVar(&f.question, "question", "", "instruction after the document (default: a built-in question, or none with --prompt-file)")
	fs.IntVar(&f.maxNew, "max-new", 96, "tokens to generate at most")
	fs.IntVar(&f.ctx, "ctx", 0, "KV cells (default: budget + max(n_ubatch, evict-slack), or prompt + max-new for the full cache)")
	fs.StringVar(&f.budget, "budget", "0.5", "KV budget: a fraction of the prompt (0.5, 50%) or a token count (2048)")
	fs.BoolVar(&f.whole, "whole", false, "take the whole prompt with full attention before evicting (the paper's setting; needs --ctx >= prompt)")
	fs.BoolVar(&f.pack, "pack", true, "move the kept cells to the bottom of the cache after the prompt, so that decoding reads only the budget")
	fs.BoolVar(&f.compact, "compact-positions", false, "renumber kept tokens 0..n-1, in one step as positions approach the model's trained context (always on when prompt + max-new exceed it)")
}

// registerRuntime registers the flags of every command that runs the model: the runtime, the
// model, threads, ubatch, and the eviction window and noise seed.
func (f *runFlags) registerRuntime(fs *flag.FlagSet) {
	fs.StringVar(&f.model, "model", checkout.ModelPath(), "GGUF model: a file, or a name ("+checkout.KnownModelNames()+
		") that build/scripts/deps.sh fetches into build/deps/models/ on first use")
	fs.StringVar(&f.libDir, "lib-dir", checkout.LibDir(), "folder of the llama.cpp runtime (libllama, libggml*)")
	fs.IntVar(&f.ubatch, "ubatch", 512, "tokens per ubatch (prompt chunk)")
	fs.IntVar(&f.threads, "threads", 0, "CPU threads (default: all)")
	fs.IntVar(&f.poll, "poll", 0, "ggml threadpool polling level 0..100 (how long idle workers spin)")
	fs.StringVar(&f.window, "window", "0.3", "recent window: a fraction of the budget or a token count")
	fs.Uint64Var(&f.seed, "seed", 0, "noise seed")
	d := keyformer.DefaultConfig(keyformer.Shape{}).Observe
	fs.IntVar(&f.observe.LayerStride, "observe-layer-stride", d.LayerStride, "read the attention of layers 0, k, 2k, ... (0 or 1: every layer)")
	fs.Func("observe-layers", "read the attention of these layers only, e.g. 0,4,8 (overrides --observe-layer-stride)", func(s string) error {
		layers, err := parseCounts(s, "observe-layers", 0)
		f.observe.Layers = layers
		return err
	})
	fs.IntVar(&f.observe.DecodeStride, "observe-decode-stride", d.DecodeStride, "read the attention of every k-th generated token (the prompt always; 0 or 1: every one)")
	fs.IntVar(&f.observe.Slack, "evict-slack", d.Slack, "cells past the budget before evicting, back to the budget at once (the cache then holds budget + max(ubatch, slack))")
	fs.IntVar(&f.observe.PromptRows, "observe-prompt-rows", d.PromptRows, "read the attention of a prompt chunk's last k tokens only (0: every token of the chunk)")
}

// scheduleTag names a schedule other than reading everything at every decode, e.g.
// "-layers3-decode4-slack16-rows64" or "-layers0.8.16" ("" for the default).
func (f *runFlags) scheduleTag() string {
	var tag strings.Builder
	o := f.observe
	switch {
	case len(o.Layers) > 0:
		tag.WriteString("-layers")
		for i, l := range o.Layers {
			if i > 0 {
				tag.WriteByte('.')
			}
			tag.WriteString(strconv.Itoa(l))
		}
	case o.LayerStride > 1:
		fmt.Fprintf(&tag, "-layers%d", o.LayerStride)
	}
	if o.DecodeStride > 1 {
		fmt.Fprintf(&tag, "-decode%d", o.DecodeStride)
	}
	if o.Slack > 1 {
		fmt.Fprintf(&tag, "-slack%d", o.Slack)
	}
	if o.PromptRows > 0 {
		fmt.Fprintf(&tag, "-rows%d", o.PromptRows)
	}
	return tag.String()
}

// compaction returns the adapter options that renumber positions (when on) in one step, as the
// highest position comes within a ubatch and the slack of m's trained context.
func (f *runFlags) compaction(m *llama.Model, ubatch int, on bool) adapter.Options {
	return adapter.Options{CompactPositions: on, CompactAt: int32(max(m.NCtxTrain-f.room(ubatch), 1))}
}

// room returns the cells a cache needs past the budget: one ubatch of ubatch tokens, or the
// eviction slack.
func (f *runFlags) room(ubatch int) int { return max(ubatch, f.observe.Slack) }

// parseSize reads "0.5", "50%" as a fraction and "2048" as a token count.
func parseSize(s, name string) (keyformer.Size, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil {
			return keyformer.Size{}, fmt.Errorf("--%s %q: %w", name, s, err)
		}
		return keyformer.Fraction(v / 100), nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		return keyformer.Tokens(n), nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return keyformer.Size{}, fmt.Errorf("--%s %q is neither a fraction nor a token count", name, s)
	}
	return keyformer.Fraction(v), nil
}

// loaded is the runtime and model of a command.
type loaded struct {
	model  *llama.Model
	prompt []int32
}

// load binds the runtime, loads the model and builds the chat prompt.
func (f *runFlags) load() (*loaded, error) {
	model, err := checkout.ResolveModel(f.model) // a file, or a name (fetched on first use)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (run `make deps`, or pass --lib-dir and --model)", err)
	} else if err != nil {
		return nil, err
	}
	f.model = model
	if _, err := os.Stat(f.libDir); err != nil {
		return nil, fmt.Errorf("%w (run `make deps`, or pass --lib-dir and --model)", err)
	}
	llama.SetLogger(llama.StderrLogger(llama.LogError))
	lib, err := llama.Load(f.libDir)
	if err != nil {
		return nil, err
	}
	m, err := lib.LoadModel(f.model, nil)
	if err != nil {
		return nil, err
	}
	doc, question := generate.SampleDocument, generate.SampleQuestion
	if f.promptFile != "" {
		b, err := os.ReadFile(f.promptFile)
		if err != nil {
			return nil, err
		}
		doc, question = string(b), ""
	}
	if f.question != "" {
		question = f.question
	}
	prompt, err := generate.ChatPrompt(m, doc, question)
	if err != nil {
		return nil, err
	}
	return &loaded{model: m, prompt: prompt}, nil
}

// report is the result of one run, as generate --json prints it.
type report struct {
	Policy          string  `json:"policy"`
	BudgetTokens    int     `json:"budget_tokens"`
	NUbatch         int     `json:"n_ubatch"`
	PromptTokens    int     `json:"prompt_tokens"`
	GeneratedTokens int     `json:"generated_tokens"`
	KVCellsPeak     int     `json:"kv_cells_peak"`
	KVBytesPeak     int     `json:"kv_bytes_peak"`
	Evicted         int     `json:"evicted"`
	PrefillTokPerS  float64 `json:"prefill_tok_per_s"`
	DecodeTokPerS   float64 `json:"decode_tok_per_s"`
	Text            string  `json:"text"`
}

// execution is what one run measured.
type execution struct {
	generate.Result
	budget  int           // the resolved budget in tokens (the context size without eviction)
	observe time.Duration // the adapter's time observing attention while generating
}

// session creates the session for policy (nil: plain llama.cpp without the hook), sized for the
// prompt, and the generation options, which show prompt progress on progress (nil: none).
func (f *runFlags) session(l *loaded, policy *keyformer.Policy, progress io.Writer) (*generate.Session, generate.Options, error) {
	opts := generate.SessionOptions{NUbatch: f.ubatch, Threads: f.threads, NCtx: f.ctx, Poll: f.poll}
	opts.Adapter = f.compaction(l.model, f.ubatch, f.compact || len(l.prompt)+f.maxNew > l.model.NCtxTrain)
	full := len(l.prompt) + f.maxNew
	name := "full cache"
	if policy != nil {
		name = policy.String()
		budget, err := parseSize(f.budget, "budget")
		if err != nil {
			return nil, generate.Options{}, err
		}
		window, err := parseSize(f.window, "window")
		if err != nil {
			return nil, generate.Options{}, err
		}
		cfg := f.config(*policy, budget, window, f.maxNew)
		opts.Config = &cfg
		if opts.NCtx == 0 && *policy != keyformer.PolicyFull && !f.whole {
			b := budget.Tokens
			if b == 0 {
				b = int(budget.Fraction*float64(len(l.prompt)) + 0.5)
			}
			opts.NCtx = min(b+f.room(f.ubatch), full)
		}
	}
	if opts.NCtx == 0 {
		opts.NCtx = full
	}
	s, err := generate.NewSession(l.model, opts)
	if err != nil {
		return nil, generate.Options{}, err
	}
	o := generate.Options{MaxNew: f.maxNew, StopAtEOG: true, Whole: f.whole,
		Pack:     f.pack && policy != nil && *policy != keyformer.PolicyFull,
		Progress: readingProgress(progress, fmt.Sprintf("  %-10s reading the prompt: ", name), f.ubatch)}
	return s, o, nil
}

// config returns the eviction configuration of policy at budget with window, the flags' noise
// seed, and the temperature schedule spread over maxNew generated tokens.
func (f *runFlags) config(policy keyformer.Policy, budget, window keyformer.Size, maxNew int) keyformer.Config {
	cfg := keyformer.DefaultConfig(keyformer.Shape{})
	cfg.Policy, cfg.Budget, cfg.Window, cfg.Seed, cfg.NewTokens = policy, budget, window, f.seed, max(maxNew, 1)
	cfg.Observe = f.observe
	return cfg
}

// execute generates once with policy (nil: plain llama.cpp without the hook).
func (f *runFlags) execute(l *loaded, policy *keyformer.Policy, progress io.Writer) (execution, error) {
	var e execution
	s, o, err := f.session(l, policy, progress)
	if err != nil {
		return e, err
	}
	defer s.Close()
	g, err := generate.Start(s.Ctx, s.Adapter, l.prompt, o)
	if err != nil {
		return e, err
	}
	before := observed(s)
	for more := true; more; {
		if more, err = g.Next(); err != nil {
			return e, err
		}
	}
	e.Result, e.observe = g.Result(), observed(s)-before
	e.budget = s.Ctx.NCtx()
	if s.Adapter != nil && *policy != keyformer.PolicyFull {
		seq, _ := s.Adapter.Tracker().Sequence(0)
		if b, _, ok := seq.Limits(); ok {
			e.budget = b
		}
	}
	return e, nil
}

// observed returns the session's adapter's time observing attention so far.
func observed(s *generate.Session) time.Duration {
	if s.Adapter == nil {
		return 0
	}
	return s.Adapter.Stats().ObserveTime
}

// run generates once and returns the report.
func (f *runFlags) run(l *loaded, policy *keyformer.Policy, progress io.Writer) (report, error) {
	e, err := f.execute(l, policy, progress)
	if err != nil {
		return report{}, err
	}
	r := report{Policy: "none", BudgetTokens: e.budget, NUbatch: f.ubatch, PromptTokens: len(l.prompt),
		GeneratedTokens: len(e.Tokens), KVCellsPeak: e.PeakCells, KVBytesPeak: e.PeakCells * generate.KVBytesPerCell(l.model, generate.KVF16),
		Evicted: e.Evicted, PrefillTokPerS: e.PrefillTokensPerSecond(), DecodeTokPerS: e.DecodeTokensPerSecond(),
		Text: l.model.Detokenize(e.Tokens, true, false)}
	if policy != nil {
		r.Policy = policy.String()
	}
	return r, nil
}

// generateCmd is `keyformer generate`.
func generateCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	var f runFlags
	f.register(fs)
	policyName := fs.String("policy", defaultPolicy(), "eviction policy: "+strings.Join(evictingPolicies(), ", ")+", full, or none (plain llama.cpp, no hook)")
	asJSON := fs.Bool("json", false, "print one JSON object as the last line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var policy *keyformer.Policy
	if *policyName != "none" {
		p, err := keyformer.ParsePolicy(*policyName)
		if err != nil {
			return err
		}
		policy = &p
	}
	l, err := f.load()
	if err != nil {
		return err
	}
	r, err := f.run(l, policy, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, r.Text)
	if *asJSON {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, string(b))
	} else {
		fmt.Fprintf(os.Stderr, "%s: %d prompt + %d generated tokens, KV peak %d cells (%.1f MiB), %d evicted, prefill %.0f tok/s, decode %.1f tok/s\n",
			r.Policy, r.PromptTokens, r.GeneratedTokens, r.KVCellsPeak, float64(r.KVBytesPeak)/(1<<20), r.Evicted, r.PrefillTokPerS, r.DecodeTokPerS)
	}
	return nil
}
