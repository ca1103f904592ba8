package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/keyformer/keyformer/bindings/generate"
	"github.com/keyformer/keyformer/keyformer"
)

// benchHook is `keyformer bench-hook`: decode speed at a given context with no hook, with the hook
// observing but never evicting (policy full), and with Keyformer at budget 0.5; the last line is
// JSON with the three speeds and their ratios.
func benchHook(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench-hook", flag.ContinueOnError)
	var f runFlags
	f.register(fs)
	context := fs.Int("context", 4096, "tokens in the cache when decoding: prompt + generated")
	gen := fs.Int("gen", 64, "tokens to decode (the median step is reported)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f.maxNew = *gen
	f.budget = "0.5"
	l, err := f.load()
	if err != nil {
		return err
	}
	// A prompt of context - gen tokens: the built-in document, repeated.
	doc := strings.Repeat(generate.SampleDocument+"\n\n", *context/len(l.prompt)+2)
	prompt, err := generate.ChatPrompt(l.model, doc, generate.SampleQuestion)
	if err != nil {
		return err
	}
	if len(prompt) < *context-*gen || *context <= *gen {
		return fmt.Errorf("--context %d too small or too large for --gen %d", *context, *gen)
	}
	l.prompt = prompt[:*context-*gen]
	fmt.Fprintf(out, "decode at %d tokens of context (%d prompt + %d generated), %d threads, n_ubatch %d\n",
		*context, len(l.prompt), *gen, max(f.threads, 0), f.ubatch)
	type result struct {
		name        string
		step        time.Duration
		observePerT time.Duration
	}
	var results []result
	for _, p := range []*keyformer.Policy{nil, ptr(keyformer.PolicyFull), ptr(keyformer.PolicyKeyformer)} {
		name, cells := "none", len(l.prompt)+*gen
		if p != nil {
			name = p.String()
		}
		e, err := f.execute(l, p, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if p != nil && *p == keyformer.PolicyKeyformer {
			cells = e.PeakCells
		}
		r := result{name: name, step: e.MedianStep()}
		if len(e.Steps) > 0 {
			r.observePerT = (e.observe - e.prefillObserve) / time.Duration(len(e.Steps))
		}
		results = append(results, r)
		fmt.Fprintf(out, "  %-10s %7.2f ms/token (median of %d)  %6.1f tokens/s  KV cells <= %d  observing %.2f ms/token\n",
			name, ms(r.step), len(e.Steps), 1/r.step.Seconds(), cells, ms(r.observePerT))
	}
	none, full, kf := results[0], results[1], results[2]
	fmt.Fprintf(out, "hook overhead (full / none): x%.3f, of which reading and scoring attention %.2f ms/token, the rest graph splits\n",
		full.step.Seconds()/none.step.Seconds(), ms(full.observePerT))
	b, err := json.Marshal(map[string]any{
		"context":                *context,
		"none_tok_per_s":         round(1 / none.step.Seconds()),
		"full_tok_per_s":         round(1 / full.step.Seconds()),
		"keyformer_tok_per_s":    round(1 / kf.step.Seconds()),
		"observe_cost_ratio":     round(full.step.Seconds() / none.step.Seconds()),
		"keyformer_speedup":      round(none.step.Seconds() / kf.step.Seconds()),
		"observe_ms_per_token":   round(ms(full.observePerT)),
		"keyformer_vs_full_hook": round(full.step.Seconds() / kf.step.Seconds()),
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, string(b))
	return nil
}

func ptr[T any](v T) *T { return &v }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func round(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
