//go:build linux || darwin

// Package generate runs greedy generation on a llama.cpp context, with or without a Keyformer
// adapter, and measures it: the one driver behind the command line, the integration tests and the
// benchmarks.
package generate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/keyformer/keyformer/bindings/adapter"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// Options configure Run.
type Options struct {
	Seq       int32 // the sequence id (must be adapter.DefaultSequence when an adapter is used)
	MaxNew    int   // tokens to generate at most
	StopAtEOG bool  // stop after an end-of-generation token
	// Whole feeds the prompt in llama.cpp ubatches without evicting until it is all in (the
	// paper's setting: the cache must hold the whole prompt). By default the adapter evicts after
	// every ubatch-sized chunk, so a cache of budget + n_ubatch cells takes any prompt length.
	Whole bool
	// Pack moves the kept cells to the bottom of the cache once the prompt is in (a save and
	// restore of the sequence's state), so that decoding reads only about as many cells as the
	// budget: attention costs follow the highest occupied cell, and evictions leave holes up to
	// budget + n_ubatch. It needs an adapter and a context holding this sequence only.
	Pack bool
	// Progress, if set, is called after each prompt chunk with the prompt tokens done so far.
	Progress func(done, total int)
	// AfterDecode, if set, is called after every llama_decode, before the adapter applies
	// evictions (tests inspect the tracker there).
	AfterDecode func() error
	// ContextShift, when positive, for a run without an adapter, does what llama.cpp's examples do
	// when the context is full: whenever the sequence would hold more than ContextShift cells, keep
	// its first ShiftKeep tokens, drop half of the rest, and shift the positions of the remainder
	// down (llama_memory_seq_rm + llama_memory_seq_add). (llama.cpp rounds a context's size up,
	// so the limit is given here.)
	ContextShift int
	ShiftKeep    int
	// Force, when set, is teacher forcing: token i is Force[i] instead of the greedy pick, and
	// generation runs for len(Force) tokens whatever MaxNew and StopAtEOG say, so that runs with
	// different caches see the same tokens and their next-token distributions can be compared.
	Force []int32
	// Logits, if set, is called before token i is taken with the logits that predict it (valid
	// only during the call).
	Logits func(i int, logits []float32) error
	// Repeat, when set (RepeatPrompt), scores the prompt by reconstruction, as KVzip does: after
	// each prompt chunk is read, and before the adapter evicts, the model reads Repeat followed by
	// the chunk again, at the positions after it; then those tokens are removed. Only that pass
	// scores the chunk's tokens (keyformer.Sequence.ScoreFrom), and no other token. Under the peak
	// policy a token's score is then the most attention the model paid it while repeating it. It
	// costs about one more prefill, and the cache holds two chunks and Repeat beyond the budget
	// while a chunk is read.
	Repeat []int32
	// Probe, when set, scores a restored prefix (Prefix.Continue) by a pass the host chooses: the
	// prefix's scores are cleared, Probe is decoded after it with the adapter observing, then
	// removed, and only then is the cache brought to the budget. With the question and the full
	// cache's answer as Probe, it is an oracle: the ceiling of what any scorer that does not know
	// the question can keep.
	Probe []int32
}

// Result describes a run.
type Result struct {
	PromptTokens int
	Tokens       []int32 // generated tokens
	PeakCells    int     // the most KV cells the sequence held at once
	Evicted      int
	Prefill      time.Duration
	Decode       time.Duration   // from the end of the prompt to the last decode (len(Tokens)-1 decodes)
	Steps        []time.Duration // each of those decodes, evictions included
}

// MedianStep returns the median time of one generation step (0 without steps).
func (r Result) MedianStep() time.Duration {
	if len(r.Steps) == 0 {
		return 0
	}
	s := slices.Clone(r.Steps)
	slices.Sort(s)
	return s[len(s)/2]
}

// PrefillTokensPerSecond returns the prompt throughput.
func (r Result) PrefillTokensPerSecond() float64 { return perSecond(r.PromptTokens, r.Prefill) }

// DecodeTokensPerSecond returns the generation throughput (decodes after the prompt).
func (r Result) DecodeTokensPerSecond() float64 { return perSecond(len(r.Tokens)-1, r.Decode) }

func perSecond(n int, d time.Duration) float64 {
	if n <= 0 || d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Generation is a greedy generation in progress: Start reads the prompt, each Next generates
// one token.
type Generation struct {
	c     *llama.Context
	ad    *adapter.Adapter
	o     Options
	res   Result
	cells *cellCount
	start time.Time
	done  bool
	first int32 // the token Next takes instead of the greedy pick, or -1
	// firstLogits are the logits that picked first (a restored prefix has no logits of its own)
	firstLogits []float32
	// holdLast leaves the prompt's last chunk unevicted (ReadBounded: the prefix is saved before
	// that eviction, see there)
	holdLast bool
}

// Start decodes prompt into sequence o.Seq of c. With ad non-nil (the adapter c was created with),
// it declares the prompt length and applies the adapter's evictions after every llama_decode. The
// next position is always llama_memory_seq_pos_max + 1, so that position compaction and holes are
// handled alike.
func Start(c *llama.Context, ad *adapter.Adapter, prompt []int32, o Options) (*Generation, error) {
	return start(newGeneration(c, ad, prompt, o), prompt)
}

// newGeneration returns a generation of prompt in c that has not started.
func newGeneration(c *llama.Context, ad *adapter.Adapter, prompt []int32, o Options) *Generation {
	return &Generation{c: c, ad: ad, o: forcing(o), res: Result{PromptTokens: len(prompt)}, cells: newCellCount(ad), first: -1}
}

// start is Start for a generation g set up by its caller.
func start(g *Generation, prompt []int32) (*Generation, error) {
	c, ad, o := g.c, g.ad, g.o
	if len(prompt) == 0 {
		return nil, errors.New("generate: empty prompt")
	}
	if ad != nil {
		seq, err := ad.Tracker().Sequence(o.Seq)
		if err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		if err := seq.SetPromptLength(len(prompt)); err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
	}
	start := time.Now()
	if err := g.read(prompt); err != nil {
		return nil, err
	}
	if o.Pack && ad != nil {
		if err := pack(c, ad, o.Seq); err != nil {
			return nil, err
		}
	}
	g.res.Prefill = time.Since(start)
	g.start = time.Now()
	return g, nil
}

// forcing returns o with MaxNew and StopAtEOG set for teacher forcing when o.Force is set.
func forcing(o Options) Options {
	if o.Force != nil {
		o.MaxNew, o.StopAtEOG = len(o.Force), false
	}
	return o
}

// read decodes prompt tokens in ubatch-sized chunks (evicting after each, unless the prompt is
// read whole), reporting progress.
func (g *Generation) read(prompt []int32) error {
	chunk := g.c.NUbatch()
	for done := 0; done < len(prompt); done += chunk {
		end := min(done+chunk, len(prompt))
		if err := g.decode(prompt[done:end], end == len(prompt)); err != nil {
			return fmt.Errorf("generate: prompt tokens %d..%d: %w", done, end, err)
		}
		if g.o.Progress != nil {
			g.o.Progress(end, len(prompt))
		}
	}
	return nil
}

// decode decodes tokens, then applies evictions (unless the prompt is read whole and this is
// not its last chunk).
func (g *Generation) decode(tokens []int32, last bool) error {
	if g.o.ContextShift > 0 && g.ad == nil {
		if err := g.shift(len(tokens)); err != nil {
			return err
		}
	}
	pos := g.c.SeqPosMax(g.o.Seq) + 1
	var seq *keyformer.Sequence
	if len(g.o.Repeat) > 0 && len(tokens) > 1 && g.ad != nil {
		var err error
		if seq, err = g.ad.Tracker().Sequence(g.o.Seq); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		seq.ScoreFrom(math.MaxInt32) // the chunk is scored by its repetition, not its reading
	}
	if err := g.c.Decode(g.o.Seq, tokens, pos); err != nil {
		return err
	}
	g.cells.add(g.o.Seq, len(tokens))
	if err := g.cells.record(g.o.Seq); err != nil {
		return err
	}
	if seq != nil {
		seq.ScoreFrom(pos)
		err := g.pass(slices.Concat(g.o.Repeat, tokens))
		seq.ScoreFrom(0)
		if err != nil {
			return fmt.Errorf("generate: repeating the chunk: %w", err)
		}
	}
	if g.o.AfterDecode != nil {
		if err := g.o.AfterDecode(); err != nil {
			return err
		}
	}
	if g.ad == nil || (g.o.Whole && !last) || (g.holdLast && last) {
		return nil
	}
	n, err := g.ad.Apply(g.o.Seq)
	g.res.Evicted += n
	return err
}

// pass decodes tokens after the sequence in ubatch-sized pieces, without evicting, then removes
// them from llama.cpp's cache and from the adapter's tracker: a pass that only scores what the
// cache holds (Options.Repeat, Options.Probe).
func (g *Generation) pass(tokens []int32) error {
	from := g.c.SeqPosMax(g.o.Seq) + 1
	for done := 0; done < len(tokens); done += g.c.NUbatch() {
		piece := tokens[done:min(done+g.c.NUbatch(), len(tokens))]
		if err := g.c.Decode(g.o.Seq, piece, from+int32(done)); err != nil {
			return err
		}
		g.cells.add(g.o.Seq, len(piece))
		if err := g.cells.record(g.o.Seq); err != nil {
			return err
		}
	}
	if !g.c.SeqRm(g.o.Seq, from, -1) {
		return fmt.Errorf("llama_memory_seq_rm refused the passing positions from %d", from)
	}
	g.cells.add(g.o.Seq, -len(tokens))
	return g.ad.SeqRm(g.o.Seq, from, -1)
}

// RepeatPrompt returns the tokens of the instruction Options.Repeat puts before each chunk it
// repeats.
func RepeatPrompt(m *llama.Model) ([]int32, error) {
	return m.Tokenize("\n\nRepeat the previous context exactly.\n", false, true)
}

// shift makes room for n more tokens the way llama.cpp's context shift does: while they do not
// fit, it removes the first half of the positions after the kept ones and moves the rest down.
func (g *Generation) shift(n int) error {
	keep := g.o.ShiftKeep
	for {
		held, err := g.cells.held(g.o.Seq)
		if err != nil || held+n <= g.o.ContextShift {
			return err
		}
		discard := (held - keep) / 2
		if keep < 0 || discard <= 0 {
			return fmt.Errorf("generate: context shift: %d tokens do not fit %d cells with %d kept", n, g.o.ContextShift, keep)
		}
		if !g.c.SeqRm(g.o.Seq, int32(keep), int32(keep+discard)) {
			return fmt.Errorf("generate: context shift: llama_memory_seq_rm refused positions %d..%d", keep, keep+discard)
		}
		g.c.SeqAdd(g.o.Seq, int32(keep+discard), -1, int32(-discard))
		g.cells.add(g.o.Seq, -discard)
		g.res.Evicted += discard
	}
}

// Next picks the greedy token and, unless generation is over (MaxNew tokens, or an
// end-of-generation token with StopAtEOG), decodes it. It reports false once generation is over.
func (g *Generation) Next() (bool, error) {
	if g.done || len(g.res.Tokens) >= g.o.MaxNew {
		g.done = true
		return false, nil
	}
	tok, logits := g.first, g.firstLogits
	if g.first >= 0 {
		g.first, g.firstLogits = -1, nil
	} else {
		logits = g.c.Logits()
		tok = llama.Argmax(logits)
	}
	if tok < 0 {
		return false, errors.New("generate: the decode produced no logits")
	}
	i := len(g.res.Tokens)
	if g.o.Logits != nil {
		if err := g.o.Logits(i, logits); err != nil {
			return false, fmt.Errorf("generate: token %d: %w", i, err)
		}
	}
	if g.o.Force != nil {
		tok = g.o.Force[i]
	}
	g.res.Tokens = append(g.res.Tokens, tok)
	if len(g.res.Tokens) == g.o.MaxNew || g.o.StopAtEOG && g.c.Model().IsEOG(tok) {
		g.done = true
		return false, nil
	}
	t0 := time.Now()
	if err := g.decode([]int32{tok}, true); err != nil {
		return false, fmt.Errorf("generate: token %d: %w", len(g.res.Tokens), err)
	}
	g.res.Steps = append(g.res.Steps, time.Since(t0))
	g.res.Decode = time.Since(g.start)
	return true, nil
}

// Result returns what the generation did so far.
func (g *Generation) Result() Result {
	r := g.res
	r.PeakCells = g.cells.peak
	return r
}

// Run reads prompt (Start) and generates until done (Next).
func Run(c *llama.Context, ad *adapter.Adapter, prompt []int32, o Options) (Result, error) {
	g, err := Start(c, ad, prompt, o)
	if err != nil {
		return Result{PromptTokens: len(prompt)}, err
	}
	return g.finish()
}

// finish generates until done and returns the result.
func (g *Generation) finish() (Result, error) {
	for {
		more, err := g.Next()
		if err != nil || !more {
			return g.Result(), err
		}
	}
}

// KVBytesPerCell returns the bytes one KV cell of the model takes in a cache of type kv: K and V
// for every layer and KV head.
func KVBytesPerCell(m *llama.Model, kv KVCache) int {
	elements := 2 * m.NLayer * m.NHeadKV * (m.NEmbd / m.NHead)
	switch kv {
	case KVQ8_0:
		return elements / 32 * 34
	case KVQ4_0:
		return elements / 32 * 18
	}
	return elements * 2
}

// ChatPrompt tokenizes a user turn holding document, a blank line and instruction, formatted with
// the model's chat template and ending with the assistant turn's opening.
func ChatPrompt(m *llama.Model, document, instruction string) ([]int32, error) {
	text, err := chatText(m, document, instruction)
	if err != nil {
		return nil, err
	}
	toks, err := m.Tokenize(text, true, true)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	return toks, nil
}

// ChatPromptParts is ChatPrompt cut where the document ends, each part tokenized on its own: the
// document's part (the template's opening and the document), which a cache reads and compresses
// first, and the rest (the blank line, the instruction and the assistant turn's opening), read
// after it, the way a user asks about a document already read.
func ChatPromptParts(m *llama.Model, document, instruction string) (doc, rest []int32, err error) {
	text, err := chatText(m, document, instruction)
	if err != nil {
		return nil, nil, err
	}
	at := strings.Index(text, document)
	if at < 0 {
		return nil, nil, errors.New("generate: the chat template does not keep the document verbatim")
	}
	at += len(document)
	if doc, err = m.Tokenize(text[:at], true, true); err == nil {
		rest, err = m.Tokenize(text[at:], false, true)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("generate: %w", err)
	}
	return doc, rest, nil
}

// chatText is the chat template applied to one user turn of document, a blank line and
// instruction, ending with the assistant turn's opening.
func chatText(m *llama.Model, document, instruction string) (string, error) {
	text, err := m.ApplyChatTemplate("", []llama.ChatMessage{{Role: "user", Content: document + "\n\n" + instruction}}, true)
	if err != nil {
		return "", fmt.Errorf("generate: %w", err)
	}
	return text, nil
}

// pack saves sequence seq (llama.cpp's state and the tracker's), clears it and restores it:
// llama.cpp refills the cleared cache from the bottom, in cell order, positions kept.
func pack(c *llama.Context, ad *adapter.Adapter, seq int32) error {
	state, err := c.SeqState(seq)
	if err != nil {
		return fmt.Errorf("generate: pack: %w", err)
	}
	s, err := ad.Tracker().Sequence(seq)
	if err != nil {
		return fmt.Errorf("generate: pack: %w", err)
	}
	saved, err := s.MarshalBinary()
	if err != nil {
		return fmt.Errorf("generate: pack: %w", err)
	}
	if !c.SeqRm(seq, -1, -1) {
		return fmt.Errorf("generate: pack: llama_memory_seq_rm refused to clear sequence %d", seq)
	}
	if err := c.SetSeqState(seq, state); err != nil {
		return fmt.Errorf("generate: pack: %w", err)
	}
	if err := ad.RestoreSequence(seq, saved); err != nil {
		return fmt.Errorf("generate: pack: %w", err)
	}
	return nil
}
