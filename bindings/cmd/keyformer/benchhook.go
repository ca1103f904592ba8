package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/keyformer/keyformer/bindings/generate"
	"github.com/keyformer/keyformer/keyformer"
)

// benchHook is `keyformer bench-hook`: decode speed at a given context with no hook, with the hook
// observing but never evicting (policy full), and with Keyformer at budget 0.5. The three read the
// prompt one after the other, then decode in turns, one token each, so that the machine's noise
// falls on all three alike; the last line is JSON with the median speeds and their ratios.
func benchHook(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench-hook", flag.ContinueOnError)
	var f runFlags
	f.register(fs)
	context := fs.Int("context", 4096, "tokens in the cache when decoding: prompt + generated")
	gen := fs.Int("gen", 64, "tokens to decode (the median step is reported)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f.maxNew, f.budget = *gen, "0.5"
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
	fmt.Fprintf(out, "decode at %d tokens of context (%d prompt + %d generated), n_ubatch %d; the three decode in turns\n",
		*context, len(l.prompt), *gen, f.ubatch)

	type config struct {
		name   string
		s      *generate.Session
		g      *generate.Generation
		before time.Duration
	}
	var runs []*config
	defer func() {
		for _, r := range runs {
			r.s.Close()
		}
	}()
	for _, p := range []*keyformer.Policy{nil, ptr(keyformer.PolicyFull), ptr(keyformer.PolicyKeyformer)} {
		r := &config{name: "none"}
		if p != nil {
			r.name = p.String()
		}
		var o generate.Options
		if r.s, o, err = f.session(l, p, os.Stderr); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		runs = append(runs, r)
		o.StopAtEOG = false
		if r.g, err = generate.Start(r.s.Ctx, r.s.Adapter, l.prompt, o); err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		r.before = observed(r.s)
	}
	for more := true; more; {
		for _, r := range runs {
			if more, err = r.g.Next(); err != nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
		}
	}
	step := map[string]float64{}
	for _, r := range runs {
		res := r.g.Result()
		step[r.name] = res.MedianStep().Seconds()
		observe := (observed(r.s) - r.before) / time.Duration(max(len(res.Steps), 1))
		cells := res.PeakCells
		if seq, err := trackerLen(r.s); err == nil {
			cells = seq
		}
		fmt.Fprintf(out, "  %-10s %7.2f ms/token (median of %d)  %6.1f tokens/s  %5d cells held  observing %.2f ms/token\n",
			r.name, 1000*step[r.name], len(res.Steps), 1/step[r.name], cells, ms(observe))
		if r.name == "full" {
			step["observe"] = observe.Seconds()
		}
	}
	fmt.Fprintf(out, "hook overhead (full / none): x%.3f: reading and scoring attention %.2f ms/token, the rest is llama.cpp's graph split at every layer\n",
		step["full"]/step["none"], 1000*step["observe"])
	b, err := json.Marshal(map[string]any{
		"context":              *context,
		"none_tok_per_s":       round(1 / step["none"]),
		"full_tok_per_s":       round(1 / step["full"]),
		"keyformer_tok_per_s":  round(1 / step["keyformer"]),
		"observe_cost_ratio":   round(step["full"] / step["none"]),
		"keyformer_speedup":    round(step["none"] / step["keyformer"]),
		"observe_ms_per_token": round(1000 * step["observe"]),
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, string(b))
	return nil
}

// trackerLen returns the cells sequence 0 holds (the context size without an adapter).
func trackerLen(s *generate.Session) (int, error) {
	if s.Adapter == nil {
		return int(s.Ctx.SeqPosMax(0)) + 1, nil
	}
	seq, err := s.Adapter.Tracker().Sequence(0)
	if err != nil {
		return 0, err
	}
	return seq.Len(), nil
}

func ptr[T any](v T) *T { return &v }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func round(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
