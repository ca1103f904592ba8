//go:build linux || darwin

// Package generate runs greedy generation on a llama.cpp context, with or without a Keyformer
// adapter, and measures it: the one driver behind the command line, the integration tests and the
// benchmarks.
package generate

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/keyformer/keyformer/bindings/adapter"
	"github.com/keyformer/keyformer/bindings/llama"
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
	// Progress, if set, is called after each prompt chunk with the prompt tokens done so far.
	Progress func(done, total int)
	// AfterDecode, if set, is called after every llama_decode, before the adapter applies
	// evictions (tests inspect the tracker there).
	AfterDecode func() error
}

// Result describes a run.
type Result struct {
	PromptTokens int
	Tokens       []int32 // generated tokens
	PeakCells    int     // the most KV cells the sequence held at once
	Evicted      int
	Prefill      time.Duration
	Decode       time.Duration   // generation after the first token (len(Tokens)-1 decodes)
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

// Run decodes prompt into sequence o.Seq of c, then generates greedily. With ad non-nil (the
// adapter c was created with), it declares the prompt length and applies the adapter's evictions
// after every llama_decode. The next position is always llama_memory_seq_pos_max + 1, so that
// position compaction and holes are handled alike.
func Run(c *llama.Context, ad *adapter.Adapter, prompt []int32, o Options) (Result, error) {
	res := Result{PromptTokens: len(prompt)}
	if len(prompt) == 0 {
		return res, errors.New("generate: empty prompt")
	}
	if ad != nil {
		seq, err := ad.Tracker().Sequence(o.Seq)
		if err != nil {
			return res, fmt.Errorf("generate: %w", err)
		}
		if err := seq.SetPromptLength(len(prompt)); err != nil {
			return res, fmt.Errorf("generate: %w", err)
		}
	}
	held := 0 // cells held without an adapter: nothing is evicted
	step := func(tokens []int32, last bool) error {
		pos := c.SeqPosMax(o.Seq) + 1
		if err := c.Decode(o.Seq, tokens, pos); err != nil {
			return err
		}
		held += len(tokens)
		res.PeakCells = max(res.PeakCells, held)
		if o.AfterDecode != nil {
			if err := o.AfterDecode(); err != nil {
				return err
			}
		}
		if ad == nil || (o.Whole && !last) {
			return nil
		}
		n, err := ad.Apply(o.Seq)
		res.Evicted += n
		return err
	}
	start := time.Now()
	chunk := c.NUbatch()
	for done := 0; done < len(prompt); done += chunk {
		end := min(done+chunk, len(prompt))
		if err := step(prompt[done:end], end == len(prompt)); err != nil {
			return res, fmt.Errorf("generate: prompt tokens %d..%d: %w", done, end, err)
		}
		if o.Progress != nil {
			o.Progress(end, len(prompt))
		}
	}
	res.Prefill = time.Since(start)
	start = time.Now()
	for len(res.Tokens) < o.MaxNew {
		tok := llama.Argmax(c.Logits())
		if tok < 0 {
			return res, errors.New("generate: the decode produced no logits")
		}
		res.Tokens = append(res.Tokens, tok)
		if len(res.Tokens) == o.MaxNew || o.StopAtEOG && c.Model().IsEOG(tok) {
			break
		}
		t0 := time.Now()
		if err := step([]int32{tok}, true); err != nil {
			return res, fmt.Errorf("generate: token %d: %w", len(res.Tokens), err)
		}
		res.Steps = append(res.Steps, time.Since(t0))
	}
	res.Decode = time.Since(start)
	if ad != nil {
		res.PeakCells = ad.Stats().PeakCells
	}
	return res, nil
}

// KVBytesPerCell returns the bytes one KV cell takes in an f16 cache of the model: K and V for
// every layer and KV head.
func KVBytesPerCell(m *llama.Model) int {
	return 2 * m.NLayer * m.NHeadKV * (m.NEmbd / m.NHead) * 2
}

// ChatPrompt tokenizes a user turn holding document, a blank line and instruction, formatted with
// the model's chat template and ending with the assistant turn's opening.
func ChatPrompt(m *llama.Model, document, instruction string) ([]int32, error) {
	text, err := m.ApplyChatTemplate("", []llama.ChatMessage{{Role: "user", Content: document + "\n\n" + instruction}}, true)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	toks, err := m.Tokenize(text, true, true)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	return toks, nil
}
