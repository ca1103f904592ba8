//go:build linux || darwin

package generate

import (
	"fmt"
	"time"

	"github.com/keyformer/keyformer/bindings/adapter"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// Prefix is a prompt read once with full attention while several policies scored it: the common
// start of generations that differ only in their policy and budget, in the paper's setting (the
// whole prompt goes in, then the cache is brought down to the budget and generation begins).
// Reading the prompt once instead of once per policy and budget is what makes a sweep affordable.
type Prefix struct {
	Prompt  int           // prompt tokens
	First   int32         // the greedy token after the prompt
	Prefill time.Duration // time to read the prompt
	state   []byte        // llama.cpp's state of the sequence
	scores  map[keyformer.Policy][]byte
}

// ReadPrefix reads prompt whole into a fresh session of m (so.NCtx cells must hold it; so.Config is
// ignored), with a tracker of base's configuration under each of policies observing it, and keeps
// llama.cpp's state and each tracker's state from before its first plan (so that the budget
// resolves when a generation restores it).
func ReadPrefix(m *llama.Model, prompt []int32, base keyformer.Config, policies []keyformer.Policy, so SessionOptions) (*Prefix, error) {
	cfg := base
	cfg.Policy = keyformer.PolicyFull
	so.Config = &cfg
	s, err := NewSession(m, so)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	shape := s.Adapter.Tracker().Config().Shape
	observers := make([]*keyformer.Tracker, len(policies))
	for i, p := range policies {
		c := base
		c.Policy, c.Shape = p, shape
		if observers[i], err = keyformer.NewTracker(c); err != nil {
			return nil, fmt.Errorf("generate: prefix: policy %s: %w", p, err)
		}
		seq, err := observers[i].Sequence(adapter.DefaultSequence)
		if err == nil {
			err = seq.SetPromptLength(len(prompt))
		}
		if err != nil {
			return nil, fmt.Errorf("generate: prefix: policy %s: %w", p, err)
		}
	}
	if err := s.Adapter.SetObservers(observers...); err != nil {
		return nil, fmt.Errorf("generate: prefix: %w", err)
	}
	g, err := Start(s.Ctx, s.Adapter, prompt, Options{Seq: adapter.DefaultSequence, Whole: true})
	if err != nil {
		return nil, err
	}
	p := &Prefix{Prompt: len(prompt), First: llama.Argmax(s.Ctx.Logits()), Prefill: g.Result().Prefill,
		scores: map[keyformer.Policy][]byte{}}
	if p.state, err = s.Ctx.SeqState(adapter.DefaultSequence); err != nil {
		return nil, fmt.Errorf("generate: prefix: %w", err)
	}
	for i, tr := range observers {
		seq, err := tr.Sequence(adapter.DefaultSequence)
		if err == nil {
			p.scores[policies[i]], err = seq.MarshalBinary()
		}
		if err != nil {
			return nil, fmt.Errorf("generate: prefix: policy %s: %w", policies[i], err)
		}
	}
	return p, nil
}

// Generate continues the prefix in a fresh session of m configured by so: so.Config nil is the
// full cache (plain llama.cpp), else its policy must be one ReadPrefix scored. It restores the
// prompt's state, brings the cache to the configuration's budget, and generates greedily from
// First (o.Seq is ignored). The result's PeakCells counts the cells held while generating.
func (p *Prefix) Generate(m *llama.Model, so SessionOptions, o Options) (Result, error) {
	var scores []byte
	if so.Config != nil {
		var ok bool
		if scores, ok = p.scores[so.Config.Policy]; !ok {
			return Result{}, fmt.Errorf("generate: the prefix was not scored for policy %s", so.Config.Policy)
		}
	}
	s, err := NewSession(m, so)
	if err != nil {
		return Result{}, err
	}
	defer s.Close()
	o.Seq = adapter.DefaultSequence
	g := &Generation{c: s.Ctx, ad: s.Adapter, o: o, res: Result{PromptTokens: p.Prompt, Prefill: p.Prefill}, first: p.First}
	if err := s.Ctx.SetSeqState(o.Seq, p.state); err != nil {
		return Result{}, fmt.Errorf("generate: prefix: %w", err)
	}
	if s.Adapter != nil {
		if err := s.Adapter.RestoreSequence(o.Seq, scores); err != nil {
			return Result{}, fmt.Errorf("generate: prefix: %w", err)
		}
		if g.res.Evicted, err = s.Adapter.Apply(o.Seq); err != nil {
			return Result{}, fmt.Errorf("generate: prefix: %w", err)
		}
	} else {
		g.held = p.Prompt
	}
	g.start = time.Now()
	return g.finish()
}
