//go:build linux || darwin

package generate

import (
	"fmt"
	"slices"
	"time"

	"github.com/keyformer/keyformer/bindings/adapter"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// Prefix is a prompt read once with full attention while several policies scored it: the common
// start of generations that differ only in their policy and budget, in the paper's setting (the
// whole prompt goes in, then the cache is brought down to the budget and generation begins).
// Reading the prompt once instead of once per policy and budget is what makes a sweep affordable.
//
// A prefix can also be one policy's bounded reading (ReadBounded): the prompt read in chunks with
// evictions, saved once, so that several continuations (questions about one document) start from
// the same compressed cache.
type Prefix struct {
	Prompt      int           // prompt tokens
	First       int32         // the greedy token after the prompt
	Prefill     time.Duration // time to read the prompt
	firstLogits []float32     // the logits that picked First
	cells       int           // cells the sequence holds in state
	peakCells   int           // the most cells the sequence held while the prompt was read
	state       []byte        // llama.cpp's state of the sequence
	scores      map[keyformer.Policy][]byte
}

// ReadPrefix reads prompt whole into a fresh session of m (so.NCtx cells must hold it; so.Config is
// ignored), with a tracker of base's configuration under each of policies observing it, and keeps
// llama.cpp's state and each tracker's state from before its first plan (so that the budget
// resolves when a generation restores it); it is also scored for policy full (the hook observing,
// nothing evicted).
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
	return save(s, g, append(observers, s.Adapter.Tracker()))
}

// ReadBounded reads prompt the way a generation in a session of m configured by so and o does
// (in ubatch-sized chunks, evicting after each, or llama.cpp's context shift with o.ContextShift
// and no so.Config) and keeps the result: the one policy's compressed cache, to be continued
// several times. The state is kept before the last chunk's eviction, which each continuation
// applies after restoring it: with positions compacted, an eviction leaves llama.cpp a pending
// K-shift that it applies only at the next decode, and a sequence's saved state holds the new
// positions with the K of the old ones.
func ReadBounded(m *llama.Model, prompt []int32, so SessionOptions, o Options) (*Prefix, error) {
	s, err := NewSession(m, so)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	o.Seq = adapter.DefaultSequence
	g := newGeneration(s.Ctx, s.Adapter, prompt, o)
	g.holdLast = true
	g, err = start(g, prompt)
	if err != nil {
		return nil, err
	}
	var trackers []*keyformer.Tracker
	if s.Adapter != nil {
		trackers = append(trackers, s.Adapter.Tracker())
	}
	return save(s, g, trackers)
}

// save keeps the session's sequence after the prompt g read: llama.cpp's state, the logits and
// greedy token after the prompt, and the state of each tracker's sequence under its policy.
func save(s *Session, g *Generation, trackers []*keyformer.Tracker) (*Prefix, error) {
	logits := s.Ctx.Logits()
	r := g.Result()
	cells, err := g.cells.held(adapter.DefaultSequence)
	if err != nil {
		return nil, fmt.Errorf("generate: prefix: %w", err)
	}
	p := &Prefix{Prompt: r.PromptTokens, First: llama.Argmax(logits), Prefill: r.Prefill,
		firstLogits: slices.Clone(logits), cells: cells, peakCells: r.PeakCells, scores: map[keyformer.Policy][]byte{}}
	if p.state, err = s.Ctx.SeqState(adapter.DefaultSequence); err != nil {
		return nil, fmt.Errorf("generate: prefix: %w", err)
	}
	for _, tr := range trackers {
		policy := tr.Config().Policy
		seq, err := tr.Sequence(adapter.DefaultSequence)
		if err == nil {
			p.cells = seq.Len()
			p.scores[policy], err = seq.MarshalBinary()
		}
		if err != nil {
			return nil, fmt.Errorf("generate: prefix: policy %s: %w", policy, err)
		}
	}
	return p, nil
}

// Generate continues the prefix in a fresh session of m configured by so: so.Config nil is the
// full cache (plain llama.cpp), else its policy must be one the prefix was scored for. It restores
// the prompt's state, brings the cache to the configuration's budget, and generates greedily from
// First (o.Seq is ignored). The result's PeakCells is the most cells held while the prompt was
// read or while generating: the cache a host must have.
func (p *Prefix) Generate(m *llama.Model, so SessionOptions, o Options) (Result, error) {
	return p.Continue(m, so, nil, o)
}

// Continue is Generate with more prompt after the prefix: it restores the prefix (scores it by
// o.Probe if set), brings the cache to the budget, reads suffix (as Start reads a prompt: in chunks, evicting after each unless
// o.Whole), then generates from the greedy token after it. The budget stays resolved against the
// prefix's prompt length: the prefix is the document whose cache is compressed, the suffix a
// question about it. PeakCells counts the prefix's reading too.
func (p *Prefix) Continue(m *llama.Model, so SessionOptions, suffix []int32, o Options) (Result, error) {
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
	o.Seq, o.Repeat = adapter.DefaultSequence, nil // the prefix is scored; the suffix is read after it
	g := &Generation{c: s.Ctx, ad: s.Adapter, o: forcing(o), res: Result{PromptTokens: p.Prompt, Prefill: p.Prefill},
		cells: newCellCount(s.Adapter), first: p.First, firstLogits: p.firstLogits}
	if err := s.Ctx.SetSeqState(o.Seq, p.state); err != nil {
		return Result{}, fmt.Errorf("generate: prefix: %w", err)
	}
	g.cells.add(o.Seq, p.cells)
	g.cells.peak = p.peakCells
	if s.Adapter != nil {
		if err := s.Adapter.RestoreSequence(o.Seq, scores); err != nil {
			return Result{}, fmt.Errorf("generate: prefix: %w", err)
		}
		if err := g.probe(); err != nil {
			return Result{}, fmt.Errorf("generate: prefix: probe: %w", err)
		}
		if g.res.Evicted, err = s.Adapter.Apply(o.Seq); err != nil {
			return Result{}, fmt.Errorf("generate: prefix: %w", err)
		}
	}
	if len(suffix) > 0 {
		g.first, g.firstLogits = -1, nil
		if err := g.read(suffix); err != nil {
			return g.Result(), err
		}
	}
	g.start = time.Now()
	return g.finish()
}

// probe scores the restored prefix by Options.Probe alone, if set.
func (g *Generation) probe() error {
	if len(g.o.Probe) == 0 {
		return nil
	}
	seq, err := g.ad.Tracker().Sequence(g.o.Seq)
	if err != nil {
		return err
	}
	seq.ClearScores()
	return g.pass(g.o.Probe)
}
